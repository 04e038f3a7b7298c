//! Rows of schedules (`schedules`) and of what each due time did
//! (`schedule_runs`).
//!
//! A due schedule is fired by one compare-and-set: [`Db::fire_schedule`]
//! moves `next_fire_ms` on only from the value the firing replica read,
//! and records the fire (unique per due time) and queues its job in the
//! same transaction. Replicas that read the same due time race on that
//! update; exactly one wins, the others change nothing.
//!
//! Must not: parse cron expressions, decide when a schedule is due next or
//! what its action does (agentry-core does).

use crate::jobs::{JobRecord, insert_job_on};
use crate::{Db, DbError, begin_write, on_pool};

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub cron: String,
    /// An IANA time zone name (`UTC`, `Europe/Paris`).
    pub timezone: String,
    /// What it does at each due time (JSON).
    pub action: String,
    /// What a due time missed while no server ran becomes (`skip` or `catch_up_once`).
    pub misfire: String,
    pub enabled: bool,
    /// Who it acts for (`user:<id>` or `master`) and with which delegation.
    pub owner: String,
    pub delegation: String,
    /// The next due time (`None` while disabled, or when the expression has no future time).
    pub next_fire_ms: Option<i64>,
    pub last_fired_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One due time of a schedule, or a fire by hand, and what it did.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRunRecord {
    pub id: String,
    pub tenant_id: String,
    pub schedule_id: String,
    pub due_ms: i64,
    pub fired_at_ms: i64,
    /// `cron`, `catch_up` or `manual`.
    pub trigger: String,
    /// `queued`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    pub job_id: Option<String>,
    /// The agent run it queued, if any.
    pub run_id: Option<String>,
    /// The action's outcome (JSON).
    pub result: Option<String>,
    pub error: Option<String>,
    pub finished_at_ms: Option<i64>,
}

/// A schedule run with the status of the agent run it queued.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ScheduleRunRow {
    #[sqlx(flatten)]
    pub record: ScheduleRunRecord,
    pub run_status: Option<String>,
}

/// How a fire moves its schedule on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Advance {
    /// From the due time the firing replica read to the next one (`None`: no future time; the schedule is disabled).
    From { expected: i64, next: Option<i64> },
    /// A fire by hand: the schedule's timing stays.
    Stay,
}

macro_rules! schedule_columns {
    () => {
        "id, tenant_id, name, cron, timezone, action, misfire, enabled, owner, delegation, next_fire_ms, last_fired_ms, created_at_ms, updated_at_ms"
    };
}

macro_rules! run_columns {
    () => {
        "id, tenant_id, schedule_id, due_ms, fired_at_ms, trigger, status, job_id, run_id, result, error, finished_at_ms"
    };
}

impl Db {
    pub async fn insert_schedule(&self, schedule: &ScheduleRecord) -> Result<(), DbError> {
        const SQL: &str = concat!("INSERT INTO schedules (", schedule_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)");
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&schedule.id).bind(&schedule.tenant_id).bind(&schedule.name).bind(&schedule.cron).bind(&schedule.timezone).bind(&schedule.action)
            .bind(&schedule.misfire).bind(schedule.enabled).bind(&schedule.owner).bind(&schedule.delegation).bind(schedule.next_fire_ms)
            .bind(schedule.last_fired_ms).bind(schedule.created_at_ms).bind(schedule.updated_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert schedule"))
    }

    pub async fn schedule(&self, tenant_id: &str, id: &str) -> Result<Option<ScheduleRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", schedule_columns!(), " FROM schedules WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get schedule"))
    }

    /// A tenant's schedules, newest first, a page at a time (`after`: the last row's created-at and id).
    pub async fn schedules(&self, tenant_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<ScheduleRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM schedules WHERE tenant_id = $1 AND created_at_ms <= $2 AND ($3 = '' OR created_at_ms < $2 OR id < $3) ORDER BY created_at_ms DESC, id DESC LIMIT $4"
        );
        let (at, after) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(at).bind(after).bind(limit).fetch_all(pool).await).map_err(DbError::query("list schedules"))
    }

    pub async fn count_schedules(&self, tenant_id: &str) -> Result<i64, DbError> {
        let (count,): (i64,) = on_pool!(self, pool => sqlx::query_as("SELECT COUNT(*) FROM schedules WHERE tenant_id = $1").bind(tenant_id).fetch_one(pool).await)
            .map_err(DbError::query("count schedules"))?;
        Ok(count)
    }

    /// Store a schedule's changed settings and timing; `false` when it is gone.
    pub async fn update_schedule(&self, schedule: &ScheduleRecord) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE schedules SET name = $3, cron = $4, timezone = $5, action = $6, misfire = $7, enabled = $8, owner = $9, delegation = $10, \
                           next_fire_ms = $11, updated_at_ms = $12 WHERE tenant_id = $1 AND id = $2";
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&schedule.tenant_id).bind(&schedule.id).bind(&schedule.name).bind(&schedule.cron).bind(&schedule.timezone).bind(&schedule.action)
            .bind(&schedule.misfire).bind(schedule.enabled).bind(&schedule.owner).bind(&schedule.delegation).bind(schedule.next_fire_ms)
            .bind(schedule.updated_at_ms)
            .execute(pool).await.map(|r| r.rows_affected() == 1))
        .map_err(DbError::write("update schedule"))
    }

    /// Delete a schedule and its history; `false` when it was not there.
    pub async fn delete_schedule(&self, tenant_id: &str, id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin delete schedule"))?;
            sqlx::query("DELETE FROM schedule_runs WHERE tenant_id = $1 AND schedule_id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await
                .map_err(DbError::write("delete schedule runs"))?;
            let gone = sqlx::query("DELETE FROM schedules WHERE tenant_id = $1 AND id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await
                .map_err(DbError::write("delete schedule"))?.rows_affected() == 1;
            tx.commit().await.map_err(DbError::write("commit delete schedule"))?;
            Ok(gone)
        })
    }

    /// Enabled schedules due at `now_ms`, the longest due first, at most `limit`.
    pub async fn due_schedules(&self, now_ms: i64, limit: i64) -> Result<Vec<ScheduleRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", schedule_columns!(), " FROM schedules WHERE next_fire_ms <= $1 AND enabled ORDER BY next_fire_ms LIMIT $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(now_ms).bind(limit).fetch_all(pool).await).map_err(DbError::query("due schedules"))
    }

    /// Fire a schedule: move it on as `advance` says, record `run` and
    /// queue `job` (when the run has work to do), in one transaction.
    /// `false` when another replica fired this due time first (nothing is
    /// written), or the schedule is gone or disabled.
    pub async fn fire_schedule(&self, run: &ScheduleRunRecord, advance: Advance, job: Option<&JobRecord>) -> Result<bool, DbError> {
        const INSERT: &str = concat!("INSERT INTO schedule_runs (", run_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING");
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin fire schedule"))?;
            let moved = match advance {
                // No next due time: the schedule is disabled (its history says why it stopped).
                Advance::From { expected, next } => sqlx::query(
                    "UPDATE schedules SET next_fire_ms = $3, last_fired_ms = $4, enabled = ($3 IS NOT NULL) WHERE tenant_id = $1 AND id = $2 AND next_fire_ms = $5 AND enabled")
                    .bind(&run.tenant_id).bind(&run.schedule_id).bind(next).bind(run.fired_at_ms).bind(expected),
                Advance::Stay => sqlx::query("UPDATE schedules SET last_fired_ms = $3 WHERE tenant_id = $1 AND id = $2")
                    .bind(&run.tenant_id).bind(&run.schedule_id).bind(run.fired_at_ms),
            }
            .execute(&mut *tx).await.map_err(DbError::write("advance schedule"))?.rows_affected() == 1;
            if !moved {
                return Ok(false);
            }
            let recorded = sqlx::query(INSERT)
                .bind(&run.id).bind(&run.tenant_id).bind(&run.schedule_id).bind(run.due_ms).bind(run.fired_at_ms).bind(&run.trigger).bind(&run.status)
                .bind(&run.job_id).bind(&run.run_id).bind(&run.result).bind(&run.error).bind(run.finished_at_ms)
                .execute(&mut *tx).await.map_err(DbError::write("record schedule run"))?.rows_affected() == 1;
            // A due time already fired (a change stored the schedule's old due time back) only moves the schedule on.
            if recorded && let Some(job) = job {
                insert_job_on!(&mut *tx, job)?;
            }
            tx.commit().await.map_err(DbError::write("commit fire schedule"))?;
            Ok(recorded)
        })
    }

    pub async fn schedule_run(&self, tenant_id: &str, id: &str) -> Result<Option<ScheduleRunRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", run_columns!(), " FROM schedule_runs WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get schedule run"))
    }

    /// A schedule's runs, newest first, a page at a time, each with its agent run's status.
    pub async fn schedule_runs(&self, schedule_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<ScheduleRunRow>, DbError> {
        const SQL: &str = "SELECT s.id, s.tenant_id, s.schedule_id, s.due_ms, s.fired_at_ms, s.trigger, s.status, s.job_id, s.run_id, s.result, s.error, \
                           s.finished_at_ms, r.status AS run_status FROM schedule_runs s LEFT JOIN runs r ON r.id = s.run_id \
                           WHERE s.schedule_id = $1 AND s.fired_at_ms <= $2 AND ($3 = '' OR s.fired_at_ms < $2 OR s.id < $3) \
                           ORDER BY s.fired_at_ms DESC, s.id DESC LIMIT $4";
        let (at, after) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(schedule_id).bind(at).bind(after).bind(limit).fetch_all(pool).await).map_err(DbError::query("list schedule runs"))
    }

    /// Record how a schedule run ended; `false` when it had already ended.
    pub async fn finish_schedule_run(&self, run: &ScheduleRunRecord) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE schedule_runs SET status = $2, run_id = $3, result = $4, error = $5, finished_at_ms = $6 WHERE id = $1 AND status = 'queued'";
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&run.id).bind(&run.status).bind(&run.run_id).bind(&run.result).bind(&run.error).bind(run.finished_at_ms)
            .execute(pool).await.map(|r| r.rows_affected() == 1))
        .map_err(DbError::write("finish schedule run"))
    }

    /// Whether a fire of the schedule is still queued.
    pub async fn schedule_fire_pending(&self, tenant_id: &str, schedule_id: &str) -> Result<bool, DbError> {
        let found: Option<(String,)> =
            on_pool!(self, pool => sqlx::query_as("SELECT id FROM schedule_runs WHERE tenant_id = $1 AND schedule_id = $2 AND status = 'queued' LIMIT 1")
            .bind(tenant_id).bind(schedule_id).fetch_optional(pool).await)
            .map_err(DbError::query("pending schedule fire"))?;
        Ok(found.is_some())
    }

    /// Mark an ended schedule run queued again (its job is retried by hand).
    pub async fn reopen_schedule_run(&self, tenant_id: &str, id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE schedule_runs SET status = 'queued', error = NULL, finished_at_ms = NULL WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id).bind(id).execute(pool).await.map(drop))
        .map_err(DbError::write("reopen schedule run"))
    }

    /// Remove schedule runs fired before `before_ms`; returns how many.
    pub async fn prune_schedule_runs(&self, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM schedule_runs WHERE fired_at_ms < $1 AND status <> 'queued'").bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::write("prune schedule runs"))
    }
}
