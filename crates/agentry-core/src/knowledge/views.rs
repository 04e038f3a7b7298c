//! What the knowledge API shows of its objects: collections, documents,
//! their versions and ingestion jobs. Built from storage rows here and
//! nowhere else, so a column can change without changing the API.
//!
//! Must not: decide visibility (the service's ACL checks do).

use agentry_db::knowledge::{CollectionRow, DocumentRow, JobRow, VersionRow};
use agentry_search::chunk::ChunkConfig;
use agentry_types::{DocumentStatus, JobKind, JobStatus, SummaryStatus};
use serde::Serialize;

use super::AccessList;
use super::quality::{QualityCheck, QualityChecks};

/// A collection of documents with its chunking settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Collection {
    pub id: String,
    pub name: String,
    pub description: String,
    pub chunking: ChunkConfig,
    /// What its documents must pass to be searchable.
    pub quality: QualityChecks,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<CollectionRow> for Collection {
    fn from(row: CollectionRow) -> Self {
        Self {
            chunking: ChunkConfig { max_tokens: row.chunk_max_tokens.max(0) as usize, overlap_tokens: row.chunk_overlap_tokens.max(0) as usize },
            quality: QualityChecks::stored(&row.quality, &row.id),
            id: row.id,
            name: row.name,
            description: row.description,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }
}

/// One version of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DocumentVersion {
    pub version: i32,
    /// SHA-256 of the bytes; `None` until the bytes of a URL version are fetched.
    pub content_hash: Option<String>,
    /// The parsed format (`pdf`, `docx`, `html`, `markdown`, `csv`, `json`, `text`).
    pub format: Option<String>,
    pub size_bytes: i64,
    /// Where the bytes come from, for a version uploaded by URL.
    pub source_url: Option<String>,
    pub status: DocumentStatus,
    pub error: Option<String>,
    pub chunk_count: i32,
    pub created_at_ms: i64,
    pub summary: Option<String>,
    /// `None` when no summary was asked for.
    pub summary_status: Option<SummaryStatus>,
    pub summary_error: Option<String>,
    /// The quality check it failed (status `excluded`; `error` says why).
    pub quality_check: Option<QualityCheck>,
}

impl From<VersionRow> for DocumentVersion {
    fn from(row: VersionRow) -> Self {
        let summary_status = row
            .summary_status
            .and_then(|s| s.parse().map_err(|error| tracing::error!(document = %row.document_id, version = row.version, %error, "stored summary status does not parse")).ok());
        Self {
            version: row.version,
            content_hash: row.content_hash,
            format: row.format,
            size_bytes: row.size_bytes,
            source_url: row.source_url,
            status: row.status,
            error: row.error,
            chunk_count: row.chunk_count,
            created_at_ms: row.created_at_ms,
            summary: row.summary,
            summary_status,
            summary_error: row.summary_error,
            quality_check: row.quality_check.as_deref().and_then(QualityCheck::parse),
        }
    }
}

/// A queued piece of knowledge work (indexing or summarising a version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestJob {
    pub id: String,
    pub kind: JobKind,
    pub document_id: String,
    pub version: i32,
    pub status: JobStatus,
    pub attempts: i32,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<JobRow> for IngestJob {
    fn from(row: JobRow) -> Self {
        let JobRow { id, kind, document_id, version, status, attempts, error, created_at_ms, updated_at_ms, tenant_id: _, run_after_ms: _, owner: _, max_attempts: _, claims: _ } =
            row;
        // This view predates the dead state: a dead ingestion job reads as failed here (`/api/v1/jobs/{id}` tells them apart).
        let status = if status == JobStatus::Dead { JobStatus::Failed } else { status };
        Self { id, kind, document_id, version, status, attempts, error, created_at_ms, updated_at_ms }
    }
}

/// The stored bytes of one version, with what to serve them as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFile {
    pub bytes: Vec<u8>,
    /// The media type to serve the bytes with.
    pub media_type: &'static str,
    /// The file extension for a download's name.
    pub extension: &'static str,
}

impl VersionFile {
    pub(super) fn of(format: &str, bytes: Vec<u8>) -> Self {
        let (media_type, extension) = match format {
            "pdf" => ("application/pdf", "pdf"),
            "docx" => ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
            "html" => ("text/html; charset=utf-8", "html"),
            "markdown" => ("text/markdown; charset=utf-8", "md"),
            "csv" => ("text/csv; charset=utf-8", "csv"),
            "json" => ("application/json", "json"),
            _ => ("text/plain; charset=utf-8", "txt"),
        };
        Self { bytes, media_type, extension }
    }
}

/// The answer to an upload.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    pub document: DocumentView,
    /// `None` when the bytes equal the latest version's (nothing to do).
    pub job_id: Option<String>,
    pub unchanged: bool,
}

/// A document as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DocumentView {
    pub id: String,
    pub collection_id: String,
    pub title: String,
    pub source: String,
    pub metadata: serde_json::Value,
    pub acl: AccessList,
    pub current_version: Option<i32>,
    pub latest_version: i32,
    pub status: DocumentStatus,
    pub error: Option<String>,
    /// The current version's summary, once written (`knowledge.summary_model`).
    pub summary: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl DocumentView {
    pub(super) fn of(row: DocumentRow) -> Self {
        Self {
            metadata: serde_json::from_str(&row.metadata).unwrap_or_default(),
            acl: AccessList::stored(&row.acl, &row.id),
            id: row.id,
            collection_id: row.collection_id,
            title: row.title,
            source: row.source,
            current_version: row.current_version,
            latest_version: row.latest_version,
            status: row.status,
            error: row.error,
            summary: row.summary,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }

    pub(super) fn visible_to(&self, principals: &[String]) -> bool {
        self.acl.principals().iter().any(|p| principals.contains(p))
    }
}
