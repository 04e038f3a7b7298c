//! Rows of native batches (`/api/v1/batches`): a batch, its items with
//! their input until submitted, and what each item became (its run or
//! document and the job doing its work) or why it was refused. A batch,
//! its items and its `bulk_submit` job are written in one transaction;
//! progress is counted from the items' jobs.
//!
//! Must not: decide what an item does or who may see a batch (agentry-core does).

use crate::jobs::{JobRecord, insert_job_on};
use crate::{Db, DbError, begin_write, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkRecord {
    pub id: String,
    pub tenant_id: String,
    /// Who submitted it (`user:<id>`, `key:<id>`, `master`).
    pub owner: String,
    /// `agent_runs` or `documents`.
    pub kind: String,
    pub collection_id: Option<String>,
    /// `submitting`, `submitted` or `cancelled`.
    pub status: String,
    pub total: i64,
    /// The `bulk_submit` job.
    pub job_id: String,
    /// JSON object.
    pub metadata: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkItemRecord {
    pub position: i64,
    pub custom_id: Option<String>,
    /// The item's input (JSON) until it is submitted.
    pub input: Option<String>,
    pub subject_id: Option<String>,
    pub job_id: Option<String>,
    pub error: Option<String>,
}

/// An item with the state of its job.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkItemState {
    pub position: i64,
    pub custom_id: Option<String>,
    pub subject_id: Option<String>,
    pub job_id: Option<String>,
    pub error: Option<String>,
    pub job_status: Option<String>,
    pub job_error: Option<String>,
}

/// Items of a batch in one state: `pending` (not submitted yet), `rejected`
/// (refused at submission), `unchanged` (an upload of bytes its document
/// already had: no job), or their job's status.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BulkStateCount {
    pub state: String,
    pub items: i64,
}

macro_rules! bulk_columns {
    () => {
        "id, tenant_id, owner, kind, collection_id, status, total, job_id, metadata, created_at_ms, updated_at_ms"
    };
}

/// Items written per statement.
const ITEMS_PER_INSERT: usize = 500;

impl Db {
    /// Store a batch with its items and its submit job. When the job's
    /// idempotency key was used before by its owner, nothing is written and
    /// the batch that key made is returned (`false`: not new).
    pub async fn insert_bulk(&self, batch: &BulkRecord, items: &[BulkItemRecord], job: &JobRecord) -> Result<(BulkRecord, bool), DbError> {
        const BATCH: &str = concat!("INSERT INTO bulk_batches (", bulk_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        let inserted = on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin batch"))?;
            if insert_job_on!(&mut *tx, job)? == 0 {
                Ok::<_, DbError>(false)
            } else {
                sqlx::query(BATCH)
                    .bind(&batch.id).bind(&batch.tenant_id).bind(&batch.owner).bind(&batch.kind).bind(&batch.collection_id).bind(&batch.status)
                    .bind(batch.total).bind(&batch.job_id).bind(&batch.metadata).bind(batch.created_at_ms).bind(batch.updated_at_ms)
                    .execute(&mut *tx).await.map_err(DbError::write("insert batch"))?;
                for chunk in items.chunks(ITEMS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::new("INSERT INTO bulk_items (batch_id, position, custom_id, input) ");
                    insert.push_values(chunk, |mut row, item| {
                        row.push_bind(&batch.id).push_bind(item.position).push_bind(&item.custom_id).push_bind(&item.input);
                    });
                    insert.build().execute(&mut *tx).await.map_err(DbError::write("insert batch items"))?;
                }
                tx.commit().await.map_err(DbError::write("commit batch"))?;
                Ok(true)
            }
        })?;
        if inserted {
            return Ok((batch.clone(), true));
        }
        const EXISTING: &str = concat!(
            "SELECT ",
            bulk_columns!(),
            " FROM bulk_batches WHERE id = (SELECT subject_id FROM jobs WHERE tenant_id = $1 AND kind = $2 AND owner = $3 AND idempotency_key = $4)"
        );
        let existing: Option<BulkRecord> = on_pool!(self, pool => sqlx::query_as(EXISTING)
            .bind(&job.tenant_id).bind(job.kind.as_str()).bind(&job.owner).bind(&job.idempotency_key).fetch_optional(pool).await)
        .map_err(DbError::query("existing batch"))?;
        existing.map(|row| (row, false)).ok_or(DbError::Conflict { context: "insert batch" })
    }

    pub async fn bulk(&self, tenant_id: &str, id: &str) -> Result<Option<BulkRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", bulk_columns!(), " FROM bulk_batches WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get batch"))
    }

    /// A tenant's batches (only `owner`'s when given), newest first, before `after`'s (created_at_ms, id).
    pub async fn bulks(&self, tenant_id: &str, owner: Option<&str>, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<BulkRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            bulk_columns!(),
            " FROM bulk_batches WHERE tenant_id = $1 AND ($2 = '' OR owner = $2) \
             AND created_at_ms <= $3 AND ($4 = '' OR created_at_ms < $3 OR id < $4) ORDER BY created_at_ms DESC, id DESC LIMIT $5"
        );
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(owner.unwrap_or_default()).bind(at).bind(id).bind(limit).fetch_all(pool).await)
            .map_err(DbError::query("list batches"))
    }

    /// The next items of a batch still to submit, in order.
    pub async fn unsubmitted_bulk_items(&self, batch_id: &str, limit: i64) -> Result<Vec<BulkItemRecord>, DbError> {
        const SQL: &str = "SELECT position, custom_id, input, subject_id, job_id, error FROM bulk_items \
             WHERE batch_id = $1 AND subject_id IS NULL AND error IS NULL ORDER BY position LIMIT $2";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(batch_id).bind(limit).fetch_all(pool).await).map_err(DbError::query("unsubmitted batch items"))
    }

    /// Record what an item became (or why it was refused) and drop its input.
    pub async fn settle_bulk_item(&self, batch_id: &str, position: i64, subject_id: Option<&str>, job_id: Option<&str>, error: Option<&str>) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE bulk_items SET subject_id = $1, job_id = $2, error = $3, input = NULL WHERE batch_id = $4 AND position = $5")
            .bind(subject_id).bind(job_id).bind(error).bind(batch_id).bind(position).execute(pool).await.map(drop))
        .map_err(DbError::write("settle batch item"))
    }

    /// Set a batch's status, unless it is `cancelled`; whether it changed.
    pub async fn set_bulk_status(&self, tenant_id: &str, id: &str, status: &str, now_ms: i64) -> Result<bool, DbError> {
        let changed = on_pool!(self, pool => sqlx::query("UPDATE bulk_batches SET status = $1, updated_at_ms = $2 WHERE tenant_id = $3 AND id = $4 AND status <> 'cancelled'")
            .bind(status).bind(now_ms).bind(tenant_id).bind(id).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::write("set batch status"))?;
        Ok(changed == 1)
    }

    /// A batch's items with their jobs' states, in order, after `after` (a position).
    pub async fn bulk_items(&self, batch_id: &str, after: i64, limit: i64) -> Result<Vec<BulkItemState>, DbError> {
        const SQL: &str = "SELECT i.position, i.custom_id, i.subject_id, i.job_id, i.error, j.status AS job_status, j.error AS job_error \
             FROM bulk_items i LEFT JOIN jobs j ON j.id = i.job_id WHERE i.batch_id = $1 AND i.position > $2 ORDER BY i.position LIMIT $3";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(batch_id).bind(after).bind(limit).fetch_all(pool).await).map_err(DbError::query("batch items"))
    }

    /// How many of a batch's items are in each state.
    pub async fn bulk_progress(&self, batch_id: &str) -> Result<Vec<BulkStateCount>, DbError> {
        const SQL: &str = "SELECT CASE WHEN i.error IS NOT NULL THEN 'rejected' WHEN i.subject_id IS NULL THEN 'pending' WHEN i.job_id IS NULL THEN 'unchanged' \
             ELSE COALESCE(j.status, 'ended') END AS state, \
             COUNT(*) AS items FROM bulk_items i LEFT JOIN jobs j ON j.id = i.job_id WHERE i.batch_id = $1 GROUP BY 1";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(batch_id).fetch_all(pool).await).map_err(DbError::query("batch progress"))
    }
}
