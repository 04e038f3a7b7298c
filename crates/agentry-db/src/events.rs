//! Rows of the tenant event log (`events`) and of webhooks (`webhooks`,
//! `webhook_deliveries`).
//!
//! An event is appended together with its webhook deliveries and their
//! jobs in one transaction ([`Db::append_event`]), so an event that is in
//! the log is also on its way to every endpoint that listened for it. `seq`
//! numbers events in commit order on both engines (SQLite has one writer;
//! PostgreSQL appends under a transaction-scoped advisory lock), so a reader
//! that has seen `seq` n never later finds a smaller one: resuming "after
//! n" loses nothing.
//!
//! Must not: decide who reads an event or which endpoints want it, or send
//! anything (agentry-core does).

use crate::jobs::{JobRecord, insert_job_on};
use crate::{Db, DbError, begin_write, on_pool};

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EventRecord {
    /// Its place in the log (0 before it is appended).
    pub seq: i64,
    pub id: String,
    pub tenant_id: String,
    #[sqlx(rename = "type")]
    pub event_type: String,
    /// Whose object it is about (`user:<id>` or `master`), when it is owned.
    pub owner: Option<String>,
    /// Permissions (comma-separated), any one of which lets a member read it.
    pub readers: String,
    /// The payload (JSON).
    pub data: String,
    pub created_at_ms: i64,
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookRecord {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    /// The event types it receives (JSON array; `*` for all).
    pub events: String,
    pub description: String,
    /// The signing keys (sealed JSON).
    pub secrets: String,
    pub owner: String,
    pub delegation: String,
    /// `enabled` or `disabled`.
    pub status: String,
    pub disabled_reason: Option<String>,
    /// When deliveries started failing without a success since.
    pub failing_since_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One event sent to one endpoint, and how its last attempt went.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRecord {
    /// The message id (`webhook-id`), the same on every attempt.
    pub id: String,
    pub tenant_id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// Who may read the event: see [`EventRecord::owner`] and [`EventRecord::readers`].
    pub event_owner: Option<String>,
    pub event_readers: String,
    /// The exact bytes signed and sent.
    pub body: String,
    /// `pending`, `delivered`, `failed` or `skipped`.
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub latency_ms: Option<i64>,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome<'a> {
    /// `pending` (will be tried again), `delivered`, `failed` or `skipped`.
    pub status: &'a str,
    pub response_status: Option<i32>,
    pub latency_ms: Option<i64>,
    pub error: Option<&'a str>,
    pub at_ms: i64,
}

macro_rules! event_columns {
    () => {
        "seq, id, tenant_id, type, owner, readers, data, created_at_ms"
    };
}

macro_rules! webhook_columns {
    () => {
        "id, tenant_id, url, events, description, secrets, owner, delegation, status, disabled_reason, failing_since_ms, created_at_ms, updated_at_ms"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, tenant_id, webhook_id, event_id, event_type, event_owner, event_readers, body, status, attempts, response_status, latency_ms, error, created_at_ms, updated_at_ms, delivered_at_ms"
    };
}

macro_rules! insert_delivery_on {
    ($executor:expr, $delivery:expr) => {{
        const SQL: &str = concat!("INSERT INTO webhook_deliveries (", delivery_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)");
        let delivery: &DeliveryRecord = $delivery;
        sqlx::query(SQL)
            .bind(&delivery.id)
            .bind(&delivery.tenant_id)
            .bind(&delivery.webhook_id)
            .bind(&delivery.event_id)
            .bind(&delivery.event_type)
            .bind(&delivery.event_owner)
            .bind(&delivery.event_readers)
            .bind(&delivery.body)
            .bind(&delivery.status)
            .bind(delivery.attempts)
            .bind(delivery.response_status)
            .bind(delivery.latency_ms)
            .bind(&delivery.error)
            .bind(delivery.created_at_ms)
            .bind(delivery.updated_at_ms)
            .bind(delivery.delivered_at_ms)
            .execute($executor)
            .await
            .map(drop)
            .map_err(DbError::write("insert delivery"))
    }};
}

/// The advisory lock PostgreSQL appends events under (any fixed number: it names the log).
const EVENT_LOG_LOCK: i64 = 0x6167_656e_7472_7901;

impl Db {
    /// Append `event` with its deliveries (each with the job that sends
    /// it) in one transaction; returns the event with its `seq`.
    pub async fn append_event(&self, event: &EventRecord, deliveries: &[(DeliveryRecord, JobRecord)]) -> Result<EventRecord, DbError> {
        const INSERT: &str = "INSERT INTO events (id, tenant_id, type, owner, readers, data, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq";
        let seq: i64 = on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin event"))?;
            if matches!(self, Db::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(EVENT_LOG_LOCK).execute(&mut *tx).await.map_err(DbError::write("lock event log"))?;
            }
            let (seq,): (i64,) = sqlx::query_as(INSERT)
                .bind(&event.id).bind(&event.tenant_id).bind(&event.event_type).bind(&event.owner).bind(&event.readers).bind(&event.data).bind(event.created_at_ms)
                .fetch_one(&mut *tx).await.map_err(DbError::write("append event"))?;
            for (delivery, job) in deliveries {
                insert_delivery_on!(&mut *tx, delivery)?;
                insert_job_on!(&mut *tx, job)?;
            }
            tx.commit().await.map_err(DbError::write("commit event"))?;
            Ok::<_, DbError>(seq)
        })?;
        Ok(EventRecord { seq, ..event.clone() })
    }

    /// A tenant's events after `after_seq`, oldest first, at most `limit`.
    pub async fn events_after(&self, tenant_id: &str, after_seq: i64, limit: i64) -> Result<Vec<EventRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(after_seq).bind(limit).fetch_all(pool).await).map_err(DbError::query("events after"))
    }

    /// Every tenant's events after `after_seq`, oldest first, at most `limit` (the fan-out's tail).
    pub async fn all_events_after(&self, after_seq: i64, limit: i64) -> Result<Vec<EventRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", event_columns!(), " FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(after_seq).bind(limit).fetch_all(pool).await).map_err(DbError::query("all events after"))
    }

    /// The newest event's `seq` (0 for an empty log).
    pub async fn last_event_seq(&self) -> Result<i64, DbError> {
        let (seq,): (Option<i64>,) = on_pool!(self, pool => sqlx::query_as("SELECT MAX(seq) FROM events").fetch_one(pool).await).map_err(DbError::query("last event seq"))?;
        Ok(seq.unwrap_or(0))
    }

    /// Remove ended deliveries last touched before `before_ms`; returns how many.
    pub async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM webhook_deliveries WHERE status <> 'pending' AND updated_at_ms < $1")
            .bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::write("prune deliveries"))
    }

    /// Remove events older than `before_ms`; returns how many.
    pub async fn prune_events(&self, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM events WHERE created_at_ms < $1").bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::write("prune events"))
    }

    pub async fn insert_webhook(&self, webhook: &WebhookRecord) -> Result<(), DbError> {
        const SQL: &str = concat!("INSERT INTO webhooks (", webhook_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&webhook.id).bind(&webhook.tenant_id).bind(&webhook.url).bind(&webhook.events).bind(&webhook.description).bind(&webhook.secrets)
            .bind(&webhook.owner).bind(&webhook.delegation).bind(&webhook.status).bind(&webhook.disabled_reason).bind(webhook.failing_since_ms)
            .bind(webhook.created_at_ms).bind(webhook.updated_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert webhook"))
    }

    pub async fn webhook(&self, tenant_id: &str, id: &str) -> Result<Option<WebhookRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get webhook"))
    }

    /// A tenant's webhooks, newest first, a page at a time (`after`: the last row's created-at and id).
    pub async fn webhooks(&self, tenant_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<WebhookRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            webhook_columns!(),
            " FROM webhooks WHERE tenant_id = $1 AND created_at_ms <= $2 AND ($3 = '' OR created_at_ms < $2 OR id < $3) ORDER BY created_at_ms DESC, id DESC LIMIT $4"
        );
        let (at, after) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(at).bind(after).bind(limit).fetch_all(pool).await).map_err(DbError::query("list webhooks"))
    }

    /// A tenant's enabled webhooks (the fan-out's candidates).
    pub async fn enabled_webhooks(&self, tenant_id: &str) -> Result<Vec<WebhookRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", webhook_columns!(), " FROM webhooks WHERE tenant_id = $1 AND status = 'enabled'");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).fetch_all(pool).await).map_err(DbError::query("enabled webhooks"))
    }

    /// Store a webhook's changed settings (url, events, description, secrets, status, who it acts for).
    pub async fn update_webhook(&self, webhook: &WebhookRecord) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE webhooks SET url = $3, events = $4, description = $5, secrets = $6, status = $7, disabled_reason = $8, failing_since_ms = $9, \
                           updated_at_ms = $10, owner = $11, delegation = $12 WHERE tenant_id = $1 AND id = $2";
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&webhook.tenant_id).bind(&webhook.id).bind(&webhook.url).bind(&webhook.events).bind(&webhook.description).bind(&webhook.secrets)
            .bind(&webhook.status).bind(&webhook.disabled_reason).bind(webhook.failing_since_ms).bind(webhook.updated_at_ms)
            .bind(&webhook.owner).bind(&webhook.delegation)
            .execute(pool).await.map(|r| r.rows_affected() == 1))
        .map_err(DbError::write("update webhook"))
    }

    /// Delete a webhook and its delivery log.
    pub async fn delete_webhook(&self, tenant_id: &str, id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin delete webhook"))?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await
                .map_err(DbError::write("delete webhook deliveries"))?;
            let gone = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2").bind(tenant_id).bind(id).execute(&mut *tx).await
                .map_err(DbError::write("delete webhook"))?.rows_affected() == 1;
            tx.commit().await.map_err(DbError::write("commit delete webhook"))?;
            Ok(gone)
        })
    }

    /// Record a failed attempt: the endpoint is failing since `at_ms` unless it already was.
    pub async fn mark_webhook_failing(&self, id: &str, at_ms: i64) -> Result<Option<i64>, DbError> {
        let since: Option<(Option<i64>,)> = on_pool!(self, pool => sqlx::query_as(
            "UPDATE webhooks SET failing_since_ms = COALESCE(failing_since_ms, $2) WHERE id = $1 RETURNING failing_since_ms")
            .bind(id).bind(at_ms).fetch_optional(pool).await)
        .map_err(DbError::write("mark webhook failing"))?;
        Ok(since.and_then(|(since,)| since))
    }

    /// Record a delivered attempt: the endpoint is healthy again.
    pub async fn mark_webhook_healthy(&self, id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE webhooks SET failing_since_ms = NULL WHERE id = $1 AND failing_since_ms IS NOT NULL")
            .bind(id).execute(pool).await.map(drop))
        .map_err(DbError::write("mark webhook healthy"))
    }

    /// Disable an enabled webhook; `false` when it was not enabled (another worker did it).
    pub async fn disable_webhook(&self, id: &str, reason: &str, at_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE webhooks SET status = 'disabled', disabled_reason = $2, updated_at_ms = $3 WHERE id = $1 AND status = 'enabled'")
            .bind(id).bind(reason).bind(at_ms).execute(pool).await.map(|r| r.rows_affected() == 1))
        .map_err(DbError::write("disable webhook"))
    }

    pub async fn delivery(&self, tenant_id: &str, id: &str) -> Result<Option<DeliveryRecord>, DbError> {
        const SQL: &str = concat!("SELECT ", delivery_columns!(), " FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get delivery"))
    }

    /// A webhook's deliveries, newest first, a page at a time.
    pub async fn deliveries(&self, webhook_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<DeliveryRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries WHERE webhook_id = $1 AND created_at_ms <= $2 AND ($3 = '' OR created_at_ms < $2 OR id < $3) \
             ORDER BY created_at_ms DESC, id DESC LIMIT $4"
        );
        let (at, after) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(webhook_id).bind(at).bind(after).bind(limit).fetch_all(pool).await).map_err(DbError::query("list deliveries"))
    }

    /// Record how an attempt at a delivery went (a skipped one keeps no payload).
    pub async fn record_attempt(&self, id: &str, outcome: &AttemptOutcome<'_>) -> Result<(), DbError> {
        const SQL: &str = "UPDATE webhook_deliveries SET status = $2, attempts = attempts + 1, response_status = $3, latency_ms = $4, error = $5, updated_at_ms = $6, \
                           delivered_at_ms = CASE WHEN $2 = 'delivered' THEN $6 ELSE delivered_at_ms END, body = CASE WHEN $2 = 'skipped' THEN '{}' ELSE body END \
                           WHERE id = $1";
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(id).bind(outcome.status).bind(outcome.response_status).bind(outcome.latency_ms).bind(outcome.error).bind(outcome.at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("record delivery attempt"))
    }

    /// Insert one delivery with the job that sends it, in one transaction.
    pub async fn insert_delivery_with_job(&self, delivery: &DeliveryRecord, job: &JobRecord) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin delivery"))?;
            insert_delivery_on!(&mut *tx, delivery)?;
            insert_job_on!(&mut *tx, job)?;
            tx.commit().await.map_err(DbError::write("commit delivery"))?;
            Ok(())
        })
    }

    /// Mark a delivery pending again (its job is retried by hand).
    pub async fn reopen_delivery(&self, id: &str, at_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE webhook_deliveries SET status = 'pending', error = NULL, updated_at_ms = $2 WHERE id = $1")
            .bind(id).bind(at_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("reopen delivery"))
    }

    /// Send a delivery again: pending, with `job` queued for it, in one transaction.
    pub async fn redeliver(&self, id: &str, job: &JobRecord, at_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await.map_err(DbError::write("begin redelivery"))?;
            sqlx::query("UPDATE webhook_deliveries SET status = 'pending', error = NULL, updated_at_ms = $2 WHERE id = $1").bind(id).bind(at_ms)
                .execute(&mut *tx).await.map_err(DbError::write("reset delivery"))?;
            insert_job_on!(&mut *tx, job)?;
            tx.commit().await.map_err(DbError::write("commit redelivery"))?;
            Ok(())
        })
    }
}
