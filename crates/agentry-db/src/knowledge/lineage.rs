//! Lineage and quality rows of the knowledge base: finding a collection's
//! document by its source (a connector's page URL), an earlier document with
//! the same bytes, excluding a version that failed a quality check (its
//! document leaves search in the same transaction), and the counts the
//! quality report shows, per connector run and for the collection.
//!
//! Must not: decide what a check is or who may see the counts (agentry-core does).

use super::{DocumentRow, JobRow};
use crate::{Db, DbError, on_pool};

/// Versions one connector run collected with one outcome.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunQualityRow {
    /// The schedule fire that ran the connector.
    pub collected_by: String,
    pub schedule_id: Option<String>,
    pub status: String,
    pub quality_check: Option<String>,
    pub versions: i64,
    /// When the run stored its first version.
    pub first_ms: i64,
}

/// Documents of a collection whose latest version has one outcome.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CollectionQualityRow {
    pub status: String,
    pub quality_check: Option<String>,
    pub documents: i64,
}

impl Db {
    /// The oldest document of a collection whose source is `source` (a URL or file name).
    pub async fn document_by_source(&self, tenant_id: &str, collection_id: &str, source: &str) -> Result<Option<DocumentRow>, DbError> {
        const SQL: &str = concat!("SELECT ", document_select!(), " FROM documents WHERE tenant_id = $1 AND collection_id = $2 AND source = $3 ORDER BY created_at_ms, id LIMIT 1");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(collection_id).bind(source).fetch_optional(pool).await).map_err(DbError::query("document by source"))
    }

    /// A document of the collection with the same readers (ACL) created
    /// before `document` (by time, then id) whose latest version has
    /// `content_hash` and is not failed or excluded: the one `document`
    /// duplicates, whichever is ingested first. Documents others read are
    /// never compared, so the outcome tells nothing about them.
    pub async fn earlier_duplicate(&self, document: &DocumentRow, content_hash: &str) -> Result<Option<String>, DbError> {
        const SQL: &str = "SELECT d.id FROM document_versions v JOIN documents d ON d.id = v.document_id AND v.version = d.latest_version \
             WHERE v.content_hash = $1 AND d.tenant_id = $2 AND d.collection_id = $3 AND d.id <> $4 AND d.acl = $6 \
             AND v.status IN ('queued', 'processing', 'succeeded') AND (d.created_at_ms < $5 OR (d.created_at_ms = $5 AND d.id < $4)) \
             ORDER BY d.created_at_ms, d.id LIMIT 1";
        on_pool!(self, pool => sqlx::query_scalar(SQL)
            .bind(content_hash).bind(&document.tenant_id).bind(&document.collection_id).bind(&document.id).bind(document.created_at_ms).bind(&document.acl)
            .fetch_optional(pool).await)
        .map_err(DbError::query("find an earlier duplicate"))
    }

    /// End the job's version as excluded by `check` with `reason`; when it
    /// is the document's latest version the document is excluded too and
    /// leaves search (no current version). Returns the version that was
    /// current, whose chunks the caller unindexes.
    pub async fn exclude_version(&self, job: &JobRow, check: &str, reason: &str, now_ms: i64) -> Result<Option<i32>, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("UPDATE document_versions SET status = 'excluded', error = $1, quality_check = $2, chunk_count = 0 WHERE document_id = $3 AND version = $4")
                .bind(reason).bind(check).bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            let previous: Option<i32> = sqlx::query_scalar("SELECT current_version FROM documents WHERE id = $1 AND latest_version = $2")
                .bind(&job.document_id).bind(job.version).fetch_optional(&mut *tx).await?.flatten();
            sqlx::query("UPDATE documents SET status = 'excluded', error = $1, current_version = NULL, updated_at_ms = $2 WHERE id = $3 AND latest_version = $4")
                .bind(reason).bind(now_ms).bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            sqlx::query("UPDATE jobs SET status = 'succeeded', error = NULL, locked_until_ms = NULL, updated_at_ms = $1, finished_at_ms = $1 WHERE id = $2")
                .bind(now_ms).bind(&job.id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(previous)
        }.await)
        .map_err(DbError::query("exclude a version"))
    }

    /// Outcome counts of the versions collected by the `runs` most recent connector runs of a collection.
    pub async fn quality_by_run(&self, tenant_id: &str, collection_id: &str, runs: i64) -> Result<Vec<RunQualityRow>, DbError> {
        const SQL: &str = "SELECT v.collected_by, v.schedule_id, v.status, v.quality_check, COUNT(*) AS versions, MIN(v.created_at_ms) AS first_ms \
             FROM document_versions v JOIN documents d ON d.id = v.document_id \
             WHERE d.tenant_id = $1 AND d.collection_id = $2 AND v.collected_by IN ( \
                 SELECT v2.collected_by FROM document_versions v2 JOIN documents d2 ON d2.id = v2.document_id \
                 WHERE d2.tenant_id = $1 AND d2.collection_id = $2 AND v2.collected_by IS NOT NULL \
                 GROUP BY v2.collected_by ORDER BY MAX(v2.created_at_ms) DESC LIMIT $3) \
             GROUP BY v.collected_by, v.schedule_id, v.status, v.quality_check";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(collection_id).bind(runs).fetch_all(pool).await).map_err(DbError::query("quality by run"))
    }

    /// Outcome counts of a collection's documents (their latest versions).
    pub async fn quality_of_collection(&self, tenant_id: &str, collection_id: &str) -> Result<Vec<CollectionQualityRow>, DbError> {
        const SQL: &str = "SELECT d.status, v.quality_check, COUNT(*) AS documents \
             FROM documents d LEFT JOIN document_versions v ON v.document_id = d.id AND v.version = d.latest_version \
             WHERE d.tenant_id = $1 AND d.collection_id = $2 GROUP BY d.status, v.quality_check";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(collection_id).fetch_all(pool).await).map_err(DbError::query("quality of a collection"))
    }

    /// Replace a collection's description and quality checks; whether it exists.
    pub async fn update_collection(&self, tenant_id: &str, id: &str, description: &str, quality: &str, now_ms: i64) -> Result<bool, DbError> {
        let updated = on_pool!(self, pool => sqlx::query("UPDATE collections SET description = $1, quality = $2, updated_at_ms = $3 WHERE tenant_id = $4 AND id = $5")
            .bind(description).bind(quality).bind(now_ms).bind(tenant_id).bind(id).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::write("update collection"))?;
        Ok(updated == 1)
    }
}
