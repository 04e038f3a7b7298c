//! Rows of the knowledge base: collections, documents and their versions
//! (raw bytes kept; a version uploaded by URL keeps the URL, and its bytes
//! once the worker has fetched them), chunks with embeddings, and the
//! ingestion kinds of the job queue (`index` and `summary` jobs in
//! [`crate::jobs`]' table, whose steps here share a transaction with the
//! document's).
//!
//! A document version becomes visible in one transaction
//! ([`Db::finish_ingest`]): its chunks were written (and indexed) before,
//! and readers join chunks on `documents.current_version`, so a document is
//! never half visible. Jobs are claimed with a lease; a job whose worker
//! died is claimed again when the lease runs out, unless its attempts are
//! used up: then the claim fails it instead (a document that kills its
//! worker must not do so after every restart).
//!
//! Must not: parse, chunk, embed or index (agentry-core and agentry-search do).

use agentry_types::{DocumentStatus, JobKind, JobStatus};

use crate::{Backend, Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CollectionRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub chunk_max_tokens: i32,
    pub chunk_overlap_tokens: i32,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The quality checks its documents must pass (JSON).
    pub quality: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: String,
    pub tenant_id: String,
    pub collection_id: String,
    pub title: String,
    pub source: String,
    /// JSON object.
    pub metadata: String,
    /// JSON array of principals.
    pub acl: String,
    pub current_version: Option<i32>,
    pub latest_version: i32,
    /// Of the latest version.
    #[sqlx(try_from = "String")]
    pub status: DocumentStatus,
    pub error: Option<String>,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The current version's summary (read only: the summary job writes it on the version).
    pub summary: Option<String>,
}

/// A version without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionRow {
    pub document_id: String,
    pub version: i32,
    /// `None` (with `format`) until the bytes of a URL version are fetched.
    pub content_hash: Option<String>,
    pub format: Option<String>,
    /// 0 until the bytes of a URL version are fetched.
    pub size_bytes: i64,
    /// Where the bytes come from when the version was uploaded by URL.
    pub source_url: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: DocumentStatus,
    pub error: Option<String>,
    pub chunk_count: i32,
    pub created_at_ms: i64,
    /// Written by the summary job (read only for inserts).
    pub summary: Option<String>,
    /// `queued`, `succeeded` or `failed`; `None` when no summary was asked for.
    pub summary_status: Option<String>,
    pub summary_error: Option<String>,
    /// How the version was collected: `upload`, `url` or `connector`.
    pub origin: String,
    /// The connector that collected it (JSON), with the schedule and fire that ran it.
    pub connector: Option<String>,
    pub schedule_id: Option<String>,
    pub collected_by: Option<String>,
    /// The sitemap, feed or page the connector found it on.
    pub discovered_from: Option<String>,
    /// When its bytes were fetched from `source_url`.
    pub fetched_at_ms: Option<i64>,
    /// The version that was current when it was added.
    pub parent_version: Option<i32>,
    /// The quality check it failed (status `excluded`; `error` says why).
    pub quality_check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRow {
    pub id: String,
    pub tenant_id: String,
    pub document_id: String,
    pub version: i32,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub attempts: i32,
    pub run_after_ms: i64,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// Who uploaded the version (`user:<id>`), when a user did.
    pub owner: Option<String>,
    /// Attempts it gets (`knowledge.max_attempts` when it was queued).
    pub max_attempts: i32,
    /// Times it was claimed, ever (read only: the claim counts it): the fencing token of its running claim.
    pub claims: i64,
}

/// What follows a failed ingestion attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestRetry {
    /// Try again at this time.
    At(i64),
    /// The document is at fault: fail it for good.
    Never,
    /// The attempts are used up: the job is dead (and can be retried by hand).
    GaveUp,
}

/// A chunk to store; the database assigns its id (the index key).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NewChunk {
    pub ordinal: i32,
    pub content_hash: String,
    pub text: String,
    /// JSON array.
    pub heading_path: String,
    pub page: Option<i32>,
    pub token_count: i32,
    /// Little-endian f32.
    pub embedding: Vec<u8>,
}

/// A visible chunk with its document, for search results.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChunkHitRow {
    pub id: i64,
    pub document_id: String,
    pub collection_id: String,
    pub version: i32,
    pub ordinal: i32,
    pub title: String,
    pub text: String,
    pub heading_path: String,
    pub page: Option<i32>,
}

/// A stored chunk of one version, with its embedding (little-endian f32).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredChunkRow {
    pub id: i64,
    pub ordinal: i32,
    pub text: String,
    pub heading_path: String,
    pub page: Option<i32>,
    pub embedding: Vec<u8>,
}

/// A chunk of a document's current version with its embedding, for rebuilding an index.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CurrentChunkRow {
    pub id: i64,
    pub tenant_id: String,
    pub document_id: String,
    #[sqlx(flatten)]
    pub chunk: NewChunk,
}

/// The ordinal of a version's summary chunk (its text chunks count from 0).
pub const SUMMARY_ORDINAL: i32 = -1;

macro_rules! collection_columns {
    () => {
        "id, tenant_id, name, description, chunk_max_tokens, chunk_overlap_tokens, created_at_ms, updated_at_ms, quality"
    };
}

macro_rules! document_columns {
    () => {
        "id, tenant_id, collection_id, title, source, metadata, acl, current_version, latest_version, status, error, created_by, created_at_ms, updated_at_ms"
    };
}

/// A document row with its current version's summary.
macro_rules! document_select {
    () => {
        concat!(document_columns!(), ", (SELECT v.summary FROM document_versions v WHERE v.document_id = documents.id AND v.version = documents.current_version) AS summary")
    };
}

macro_rules! version_columns {
    () => {
        "document_id, version, content_hash, format, size_bytes, source_url, status, error, chunk_count, created_at_ms, \
         origin, connector, schedule_id, collected_by, discovered_from, fetched_at_ms, parent_version, quality_check"
    };
}

macro_rules! version_select {
    () => {
        concat!(version_columns!(), ", summary, summary_status, summary_error")
    };
}

/// An ingestion job as [`JobRow`] reads it from the job queue.
macro_rules! job_columns {
    () => {
        "id, tenant_id, subject_id AS document_id, subject_version AS version, status, attempts, run_after_ms, error, created_at_ms, updated_at_ms, kind, owner, max_attempts, claims"
    };
}

macro_rules! insert_job {
    () => {
        "INSERT INTO jobs (id, tenant_id, subject_id, subject_version, status, attempts, run_after_ms, error, created_at_ms, updated_at_ms, kind, owner, max_attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    };
}

/// Insert job `$job` inside transaction `$tx`.
macro_rules! bind_job {
    ($tx:ident, $job:expr) => {{
        let j = $job;
        sqlx::query(insert_job!())
            .bind(&j.id)
            .bind(&j.tenant_id)
            .bind(&j.document_id)
            .bind(j.version)
            .bind(j.status.as_str())
            .bind(j.attempts)
            .bind(j.run_after_ms)
            .bind(&j.error)
            .bind(j.created_at_ms)
            .bind(j.updated_at_ms)
            .bind(j.kind.as_str())
            .bind(&j.owner)
            .bind(j.max_attempts)
            .execute(&mut *$tx)
            .await?;
    }};
}

/// Insert a version row with its bytes (if any yet) and its job inside transaction `$tx`.
macro_rules! insert_version_and_job {
    ($tx:ident, $new:expr) => {{
        const VERSION: &str = concat!(
            "INSERT INTO document_versions (",
            version_columns!(),
            ", content) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        );
        let v = $new.version;
        sqlx::query(VERSION)
            .bind(&v.document_id)
            .bind(v.version)
            .bind(&v.content_hash)
            .bind(&v.format)
            .bind(v.size_bytes)
            .bind(&v.source_url)
            .bind(v.status.as_str())
            .bind(&v.error)
            .bind(v.chunk_count)
            .bind(v.created_at_ms)
            .bind(&v.origin)
            .bind(&v.connector)
            .bind(&v.schedule_id)
            .bind(&v.collected_by)
            .bind(&v.discovered_from)
            .bind(v.fetched_at_ms)
            .bind(v.parent_version)
            .bind(&v.quality_check)
            .bind($new.content)
            .execute(&mut *$tx)
            .await?;
        bind_job!($tx, $new.job);
    }};
}

/// End job `$job` for good as `$status` (failed or dead) with `$error`
/// inside transaction `$tx`: an index job fails its version (and the
/// document, if it is the latest); a summary job only the version's summary.
macro_rules! mark_failed {
    ($tx:ident, $job:expr, $error:expr, $status:expr, $now_ms:expr) => {{
        let (job, error, status, now_ms): (&JobRow, &str, JobStatus, i64) = ($job, $error, $status, $now_ms);
        sqlx::query("UPDATE jobs SET status = $4, locked_until_ms = NULL, error = $1, updated_at_ms = $2, finished_at_ms = $2 WHERE id = $3")
            .bind(error)
            .bind(now_ms)
            .bind(&job.id)
            .bind(status.as_str())
            .execute(&mut *$tx)
            .await?;
        if job.kind == JobKind::Summary {
            sqlx::query("UPDATE document_versions SET summary_status = 'failed', summary_error = $1 WHERE document_id = $2 AND version = $3")
                .bind(error)
                .bind(&job.document_id)
                .bind(job.version)
                .execute(&mut *$tx)
                .await?;
        } else {
            sqlx::query("UPDATE document_versions SET status = 'failed', error = $1 WHERE document_id = $2 AND version = $3")
                .bind(error)
                .bind(&job.document_id)
                .bind(job.version)
                .execute(&mut *$tx)
                .await?;
            sqlx::query("UPDATE documents SET status = 'failed', error = $1, updated_at_ms = $2 WHERE id = $3 AND latest_version = $4")
                .bind(error)
                .bind(now_ms)
                .bind(&job.document_id)
                .bind(job.version)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}

// After the column macros, which it uses.
mod lineage;
pub use lineage::{CollectionQualityRow, RunQualityRow};

/// A new version's row, bytes and job, written together.
pub struct NewVersion<'a> {
    pub version: &'a VersionRow,
    /// `None` for a URL version: the worker fetches the bytes ([`Db::store_fetched_content`]).
    pub content: Option<&'a [u8]>,
    pub job: &'a JobRow,
}

/// What a version holds for the ingestion worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionContent {
    /// The bytes, uploaded or already fetched, with their format.
    Stored { format: String, bytes: Vec<u8> },
    /// Not fetched yet: the bytes are at this URL.
    Pending { url: String },
}

/// A version's content columns (see [`VersionContent`]).
#[derive(sqlx::FromRow)]
struct ContentRow {
    format: Option<String>,
    content: Option<Vec<u8>>,
    source_url: Option<String>,
}

impl Db {
    pub async fn insert_collection(&self, c: &CollectionRow) -> Result<(), DbError> {
        const SQL: &str = concat!("INSERT INTO collections (", collection_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)");
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&c.id).bind(&c.tenant_id).bind(&c.name).bind(&c.description).bind(c.chunk_max_tokens)
            .bind(c.chunk_overlap_tokens).bind(c.created_at_ms).bind(c.updated_at_ms).bind(&c.quality)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert collection"))
    }

    /// The tenant's collections, oldest first, after the collection with
    /// `after`'s (created_at_ms, id).
    pub async fn collections_of_tenant(&self, tenant_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<CollectionRow>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            collection_columns!(),
            " FROM collections WHERE tenant_id = $1 AND created_at_ms >= $2 AND ($3 = '' OR created_at_ms > $2 OR id > $3) ORDER BY created_at_ms, id LIMIT $4"
        );
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(at).bind(id).bind(limit).fetch_all(pool).await).map_err(DbError::query("list collections"))
    }

    pub async fn collection(&self, tenant_id: &str, id: &str) -> Result<Option<CollectionRow>, DbError> {
        const SQL: &str = concat!("SELECT ", collection_columns!(), " FROM collections WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get collection"))
    }

    /// Delete a collection with its documents; returns the ids of the chunks that were stored (to unindex).
    pub async fn delete_collection(&self, tenant_id: &str, id: &str) -> Result<Option<Vec<i64>>, DbError> {
        let chunk_ids: Vec<i64> = on_pool!(self, pool => sqlx::query_scalar(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.tenant_id = $1 AND d.collection_id = $2")
            .bind(tenant_id).bind(id).fetch_all(pool).await)
        .map_err(DbError::query("chunks of collection"))?;
        let deleted = on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND kind IN ('index', 'summary') AND subject_id IN (SELECT id FROM documents WHERE tenant_id = $1 AND collection_id = $2)")
                .bind(tenant_id).bind(id).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM collections WHERE tenant_id = $1 AND id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }.await)
        .map_err(DbError::query("delete collection"))?;
        Ok((deleted > 0).then_some(chunk_ids))
    }

    /// A new document with its first version and ingestion job, in one transaction.
    pub async fn insert_document(&self, d: &DocumentRow, new: NewVersion<'_>) -> Result<(), DbError> {
        const SQL: &str = concat!("INSERT INTO documents (", document_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query(SQL)
                .bind(&d.id).bind(&d.tenant_id).bind(&d.collection_id).bind(&d.title).bind(&d.source).bind(&d.metadata)
                .bind(&d.acl).bind(d.current_version).bind(d.latest_version).bind(d.status.as_str()).bind(&d.error)
                .bind(&d.created_by).bind(d.created_at_ms).bind(d.updated_at_ms)
                .execute(&mut *tx).await?;
            insert_version_and_job!(tx, new);
            tx.commit().await
        }.await)
        .map_err(DbError::write("insert document"))
    }

    /// A new version of an existing document and its job; the document shows
    /// it as queued, and takes `source` (a file name or URL) when one is given.
    pub async fn add_version(&self, tenant_id: &str, new: NewVersion<'_>, title: &str, source: Option<&str>, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("UPDATE documents SET latest_version = $1, status = 'queued', error = NULL, title = $2, source = COALESCE($3, source), \
                         updated_at_ms = $4 WHERE tenant_id = $5 AND id = $6")
                .bind(new.version.version).bind(title).bind(source).bind(now_ms).bind(tenant_id).bind(&new.version.document_id)
                .execute(&mut *tx).await?;
            insert_version_and_job!(tx, new);
            tx.commit().await
        }.await)
        .map_err(DbError::write("add document version"))
    }

    pub async fn document(&self, tenant_id: &str, id: &str) -> Result<Option<DocumentRow>, DbError> {
        const SQL: &str = concat!("SELECT ", document_select!(), " FROM documents WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get document"))
    }

    /// A collection's documents, oldest first, after the document with
    /// `after`'s (created_at_ms, id).
    pub async fn documents_of_collection(&self, tenant_id: &str, collection_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<DocumentRow>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            document_select!(),
            " FROM documents WHERE tenant_id = $1 AND collection_id = $2 \
             AND created_at_ms >= $3 AND ($4 = '' OR created_at_ms > $3 OR id > $4) ORDER BY created_at_ms, id LIMIT $5"
        );
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(collection_id).bind(at).bind(id).bind(limit).fetch_all(pool).await)
            .map_err(DbError::query("list documents"))
    }

    pub async fn versions_of_document(&self, document_id: &str) -> Result<Vec<VersionRow>, DbError> {
        const SQL: &str = concat!("SELECT ", version_select!(), " FROM document_versions WHERE document_id = $1 ORDER BY version");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(document_id).fetch_all(pool).await).map_err(DbError::query("list versions"))
    }

    /// A version's bytes, or the URL they are still to be fetched from.
    pub async fn version_content(&self, document_id: &str, version: i32) -> Result<Option<VersionContent>, DbError> {
        let row: Option<ContentRow> = on_pool!(self, pool => sqlx::query_as(
            "SELECT format, content, source_url FROM document_versions WHERE document_id = $1 AND version = $2")
            .bind(document_id).bind(version).fetch_optional(pool).await)
        .map_err(DbError::query("version content"))?;
        // The table's CHECK constraints make content and format present together, or a URL present.
        Ok(row.and_then(|row| match row {
            ContentRow { format: Some(format), content: Some(bytes), .. } => Some(VersionContent::Stored { format, bytes }),
            ContentRow { source_url: Some(url), .. } => Some(VersionContent::Pending { url }),
            _ => None,
        }))
    }

    /// Store the fetched bytes of a URL version (once: a version that
    /// already has bytes keeps them); returns whether this call stored them.
    pub async fn store_fetched_content(&self, document_id: &str, version: i32, format: &str, content_hash: &str, bytes: &[u8], fetched_at_ms: i64) -> Result<bool, DbError> {
        let stored = on_pool!(self, pool => sqlx::query(
            "UPDATE document_versions SET content = $1, format = $2, content_hash = $3, size_bytes = $4, fetched_at_ms = $7 \
             WHERE document_id = $5 AND version = $6 AND content IS NULL")
            .bind(bytes).bind(format).bind(content_hash).bind(bytes.len() as i64).bind(document_id).bind(version).bind(fetched_at_ms)
            .execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("store fetched content"))?;
        Ok(stored == 1)
    }

    /// Delete a document; returns the ids of its chunks (to unindex), or `None` if there was none.
    pub async fn delete_document(&self, tenant_id: &str, id: &str) -> Result<Option<Vec<i64>>, DbError> {
        let chunk_ids = self.chunk_ids(id, None).await?;
        let deleted = on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND kind IN ('index', 'summary') AND subject_id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM documents WHERE tenant_id = $1 AND id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted)
        }.await)
        .map_err(DbError::query("delete document"))?;
        Ok((deleted > 0).then_some(chunk_ids))
    }

    /// Delete one version with its bytes and chunks; returns the chunk ids
    /// (to unindex), or `None` when there is no such version — or when it is
    /// the document's current or latest one by the time the write lock is
    /// held (a restore may have raced the caller's check). The caller keeps
    /// in-flight versions out of reach.
    pub async fn delete_version(&self, document_id: &str, version: i32) -> Result<Option<Vec<i64>>, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            // Lock the document row (PostgreSQL; SQLite's write lock is already held), then look again.
            sqlx::query("UPDATE documents SET updated_at_ms = updated_at_ms WHERE id = $1").bind(document_id).execute(&mut *tx).await?;
            let kept: Option<i32> = sqlx::query_scalar("SELECT 1 FROM documents WHERE id = $1 AND (current_version = $2 OR latest_version = $2)")
                .bind(document_id).bind(version).fetch_optional(&mut *tx).await?;
            if kept.is_some() {
                return Ok(None);
            }
            let chunk_ids: Vec<i64> = sqlx::query_scalar("DELETE FROM chunks WHERE document_id = $1 AND version = $2 RETURNING id")
                .bind(document_id).bind(version).fetch_all(&mut *tx).await?;
            sqlx::query("DELETE FROM jobs WHERE kind IN ('index', 'summary') AND subject_id = $1 AND subject_version = $2")
                .bind(document_id).bind(version).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM document_versions WHERE document_id = $1 AND version = $2")
                .bind(document_id).bind(version).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>((deleted > 0).then_some(chunk_ids))
        }.await)
        .map_err(DbError::query("delete version"))
    }

    /// Chunk ids of a document, of one version or all.
    pub async fn chunk_ids(&self, document_id: &str, version: Option<i32>) -> Result<Vec<i64>, DbError> {
        match version {
            Some(version) => on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM chunks WHERE document_id = $1 AND version = $2 ORDER BY id")
                .bind(document_id).bind(version).fetch_all(pool).await),
            None => on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM chunks WHERE document_id = $1 ORDER BY id")
                .bind(document_id).fetch_all(pool).await),
        }
        .map_err(DbError::query("chunk ids"))
    }

    /// Stored embeddings of a document's chunks with their content hashes, any version (hashes may repeat).
    pub async fn embeddings_by_hash(&self, document_id: &str) -> Result<Vec<(String, Vec<u8>)>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT content_hash, embedding FROM chunks WHERE document_id = $1")
            .bind(document_id).fetch_all(pool).await)
        .map_err(DbError::query("embeddings by hash"))
    }

    /// Claim the oldest runnable ingestion job (`index` or `summary`):
    /// queued and due, or running with an expired lease, with attempts left
    /// (fewer than `max_attempts`). Jobs whose attempts are used up are
    /// made dead first ([`Db::give_up_exhausted_jobs`]).
    pub async fn claim_ingest_job(&self, now_ms: i64, lease_ms: i64, max_attempts: i32) -> Result<Option<JobRow>, DbError> {
        self.give_up_exhausted_jobs(now_ms, max_attempts).await?;
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, claims = claims + 1, locked_until_ms = $2, updated_at_ms = $1 WHERE id = COALESCE(\
             (SELECT id FROM jobs WHERE status = 'running' AND locked_until_ms < $1 AND attempts < $3 AND kind IN ('index', 'summary') LIMIT 1{lock}), \
             (SELECT id FROM jobs WHERE status = 'queued' AND run_after_ms <= $1 AND attempts < $3 AND kind IN ('index', 'summary') \
              ORDER BY priority DESC, run_after_ms, created_at_ms LIMIT 1{lock})) RETURNING {}",
            job_columns!()
        );
        on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(now_ms + lease_ms).bind(max_attempts).fetch_optional(pool).await)
            .map_err(DbError::query("claim ingest job"))
    }

    /// Make dead every ingestion job that would be runnable but has no
    /// attempts left: its worker died (or was stopped) during the last one.
    /// Each ends like a job given up on ([`Db::fail_ingest`]), with the
    /// reason and the last recorded error. Returns the jobs.
    pub async fn give_up_exhausted_jobs(&self, now_ms: i64, max_attempts: i32) -> Result<Vec<JobRow>, DbError> {
        const PICK: &str = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ((status = 'queued' AND run_after_ms <= $1) \
                            OR (status = 'running' AND locked_until_ms < $1)) AND attempts >= $2 AND kind IN ('index', 'summary') ORDER BY created_at_ms LIMIT 100"
        );
        const ANY: &str = "SELECT id FROM jobs WHERE ((status = 'queued' AND run_after_ms <= $1) \
                           OR (status = 'running' AND locked_until_ms < $1)) AND attempts >= $2 AND kind IN ('index', 'summary') LIMIT 1";
        // Looked for without a write transaction first: this runs before every claim.
        let any: Option<String> =
            on_pool!(self, pool => sqlx::query_scalar(ANY).bind(now_ms).bind(max_attempts).fetch_optional(pool).await).map_err(DbError::query("find exhausted ingest jobs"))?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let sql = match self.backend() {
            Backend::Sqlite => PICK.to_owned(),
            Backend::Postgres => format!("{PICK} FOR UPDATE SKIP LOCKED"),
        };
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let jobs: Vec<JobRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(max_attempts).fetch_all(&mut *tx).await?;
            for job in &jobs {
                let last = job.error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default();
                let reason = format!("gave up after {} attempts; the worker may have crashed or been stopped while processing it{last}", job.attempts);
                mark_failed!(tx, job, &reason, JobStatus::Dead, now_ms);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(jobs)
        }.await)
        .map_err(DbError::query("give up exhausted ingest jobs"))
    }

    /// Extend a running job's lease while its claim is still this worker's;
    /// false when another worker has taken the job over.
    pub async fn renew_ingest_lease(&self, job: &JobRow, now_ms: i64, lease_ms: i64) -> Result<bool, DbError> {
        let renewed = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET locked_until_ms = $1, updated_at_ms = $2 WHERE id = $3 AND status = 'running' AND claims = $4")
            .bind(now_ms + lease_ms).bind(now_ms).bind(&job.id).bind(job.claims).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("renew ingest lease"))?;
        Ok(renewed == 1)
    }

    /// Store a version's chunks (replacing any a crashed attempt left) and mark it processing; returns their ids in order.
    pub async fn store_chunks(&self, job: &JobRow, chunks: &[NewChunk]) -> Result<Vec<i64>, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("DELETE FROM chunks WHERE document_id = $1 AND version = $2").bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            let mut ids = Vec::with_capacity(chunks.len());
            for c in chunks {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO chunks (tenant_id, document_id, version, ordinal, content_hash, text, heading_path, page, token_count, embedding) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")
                    .bind(&job.tenant_id).bind(&job.document_id).bind(job.version).bind(c.ordinal).bind(&c.content_hash)
                    .bind(&c.text).bind(&c.heading_path).bind(c.page).bind(c.token_count).bind(&c.embedding)
                    .fetch_one(&mut *tx).await?;
                ids.push(id);
            }
            sqlx::query("UPDATE document_versions SET status = 'processing' WHERE document_id = $1 AND version = $2")
                .bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            sqlx::query("UPDATE documents SET status = 'processing' WHERE id = $1 AND latest_version = $2")
                .bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(ids)
        }.await)
        .map_err(DbError::query("store chunks"))
    }

    /// Make the job's version current (its chunks are indexed) in one
    /// transaction, queueing `summary_job` for it when given; returns the
    /// previous current version, whose chunks the caller unindexes.
    pub async fn finish_ingest(&self, job: &JobRow, chunk_count: i32, summary_job: Option<&JobRow>, now_ms: i64) -> Result<Option<i32>, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            if let Some(summary_job) = summary_job {
                bind_job!(tx, summary_job);
                sqlx::query("UPDATE document_versions SET summary_status = 'queued', summary_error = NULL WHERE document_id = $1 AND version = $2")
                    .bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            }
            let previous: Option<i32> = sqlx::query_scalar("SELECT current_version FROM documents WHERE id = $1")
                .bind(&job.document_id).fetch_optional(&mut *tx).await?.flatten();
            sqlx::query("UPDATE document_versions SET status = 'succeeded', error = NULL, chunk_count = $1 WHERE document_id = $2 AND version = $3")
                .bind(chunk_count).bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            sqlx::query("UPDATE documents SET current_version = $1, status = CASE WHEN latest_version = $1 THEN 'succeeded' ELSE status END, \
                         error = CASE WHEN latest_version = $1 THEN NULL ELSE error END, updated_at_ms = $2 WHERE id = $3")
                .bind(job.version).bind(now_ms).bind(&job.document_id).execute(&mut *tx).await?;
            sqlx::query("UPDATE jobs SET status = 'succeeded', error = NULL, locked_until_ms = NULL, updated_at_ms = $1, finished_at_ms = $1 WHERE id = $2")
                .bind(now_ms).bind(&job.id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(previous.filter(|v| *v != job.version))
        }.await)
        .map_err(DbError::query("finish ingest"))
    }

    /// Record a failed attempt: retry at `retry_at_ms`, or end it for good
    /// as `failed` (the document is at fault) or `dead` (attempts used up)
    /// with `error` (an index job fails its version; a summary job only the
    /// version's summary).
    pub async fn fail_ingest(&self, job: &JobRow, error: &str, next: IngestRetry, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let status = match next {
                IngestRetry::At(at) => {
                    sqlx::query("UPDATE jobs SET status = 'queued', run_after_ms = $1, locked_until_ms = NULL, error = $2, updated_at_ms = $3 WHERE id = $4")
                        .bind(at).bind(error).bind(now_ms).bind(&job.id).execute(&mut *tx).await?;
                    return tx.commit().await;
                }
                IngestRetry::Never => JobStatus::Failed,
                IngestRetry::GaveUp => JobStatus::Dead,
            };
            mark_failed!(tx, job, error, status, now_ms);
            tx.commit().await
        }.await)
        .map_err(DbError::query("fail ingest"))
    }

    /// Whether any document's current version has chunks (what an index should hold).
    pub async fn has_current_chunks(&self) -> Result<bool, DbError> {
        let sql = "SELECT COUNT(*) FROM (SELECT 1 FROM chunks c JOIN documents d ON d.id = c.document_id AND d.current_version = c.version LIMIT 1) AS any_chunk";
        on_pool!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await).map(|n| n > 0).map_err(DbError::query("any current chunk"))
    }

    /// Chunks of documents' current versions with ids above `after_id`, in id order, at most `limit`.
    pub async fn current_chunks_page(&self, after_id: i64, limit: i64) -> Result<Vec<CurrentChunkRow>, DbError> {
        let sql = "SELECT c.id, c.tenant_id, c.document_id, c.ordinal, c.content_hash, c.text, c.heading_path, c.page, c.token_count, c.embedding \
             FROM chunks c JOIN documents d ON d.id = c.document_id AND d.current_version = c.version WHERE c.id > $1 ORDER BY c.id LIMIT $2";
        on_pool!(self, pool => sqlx::query_as(sql).bind(after_id).bind(limit).fetch_all(pool).await).map_err(DbError::query("current chunks"))
    }

    /// The stored chunks of one version (its summary chunk first), with their embeddings.
    pub async fn version_chunks(&self, document_id: &str, version: i32) -> Result<Vec<StoredChunkRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT id, ordinal, text, heading_path, page, embedding FROM chunks WHERE document_id = $1 AND version = $2 ORDER BY ordinal")
            .bind(document_id).bind(version).fetch_all(pool).await)
        .map_err(DbError::query("version chunks"))
    }

    /// Store `chunk` as the summary chunk of the job's version, replacing any
    /// an earlier attempt stored; returns the replaced chunks' ids (to
    /// unindex) and the new chunk's id (to index).
    pub async fn replace_summary_chunk(&self, job: &JobRow, chunk: &NewChunk) -> Result<(Vec<i64>, i64), DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let stale: Vec<i64> = sqlx::query_scalar("DELETE FROM chunks WHERE document_id = $1 AND version = $2 AND ordinal = $3 RETURNING id")
                .bind(&job.document_id).bind(job.version).bind(SUMMARY_ORDINAL).fetch_all(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO chunks (tenant_id, document_id, version, ordinal, content_hash, text, heading_path, page, token_count, embedding) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")
                .bind(&job.tenant_id).bind(&job.document_id).bind(job.version).bind(SUMMARY_ORDINAL).bind(&chunk.content_hash)
                .bind(&chunk.text).bind(&chunk.heading_path).bind(chunk.page).bind(chunk.token_count).bind(&chunk.embedding)
                .fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>((stale, id))
        }.await)
        .map_err(DbError::query("store summary chunk"))
    }

    /// Record the summary of the job's version and finish the job.
    pub async fn finish_summary(&self, job: &JobRow, summary: &str, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("UPDATE document_versions SET summary = $1, summary_status = 'succeeded', summary_error = NULL WHERE document_id = $2 AND version = $3")
                .bind(summary).bind(&job.document_id).bind(job.version).execute(&mut *tx).await?;
            sqlx::query("UPDATE jobs SET status = 'succeeded', error = NULL, locked_until_ms = NULL, updated_at_ms = $1, finished_at_ms = $1 WHERE id = $2")
                .bind(now_ms).bind(&job.id).execute(&mut *tx).await?;
            tx.commit().await
        }.await)
        .map_err(DbError::query("finish summary"))
    }

    pub async fn ingest_job(&self, tenant_id: &str, id: &str) -> Result<Option<JobRow>, DbError> {
        const SQL: &str = concat!("SELECT ", job_columns!(), " FROM jobs WHERE tenant_id = $1 AND id = $2 AND kind IN ('index', 'summary')");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get ingest job"))
    }

    /// The chunks among `ids` that belong to their document's current version, with the document's title.
    pub async fn visible_chunks(&self, tenant_id: &str, ids: &[i64]) -> Result<Vec<ChunkHitRow>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT c.id, c.document_id, d.collection_id, c.version, c.ordinal, d.title, c.text, c.heading_path, c.page \
             FROM chunks c JOIN documents d ON d.id = c.document_id AND d.current_version = c.version \
             WHERE d.tenant_id = $1 AND c.id IN ({})",
            placeholders_after_tenant(ids.len())
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(tenant_id);
            for id in ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })
        .map_err(DbError::query("visible chunks"))
    }

    /// The distinct ACLs (JSON text) of a tenant's documents in `collection_ids`
    /// (every collection when empty), for the semantic cache's reader fingerprint.
    pub async fn distinct_document_acls(&self, tenant_id: &str, collection_ids: &[String]) -> Result<Vec<String>, DbError> {
        let mut sql = "SELECT DISTINCT acl FROM documents WHERE tenant_id = $1".to_owned();
        if !collection_ids.is_empty() {
            sql.push_str(&format!(" AND collection_id IN ({})", placeholders_after_tenant(collection_ids.len())));
        }
        sql.push_str(" ORDER BY acl");
        on_pool!(self, pool => {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(tenant_id);
            for id in collection_ids {
                query = query.bind(id);
            }
            query.fetch_all(pool).await
        })
        .map_err(DbError::query("distinct document acls"))
    }
}

/// `$2, $3, …` for `count` values bound after the tenant id (`$1`).
fn placeholders_after_tenant(count: usize) -> String {
    (0..count).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ")
}
