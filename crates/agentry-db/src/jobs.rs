//! Rows of the durable job queue (`jobs`): every kind of background work —
//! ingestion and summaries ([`crate::knowledge`] keeps their transactional
//! steps), background agent runs, and whatever else is queued.
//!
//! A job is claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! SQLite has one writer, so its claim is a single `UPDATE … RETURNING`).
//! Every write of a running job names the claim it belongs to (`claims`,
//! which only ever grows — a retry resets `attempts`, not `claims`), so a
//! worker that lost its job — another worker claimed it after the lease
//! ran out, or it was cancelled and retried — cannot overwrite the newer
//! claim's outcome. A job whose attempts are used up is never claimed
//! again: the workers turn it `dead` with its last error
//! ([`Db::bury_exhausted_jobs`]).
//!
//! Must not: run jobs or decide who may see them (agentry-core does).

use agentry_types::{JobKind, JobStatus};

use crate::{Backend, Db, DbError, begin_write, on_pool};

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobRecord {
    pub id: String,
    pub tenant_id: String,
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// The object the job works on (a document, a run, …).
    pub subject_id: String,
    /// The subject's version, when it has versions (0 otherwise).
    pub subject_version: i32,
    /// Who asked for it (`user:<id>` or `master`), when anyone did.
    pub owner: Option<String>,
    /// The credential the job acts with (JSON; checked again when it runs).
    pub delegation: Option<String>,
    /// What to do (JSON, the kind's own shape).
    pub payload: String,
    /// Higher runs first.
    pub priority: i32,
    /// Unique per tenant, kind and owner: creating a job with a key that exists returns the existing job.
    pub idempotency_key: Option<String>,
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    pub attempts: i32,
    /// Times it was claimed, ever: the fencing token of its running claim.
    pub claims: i64,
    pub max_attempts: i32,
    pub run_after_ms: i64,
    pub locked_until_ms: Option<i64>,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    /// The last attempt's error.
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

macro_rules! record_columns {
    () => {
        "id, tenant_id, kind, subject_id, subject_version, owner, delegation, payload, priority, idempotency_key, status, attempts, claims, max_attempts, \
         run_after_ms, locked_until_ms, progress_done, progress_total, error, created_at_ms, updated_at_ms, finished_at_ms"
    };
}

/// Inserts a job row ([`insert_job_on`]).
pub(crate) const INSERT_JOB: &str = concat!(
    "INSERT INTO jobs (",
    record_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT DO NOTHING"
);
/// Insert a job on an executor (a pool, or a transaction that also writes
/// what the job is about); a conflict (its idempotency key) inserts nothing.
/// Evaluates to the rows inserted.
macro_rules! insert_job_on {
    ($executor:expr, $job:expr) => {{
        let job: &$crate::jobs::JobRecord = $job;
        sqlx::query($crate::jobs::INSERT_JOB)
            .bind(&job.id)
            .bind(&job.tenant_id)
            .bind(job.kind.as_str())
            .bind(&job.subject_id)
            .bind(job.subject_version)
            .bind(&job.owner)
            .bind(&job.delegation)
            .bind(&job.payload)
            .bind(job.priority)
            .bind(&job.idempotency_key)
            .bind(job.status.as_str())
            .bind(job.attempts)
            .bind(job.claims)
            .bind(job.max_attempts)
            .bind(job.run_after_ms)
            .bind(job.locked_until_ms)
            .bind(job.progress_done)
            .bind(job.progress_total)
            .bind(&job.error)
            .bind(job.created_at_ms)
            .bind(job.updated_at_ms)
            .bind(job.finished_at_ms)
            .execute($executor)
            .await
            .map(|r| r.rows_affected())
            .map_err($crate::DbError::write("insert job"))
    }};
}
pub(crate) use insert_job_on;

/// How a claim of a running job ends ([`Db::settle_and_claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnding<'a> {
    /// For good: succeeded, failed, dead or cancelled, with the last error.
    Ended { status: JobStatus, error: Option<&'a str> },
    /// Back in the queue until `at_ms`, with the attempt's error.
    RetryAt { at_ms: i64, error: &'a str },
}

/// One finished claim to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle<'a> {
    pub id: &'a str,
    /// The claim that ran it (`JobRecord::claims` when it was claimed).
    pub claim: i64,
    pub ending: JobEnding<'a>,
}

/// Which jobs to claim ([`Db::settle_and_claim`]).
#[derive(Debug, Clone, Copy)]
pub struct ClaimRequest<'a> {
    pub kinds: &'a [JobKind],
    pub lease_ms: i64,
    /// At most this many.
    pub limit: i64,
    /// Also take over jobs whose lease ran out (their worker died), before queued ones.
    pub orphans: bool,
}

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    /// Only this owner's (every owner's when `None`).
    pub owner: Option<&'a str>,
    /// Only these kinds (the kinds the reader may see).
    pub kinds: &'a [JobKind],
    pub status: Option<JobStatus>,
}

/// Queue depth of one kind and status, for metrics.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobDepth {
    pub kind: String,
    pub status: String,
    pub count: i64,
    /// When the oldest of them was created.
    pub oldest_created_at_ms: i64,
}

/// What happened to a cancellation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It was waiting: nothing ran, and nothing will.
    WasQueued(JobRecord),
    /// A worker holds it: that worker stops at its next heartbeat.
    WasRunning(JobRecord),
    /// It had already ended; nothing changed.
    AlreadyEnded(JobRecord),
}

/// `kind IN (…)` over `kinds`, with placeholders from `$first`.
fn kinds_clause(kinds: &[JobKind], first: usize) -> String {
    let list = (0..kinds.len()).map(|i| format!("${}", first + i)).collect::<Vec<_>>().join(", ");
    format!("kind IN ({list})")
}

impl Db {
    /// Queue a job. With an idempotency key that its owner already used for
    /// this kind in the tenant, nothing is inserted and the existing job is
    /// returned (`false`: not new).
    pub async fn insert_job(&self, job: &JobRecord) -> Result<(JobRecord, bool), DbError> {
        let inserted = on_pool!(self, pool => insert_job_on!(pool, job))?;
        if inserted == 1 {
            return Ok((job.clone(), true));
        }
        const EXISTING: &str = concat!("SELECT ", record_columns!(), " FROM jobs WHERE (tenant_id = $1 AND kind = $2 AND owner = $3 AND idempotency_key = $4) OR id = $5");
        let existing: Option<JobRecord> = on_pool!(self, pool => sqlx::query_as(EXISTING)
            .bind(&job.tenant_id).bind(job.kind.as_str()).bind(&job.owner).bind(&job.idempotency_key).bind(&job.id).fetch_optional(pool).await)
        .map_err(DbError::query("existing job"))?;
        existing.map(|row| (row, false)).ok_or(DbError::Conflict { context: "insert job" })
    }

    /// Write how finished claims ended and claim more jobs, in one
    /// transaction: a worker pool's one round trip per round. Each of
    /// `settles` is fenced by its claim (`true` where the claim still held
    /// the job and the ending was written; `false` where it had changed
    /// hands or been cancelled). Then up to `claim.limit` jobs of
    /// `claim.kinds`: with `claim.orphans`, jobs whose lease ran out (their
    /// worker died) first, then queued and due jobs by priority and age —
    /// returned in that order.
    pub async fn settle_and_claim(&self, settles: &[Settle<'_>], claim: Option<ClaimRequest<'_>>, now_ms: i64) -> Result<(Vec<bool>, Vec<JobRecord>), DbError> {
        let claim = claim.filter(|c| c.limit > 0 && !c.kinds.is_empty());
        if settles.is_empty() && claim.is_none() {
            return Ok((Vec::new(), Vec::new()));
        }
        let lock = if self.backend() == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin settle and claim"))?;
            let mut written = Vec::with_capacity(settles.len());
            for settle in settles {
                let query = match settle.ending {
                    JobEnding::Ended { status, error } => sqlx::query(
                        "UPDATE jobs SET status = $1, error = $2, locked_until_ms = NULL, updated_at_ms = $3, finished_at_ms = $3 \
                         WHERE id = $4 AND status = 'running' AND claims = $5")
                        .bind(status.as_str()).bind(error).bind(now_ms),
                    JobEnding::RetryAt { at_ms, error } => sqlx::query(
                        "UPDATE jobs SET status = 'queued', run_after_ms = $1, locked_until_ms = NULL, error = $2, updated_at_ms = $3 \
                         WHERE id = $4 AND status = 'running' AND claims = $5")
                        .bind(at_ms).bind(error).bind(now_ms),
                };
                let rows = query.bind(settle.id).bind(settle.claim).execute(&mut *tx).await.map_err(DbError::write("settle job"))?.rows_affected();
                written.push(rows == 1);
            }
            let mut claimed: Vec<JobRecord> = Vec::new();
            if let Some(claim) = claim {
                if self.backend() == Backend::Postgres {
                    // Walk `jobs_queued` in claim order, whatever the statistics say: on a
                    // table that filled faster than it was analysed, the planner would
                    // otherwise fetch every queued row and sort them for each claim
                    // (milliseconds per claim at a few thousand queued jobs).
                    sqlx::query("SELECT set_config('enable_sort', 'off', true), set_config('enable_bitmapscan', 'off', true)")
                        .execute(&mut *tx)
                        .await
                        .map_err(DbError::query("claim plan"))?;
                }
                let kinds_sql = kinds_clause(claim.kinds, 4);
                let mut wanted = vec![("status = 'queued' AND run_after_ms <= $1", "ORDER BY priority DESC, run_after_ms, created_at_ms")];
                if claim.orphans {
                    wanted.insert(0, ("status = 'running' AND locked_until_ms < $1", "ORDER BY locked_until_ms"));
                }
                for (runnable, order) in wanted {
                    let left = claim.limit - claimed.len() as i64;
                    if left <= 0 {
                        break;
                    }
                    let sql = format!(
                        "UPDATE jobs SET status = 'running', attempts = attempts + 1, claims = claims + 1, locked_until_ms = $2, updated_at_ms = $1 WHERE id IN (\
                         SELECT id FROM jobs WHERE {runnable} AND attempts < max_attempts AND {kinds_sql} {order} LIMIT $3{lock}) RETURNING {}",
                        record_columns!()
                    );
                    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now_ms).bind(now_ms + claim.lease_ms).bind(left);
                    for kind in claim.kinds {
                        query = query.bind(kind.as_str());
                    }
                    let mut rows: Vec<JobRecord> = query.fetch_all(&mut *tx).await.map_err(DbError::query("claim jobs"))?;
                    // RETURNING keeps no order: the most urgent first, as they were picked.
                    rows.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_after_ms.cmp(&b.run_after_ms)).then(a.created_at_ms.cmp(&b.created_at_ms)));
                    claimed.extend(rows);
                }
            }
            tx.commit().await.map_err(DbError::write("commit settle and claim"))?;
            Ok((written, claimed))
        })
    }

    /// Turn `dead` every job of `kinds` whose worker died (or was stopped)
    /// during its last allowed attempt — running, lease run out, attempts
    /// used up — keeping its last error; returns them.
    pub async fn bury_exhausted_jobs(&self, kinds: &[JobKind], now_ms: i64) -> Result<Vec<JobRecord>, DbError> {
        let exhausted = format!("status = 'running' AND locked_until_ms < $1 AND attempts >= max_attempts AND {}", kinds_clause(kinds, 2));
        let sql = format!(
            "UPDATE jobs SET status = 'dead', locked_until_ms = NULL, updated_at_ms = $1, finished_at_ms = $1, \
             error = 'gave up after ' || attempts || ' attempts; the worker stopped during the last one' || COALESCE(' (last error: ' || error || ')', '') \
             WHERE id IN (SELECT id FROM jobs WHERE {exhausted} LIMIT 100) AND {exhausted} RETURNING {}",
            record_columns!()
        );
        on_pool!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(now_ms);
            for kind in kinds {
                query = query.bind(kind.as_str());
            }
            query.fetch_all(pool).await
        })
        .map_err(DbError::query("bury exhausted jobs"))
    }

    /// Extend a running job's lease while claim `claim` still holds it;
    /// false when it does not (another worker took over, or it was cancelled).
    pub async fn renew_job_lease(&self, id: &str, claim: i64, now_ms: i64, lease_ms: i64) -> Result<bool, DbError> {
        let renewed = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET locked_until_ms = $1, updated_at_ms = $2 WHERE id = $3 AND status = 'running' AND claims = $4")
            .bind(now_ms + lease_ms).bind(now_ms).bind(id).bind(claim).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("renew job lease"))?;
        Ok(renewed == 1)
    }

    /// Record how far claim `claim`'s job is; false when the claim no longer holds it.
    pub async fn set_job_progress(&self, id: &str, claim: i64, done: i64, total: Option<i64>, now_ms: i64) -> Result<bool, DbError> {
        let set = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET progress_done = $1, progress_total = $2, updated_at_ms = $3 WHERE id = $4 AND status = 'running' AND claims = $5")
            .bind(done).bind(total).bind(now_ms).bind(id).bind(claim).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("set job progress"))?;
        Ok(set == 1)
    }

    /// Hand claim `claim`'s job back to the queue at once without using up
    /// an attempt (its worker is stopping, not failing).
    pub async fn hand_back_job(&self, id: &str, claim: i64, now_ms: i64) -> Result<bool, DbError> {
        let queued = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_after_ms = $1, locked_until_ms = NULL, updated_at_ms = $1 \
             WHERE id = $2 AND status = 'running' AND claims = $3")
            .bind(now_ms).bind(id).bind(claim).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("hand back job"))?;
        Ok(queued == 1)
    }

    pub async fn job(&self, tenant_id: &str, id: &str) -> Result<Option<JobRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", record_columns!(), " FROM jobs WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get job"))
    }

    /// The newest job of `kind` about `subject_id`.
    pub async fn job_of_subject(&self, tenant_id: &str, kind: JobKind, subject_id: &str) -> Result<Option<JobRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", record_columns!(), " FROM jobs WHERE tenant_id = $1 AND kind = $2 AND subject_id = $3 ORDER BY created_at_ms DESC LIMIT 1");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(kind.as_str()).bind(subject_id).fetch_optional(pool).await).map_err(DbError::query("job of subject"))
    }

    /// A tenant's jobs, newest first, after the job with `after`'s (created_at_ms, id).
    pub async fn jobs(&self, tenant_id: &str, filter: &JobFilter<'_>, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<JobRecord>, DbError> {
        if filter.kinds.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {} FROM jobs WHERE tenant_id = $1 AND ($2 = '' OR owner = $2) AND ($3 = '' OR status = $3) \
             AND created_at_ms <= $4 AND ($5 = '' OR created_at_ms < $4 OR id < $5) AND {} ORDER BY created_at_ms DESC, id DESC LIMIT $6",
            record_columns!(),
            kinds_clause(filter.kinds, 7)
        );
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(tenant_id).bind(filter.owner.unwrap_or_default()).bind(filter.status.map(|s| s.as_str()).unwrap_or_default())
                .bind(at).bind(id).bind(limit);
            for kind in filter.kinds {
                query = query.bind(kind.as_str());
            }
            query.fetch_all(pool).await
        })
        .map_err(DbError::query("list jobs"))
    }

    /// Cancel a job that has not ended.
    pub async fn cancel_job(&self, tenant_id: &str, id: &str, now_ms: i64) -> Result<Option<Cancelled>, DbError> {
        let Some(before) = self.job(tenant_id, id).await? else { return Ok(None) };
        let cancelled = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = 'cancelled', locked_until_ms = NULL, updated_at_ms = $1, finished_at_ms = $1 \
             WHERE tenant_id = $2 AND id = $3 AND status = $4 AND claims = $5")
            .bind(now_ms).bind(tenant_id).bind(id).bind(before.status.as_str()).bind(before.claims).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("cancel job"))?;
        let after = self.job(tenant_id, id).await?.unwrap_or_else(|| before.clone());
        Ok(Some(match before.status {
            JobStatus::Queued if cancelled == 1 => Cancelled::WasQueued(after),
            JobStatus::Running if cancelled == 1 => Cancelled::WasRunning(after),
            // It moved on between the read and the write: report where it is now.
            JobStatus::Queued | JobStatus::Running => match after.status {
                JobStatus::Queued | JobStatus::Running => return Box::pin(self.cancel_job(tenant_id, id, now_ms)).await,
                _ => Cancelled::AlreadyEnded(after),
            },
            _ => Cancelled::AlreadyEnded(after),
        }))
    }

    /// Queue an ended job (dead, failed or cancelled) again with fresh
    /// attempts (its claims go on counting); false when it has not ended or
    /// does not exist.
    /// With `delegation`, the job acts with that credential from now on.
    pub async fn requeue_job(&self, tenant_id: &str, id: &str, delegation: Option<&str>, now_ms: i64) -> Result<bool, DbError> {
        let requeued = on_pool!(self, pool => sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_after_ms = $1, locked_until_ms = NULL, progress_done = 0, updated_at_ms = $1, finished_at_ms = NULL, \
             delegation = COALESCE($4, delegation) WHERE tenant_id = $2 AND id = $3 AND status IN ('dead', 'failed', 'cancelled')")
            .bind(now_ms).bind(tenant_id).bind(id).bind(delegation).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("requeue job"))?;
        Ok(requeued == 1)
    }

    /// Whether `version` is the latest version of document `document_id`.
    pub async fn is_latest_version(&self, tenant_id: &str, document_id: &str, version: i32) -> Result<bool, DbError> {
        let latest: Option<i32> = on_pool!(self, pool => sqlx::query_scalar("SELECT latest_version FROM documents WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id).bind(document_id).fetch_optional(pool).await)
        .map_err(DbError::query("latest version"))?;
        Ok(latest == Some(version))
    }

    /// Jobs waiting or running (and dead), by kind and status, with the age of the oldest.
    pub async fn job_depths(&self) -> Result<Vec<JobDepth>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT kind, status, COUNT(*) AS count, MIN(created_at_ms) AS oldest_created_at_ms FROM jobs \
             WHERE status IN ('queued', 'running', 'dead') GROUP BY kind, status")
            .fetch_all(pool).await)
        .map_err(DbError::query("job depths"))
    }
}
