//! Rows of files (`/v1/files`, their bytes in parts of up to 1 MiB) and of
//! batches (`/v1/batches`) with one result row per answered line. A line's
//! result is stored in the same transaction as the usage records of the
//! calls that answered it ([`Db::store_batch_result`]), so a line is
//! answered and billed once whatever crashes around it.
//!
//! Must not: parse lines or decide who sees what (agentry-core does).

use agentry_types::BatchStatus;

use crate::model_calls::{ModelCallRecord, insert_records_on};
use crate::{Db, DbError, on_pool};

/// A file as stored (its bytes are in `file_parts`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FileRecord {
    pub id: String,
    pub tenant_id: String,
    /// `user:<id>` or `master`.
    pub owner: String,
    /// `batch` (uploaded input) or `batch_output` (a batch's output or error file).
    pub purpose: String,
    pub filename: String,
    /// `uploading` until the last part is stored, then `processed`.
    pub status: String,
    pub bytes: i64,
    /// Request lines, for batch input.
    pub lines: i64,
    /// The endpoint every line of a batch input calls.
    pub endpoint: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

macro_rules! file_columns {
    () => {
        "id, tenant_id, owner, purpose, filename, status, bytes, lines, endpoint, created_at_ms, expires_at_ms"
    };
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BatchRecord {
    pub id: String,
    pub tenant_id: String,
    pub owner: String,
    pub endpoint: String,
    pub input_file_id: String,
    pub completion_window: String,
    #[sqlx(try_from = "String")]
    pub status: BatchStatus,
    pub output_file_id: Option<String>,
    pub error_file_id: Option<String>,
    /// Why it failed (JSON list of `{code, message}`).
    pub errors: Option<String>,
    /// The caller's metadata (JSON object).
    pub metadata: Option<String>,
    pub job_id: Option<String>,
    pub total: i64,
    pub completed: i64,
    pub failed: i64,
    pub created_at_ms: i64,
    pub in_progress_at_ms: Option<i64>,
    pub finalizing_at_ms: Option<i64>,
    pub completed_at_ms: Option<i64>,
    pub failed_at_ms: Option<i64>,
    pub expired_at_ms: Option<i64>,
    pub cancelling_at_ms: Option<i64>,
    pub cancelled_at_ms: Option<i64>,
    pub expires_at_ms: i64,
}

macro_rules! batch_columns {
    () => {
        "id, tenant_id, owner, endpoint, input_file_id, completion_window, status, output_file_id, error_file_id, errors, metadata, job_id, \
         total, completed, failed, created_at_ms, in_progress_at_ms, finalizing_at_ms, completed_at_ms, failed_at_ms, expired_at_ms, \
         cancelling_at_ms, cancelled_at_ms, expires_at_ms"
    };
}

/// One answered line of a batch: its output-file line (`ok`) or error-file line.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BatchResult {
    pub line: i64,
    pub custom_id: String,
    pub ok: bool,
    pub output: String,
}

/// Which rows a listing shows: one owner's (every owner's when `None`), newest first, after a (created_at_ms, id).
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnedPage<'a> {
    pub owner: Option<&'a str>,
    pub after: Option<(i64, &'a str)>,
    pub limit: i64,
}

/// How a batch ended.
#[derive(Debug, Clone, Default)]
pub struct BatchEnd<'a> {
    pub output_file_id: Option<&'a str>,
    pub error_file_id: Option<&'a str>,
    pub errors: Option<&'a str>,
}

impl Db {
    /// Store a new file row (`uploading`, no parts yet).
    pub async fn insert_file(&self, file: &FileRecord) -> Result<(), DbError> {
        const SQL: &str = concat!("INSERT INTO files (", file_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&file.id).bind(&file.tenant_id).bind(&file.owner).bind(&file.purpose).bind(&file.filename).bind(&file.status)
            .bind(file.bytes).bind(file.lines).bind(&file.endpoint).bind(file.created_at_ms).bind(file.expires_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert file"))?;
        Ok(())
    }

    /// Store part `seq` of a file's bytes.
    pub async fn insert_file_part(&self, file_id: &str, seq: i32, data: &[u8]) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO file_parts (file_id, seq, data) VALUES ($1, $2, $3)")
            .bind(file_id).bind(seq).bind(data).execute(pool).await.map(drop))
        .map_err(DbError::write("insert file part"))?;
        Ok(())
    }

    /// Mark an uploaded file complete with its size and, for batch input, its lines and endpoint.
    pub async fn finish_file(&self, id: &str, bytes: i64, lines: i64, endpoint: Option<&str>) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE files SET status = 'processed', bytes = $1, lines = $2, endpoint = $3 WHERE id = $4")
            .bind(bytes).bind(lines).bind(endpoint).bind(id).execute(pool).await.map(drop))
        .map_err(DbError::query("finish file"))?;
        Ok(())
    }

    /// A tenant's file, whatever its status.
    pub async fn file(&self, tenant_id: &str, id: &str) -> Result<Option<FileRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", file_columns!(), " FROM files WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get file"))
    }

    /// A tenant's complete files of `purpose` (any when `None`), newest first.
    pub async fn files(&self, tenant_id: &str, purpose: Option<&str>, page: OwnedPage<'_>) -> Result<Vec<FileRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            file_columns!(),
            " FROM files WHERE tenant_id = $1 AND status = 'processed' AND ($2 = '' OR owner = $2) AND ($3 = '' OR purpose = $3) \
             AND created_at_ms <= $4 AND ($5 = '' OR created_at_ms < $4 OR id < $5) ORDER BY created_at_ms DESC, id DESC LIMIT $6"
        );
        let (at, after) = page.after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(tenant_id).bind(page.owner.unwrap_or_default()).bind(purpose.unwrap_or_default()).bind(at).bind(after).bind(page.limit)
            .fetch_all(pool).await)
        .map_err(DbError::query("list files"))
    }

    /// Part `seq` of a file's bytes; `None` past the last.
    pub async fn file_part(&self, file_id: &str, seq: i32) -> Result<Option<Vec<u8>>, DbError> {
        let part: Option<(Vec<u8>,)> = on_pool!(self, pool => sqlx::query_as("SELECT data FROM file_parts WHERE file_id = $1 AND seq = $2")
            .bind(file_id).bind(seq).fetch_optional(pool).await)
        .map_err(DbError::query("get file part"))?;
        Ok(part.map(|(data,)| data))
    }

    /// Delete a tenant's file and its bytes; false when there was none.
    pub async fn delete_file(&self, tenant_id: &str, id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let deleted = sqlx::query("DELETE FROM files WHERE tenant_id = $1 AND id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await?.rows_affected();
            if deleted == 1 {
                sqlx::query("DELETE FROM file_parts WHERE file_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(deleted == 1)
        }.await)
        .map_err(DbError::query("delete file"))
    }

    /// Whether a batch that has not ended reads `file_id`.
    pub async fn file_in_use(&self, tenant_id: &str, file_id: &str) -> Result<bool, DbError> {
        let row: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id FROM batches WHERE tenant_id = $1 AND input_file_id = $2 AND status NOT IN ('completed', 'expired', 'cancelled', 'failed') LIMIT 1")
            .bind(tenant_id).bind(file_id).fetch_optional(pool).await)
        .map_err(DbError::query("file in use"))?;
        Ok(row.is_some())
    }

    /// Delete up to 100 files, with their bytes, that expired before
    /// `now_ms` (unless a batch that has not ended reads them) or whose
    /// upload started before `stale_upload_ms` and never finished; returns how many.
    pub async fn delete_expired_files(&self, now_ms: i64, stale_upload_ms: i64) -> Result<u64, DbError> {
        let expired: Vec<(String, String)> = on_pool!(self, pool => sqlx::query_as(
            "SELECT tenant_id, id FROM files f WHERE (expires_at_ms < $1 AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.tenant_id = f.tenant_id \
             AND b.input_file_id = f.id AND b.status NOT IN ('completed', 'expired', 'cancelled', 'failed'))) \
             OR (status = 'uploading' AND created_at_ms < $2) LIMIT 100")
            .bind(now_ms).bind(stale_upload_ms).fetch_all(pool).await)
        .map_err(DbError::query("expired files"))?;
        let mut deleted = 0;
        for (tenant_id, id) in expired {
            deleted += u64::from(self.delete_file(&tenant_id, &id).await?);
        }
        Ok(deleted)
    }

    /// Store a new batch.
    pub async fn insert_batch(&self, batch: &BatchRecord) -> Result<(), DbError> {
        const SQL: &str = concat!(
            "INSERT INTO batches (",
            batch_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)"
        );
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&batch.id).bind(&batch.tenant_id).bind(&batch.owner).bind(&batch.endpoint).bind(&batch.input_file_id).bind(&batch.completion_window)
            .bind(batch.status.as_str()).bind(&batch.output_file_id).bind(&batch.error_file_id).bind(&batch.errors).bind(&batch.metadata).bind(&batch.job_id)
            .bind(batch.total).bind(batch.completed).bind(batch.failed).bind(batch.created_at_ms).bind(batch.in_progress_at_ms).bind(batch.finalizing_at_ms)
            .bind(batch.completed_at_ms).bind(batch.failed_at_ms).bind(batch.expired_at_ms).bind(batch.cancelling_at_ms).bind(batch.cancelled_at_ms)
            .bind(batch.expires_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert batch"))?;
        Ok(())
    }

    /// Record the job that answers a batch.
    pub async fn set_batch_job(&self, id: &str, job_id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE batches SET job_id = $1 WHERE id = $2").bind(job_id).bind(id).execute(pool).await.map(drop))
            .map_err(DbError::query("set batch job"))?;
        Ok(())
    }

    /// A tenant's batch.
    pub async fn batch(&self, tenant_id: &str, id: &str) -> Result<Option<BatchRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", batch_columns!(), " FROM batches WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get batch"))
    }

    /// A tenant's batches, newest first.
    pub async fn batches(&self, tenant_id: &str, page: OwnedPage<'_>) -> Result<Vec<BatchRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            batch_columns!(),
            " FROM batches WHERE tenant_id = $1 AND ($2 = '' OR owner = $2) \
             AND created_at_ms <= $3 AND ($4 = '' OR created_at_ms < $3 OR id < $4) ORDER BY created_at_ms DESC, id DESC LIMIT $5"
        );
        let (at, after) = page.after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(page.owner.unwrap_or_default()).bind(at).bind(after).bind(page.limit).fetch_all(pool).await)
            .map_err(DbError::query("list batches"))
    }

    /// Move a batch from one of `from` to `to`, stamping `to`'s time
    /// column; false when it was in none of them.
    pub async fn move_batch(&self, id: &str, from: &[BatchStatus], to: BatchStatus, now_ms: i64) -> Result<bool, DbError> {
        let column = status_time_column(to);
        let from = from.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ");
        let sql = format!("UPDATE batches SET status = $1, {column} = COALESCE({column}, $2) WHERE id = $3 AND status IN ({from})");
        let moved = on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(to.as_str()).bind(now_ms).bind(id).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::query("move batch"))?;
        Ok(moved == 1)
    }

    /// End a batch that is not ended yet with `status` (completed, expired,
    /// cancelled, failed) and its files or errors; false when it had ended.
    pub async fn end_batch(&self, id: &str, status: BatchStatus, end: &BatchEnd<'_>, now_ms: i64) -> Result<bool, DbError> {
        let column = status_time_column(status);
        let sql = format!(
            "UPDATE batches SET status = $1, {column} = $2, output_file_id = $3, error_file_id = $4, errors = $5 \
             WHERE id = $6 AND status NOT IN ('completed', 'expired', 'cancelled', 'failed')"
        );
        let ended = on_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(status.as_str()).bind(now_ms).bind(end.output_file_id).bind(end.error_file_id).bind(end.errors).bind(id)
            .execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("end batch"))?;
        Ok(ended == 1)
    }

    /// Open an ended batch again (its job was retried): `validating`, a new
    /// completion window from `now_ms`, no files or errors; answered lines are kept.
    pub async fn reopen_batch(&self, tenant_id: &str, id: &str, now_ms: i64, window_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE batches SET status = 'validating', output_file_id = NULL, error_file_id = NULL, errors = NULL, finalizing_at_ms = NULL, \
             completed_at_ms = NULL, failed_at_ms = NULL, expired_at_ms = NULL, cancelling_at_ms = NULL, cancelled_at_ms = NULL, expires_at_ms = $1 \
             WHERE tenant_id = $2 AND id = $3 AND status IN ('completed', 'expired', 'cancelled', 'failed')")
            .bind(now_ms + window_ms).bind(tenant_id).bind(id).execute(pool).await.map(drop))
        .map_err(DbError::query("reopen batch"))
    }

    /// The lines of a batch that have a result.
    pub async fn answered_batch_lines(&self, batch_id: &str) -> Result<Vec<i64>, DbError> {
        let rows: Vec<(i64,)> = on_pool!(self, pool => sqlx::query_as("SELECT line FROM batch_results WHERE batch_id = $1").bind(batch_id).fetch_all(pool).await)
            .map_err(DbError::query("answered batch lines"))?;
        Ok(rows.into_iter().map(|(line,)| line).collect())
    }

    /// Store a line's result, count it on the batch, and insert the usage
    /// records of the calls that answered it — one transaction. False (and
    /// nothing written) when the line already had a result or the batch ended.
    pub async fn store_batch_result(&self, batch_id: &str, result: &BatchResult, records: &[ModelCallRecord]) -> Result<bool, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let inserted = sqlx::query("INSERT INTO batch_results (batch_id, line, custom_id, ok, output) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
                .bind(batch_id).bind(result.line).bind(&result.custom_id).bind(result.ok).bind(&result.output)
                .execute(&mut *tx).await?.rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            // Only while the batch runs: an answer that arrives after it ended is in none of its files, and not billed.
            let counter = if result.ok { "completed = completed + 1" } else { "failed = failed + 1" };
            let counted = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE batches SET {counter} WHERE id = $1 AND status IN ('validating', 'in_progress', 'cancelling')"
            )))
            .bind(batch_id).execute(&mut *tx).await?.rows_affected();
            if counted == 0 {
                return Ok(false);
            }
            if !records.is_empty() {
                insert_records_on!(tx, records);
            }
            tx.commit().await?;
            Ok(true)
        }.await)
        .map_err(DbError::query("store batch result"))
    }

    /// A batch's results of one kind (`ok`: output lines, else error lines) in line order, after `after_line`.
    pub async fn batch_results(&self, batch_id: &str, ok: bool, after_line: i64, limit: i64) -> Result<Vec<BatchResult>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT line, custom_id, ok, output FROM batch_results WHERE batch_id = $1 AND ok = $2 AND line > $3 ORDER BY line LIMIT $4")
            .bind(batch_id).bind(ok).bind(after_line).bind(limit).fetch_all(pool).await)
        .map_err(DbError::query("batch results"))
    }
}

/// The time column a batch status stamps.
fn status_time_column(status: BatchStatus) -> &'static str {
    match status {
        BatchStatus::Validating => "created_at_ms",
        BatchStatus::InProgress => "in_progress_at_ms",
        BatchStatus::Finalizing => "finalizing_at_ms",
        BatchStatus::Completed => "completed_at_ms",
        BatchStatus::Failed => "failed_at_ms",
        BatchStatus::Expired => "expired_at_ms",
        BatchStatus::Cancelling => "cancelling_at_ms",
        BatchStatus::Cancelled => "cancelled_at_ms",
    }
}
