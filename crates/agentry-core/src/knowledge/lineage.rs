//! Where each version of a document came from ([`VersionLineage`]: an
//! upload, a URL, or a connector with its schedule, fire and the page it
//! was found on; when it was fetched, its content hash, the version it
//! followed) and how a collection's documents fare against its quality
//! checks ([`CollectionQuality`]: now, and per connector run).
//!
//! A document's lineage is shown to whoever may read the document. The
//! quality report is counts over every document of the collection, so it
//! needs `manage_integrations` (who runs connectors; admin by default): a
//! reader restricted by ACLs must not count what they cannot see.
//!
//! Must not: change anything.

use agentry_db::knowledge::{CollectionQualityRow, RunQualityRow, VersionRow};
use agentry_types::{DocumentStatus, Permission};
use serde::Serialize;

use super::quality::{QualityCheck, QualityChecks};
use super::{Error, Knowledge, require};
use crate::identity::TenantAccess;

/// Connector runs a quality report shows.
const REPORTED_RUNS: i64 = 20;

/// How one version of a document was collected.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VersionLineage {
    pub version: i32,
    /// `upload` (bytes sent), `url` (fetched from a URL given at upload) or `connector`.
    pub origin: String,
    /// The connector's settings, for a version a connector collected.
    #[schema(value_type = Option<Object>)]
    pub connector: Option<serde_json::Value>,
    pub schedule_id: Option<String>,
    /// The schedule fire (`GET /api/v1/schedules/{id}/runs`) that collected it.
    pub schedule_run_id: Option<String>,
    pub source_url: Option<String>,
    /// The sitemap, feed or page the connector found the URL on.
    pub discovered_from: Option<String>,
    pub fetched_at_ms: Option<i64>,
    /// SHA-256 of the bytes (`None` until a URL's bytes are fetched).
    pub content_hash: Option<String>,
    /// The version that was current when this one was added.
    pub parent_version: Option<i32>,
    pub status: DocumentStatus,
    /// The quality check it failed, if it is `excluded`.
    pub quality_check: Option<QualityCheck>,
    pub created_at_ms: i64,
}

impl From<VersionRow> for VersionLineage {
    fn from(row: VersionRow) -> Self {
        Self {
            version: row.version,
            origin: row.origin,
            connector: row.connector.and_then(|json| serde_json::from_str(&json).ok()),
            schedule_id: row.schedule_id,
            schedule_run_id: row.collected_by,
            source_url: row.source_url,
            discovered_from: row.discovered_from,
            fetched_at_ms: row.fetched_at_ms,
            content_hash: row.content_hash,
            parent_version: row.parent_version,
            status: row.status,
            quality_check: row.quality_check.as_deref().and_then(QualityCheck::parse),
            created_at_ms: row.created_at_ms,
        }
    }
}

/// How many documents (or versions) have one outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QualityCount {
    pub status: DocumentStatus,
    /// The check they failed, for `excluded` ones.
    pub quality_check: Option<QualityCheck>,
    pub count: i64,
}

/// What one connector run collected, by outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunQuality {
    pub schedule_run_id: String,
    pub schedule_id: Option<String>,
    /// When it stored its first version.
    pub started_at_ms: i64,
    /// New versions it stored (pages whose bytes had not changed add none).
    pub versions: i64,
    pub outcomes: Vec<QualityCount>,
}

/// A collection against its quality checks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CollectionQuality {
    pub collection_id: String,
    pub checks: QualityChecks,
    /// Its documents by the outcome of their latest version.
    pub documents: Vec<QualityCount>,
    /// The most recent connector runs that stored versions, newest first.
    pub runs: Vec<RunQuality>,
}

fn count(status: &str, check: Option<&str>, count: i64) -> Option<QualityCount> {
    let status = status.parse().map_err(|error| tracing::error!(%error, "stored document status does not parse")).ok()?;
    Some(QualityCount { status, quality_check: check.and_then(QualityCheck::parse), count })
}

impl Knowledge {
    /// The lineage of each version of a document the caller may read, oldest first.
    pub async fn lineage(&self, access: &TenantAccess, id: &str) -> Result<Vec<VersionLineage>, Error> {
        let document = self.document(access, id).await?;
        Ok(self.inner.db.versions_of_document(&document.id).await?.into_iter().map(VersionLineage::from).collect())
    }

    /// A collection's documents and recent connector runs by quality outcome.
    pub async fn quality_report(&self, access: &TenantAccess, collection_id: &str) -> Result<CollectionQuality, Error> {
        require(access, Permission::ManageIntegrations)?;
        let collection = self.collection(access, collection_id).await?;
        let db = &self.inner.db;
        let documents = db.quality_of_collection(access.tenant_id(), &collection.id).await?;
        let documents = documents.iter().filter_map(|CollectionQualityRow { status, quality_check, documents }| count(status, quality_check.as_deref(), *documents)).collect();
        let mut runs: Vec<RunQuality> = Vec::new();
        for row in db.quality_by_run(access.tenant_id(), &collection.id, REPORTED_RUNS).await? {
            let RunQualityRow { collected_by, schedule_id, status, quality_check, versions, first_ms } = row;
            let outcome = count(&status, quality_check.as_deref(), versions);
            let run = match runs.iter_mut().find(|run| run.schedule_run_id == collected_by) {
                Some(run) => run,
                None => {
                    runs.push(RunQuality { schedule_run_id: collected_by, schedule_id, started_at_ms: first_ms, versions: 0, outcomes: Vec::new() });
                    runs.last_mut().ok_or_else(|| Error::Internal("a run just added is missing".into()))?
                }
            };
            run.started_at_ms = run.started_at_ms.min(first_ms);
            run.versions += versions;
            run.outcomes.extend(outcome);
        }
        runs.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then_with(|| b.schedule_run_id.cmp(&a.schedule_run_id)));
        Ok(CollectionQuality { collection_id: collection.id, checks: collection.quality, documents, runs })
    }
}
