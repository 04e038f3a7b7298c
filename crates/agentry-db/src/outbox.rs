//! Rows and queries of the mail outbox (`outbox_emails`): mail waiting to
//! be sent, claimed by a sender for a lease, marked sent or rescheduled
//! with the last error. Delivery is at-least-once: a sender that dies
//! after sending but before marking leaves the mail to be sent again when
//! its lease runs out.
//!
//! Must not: send anything or decide when to retry (agentry-core's mail
//! sender does).

use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxEmailRow {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub created_at_ms: i64,
    pub attempts: i64,
    pub next_try_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub last_error: Option<String>,
}

/// The insert of one outbox row, for use inside another aggregate's transaction.
macro_rules! insert_outbox_email {
    ($mail:expr) => {
        sqlx::query(
            "INSERT INTO outbox_emails (id, recipient, subject, body, created_at_ms, attempts, next_try_ms, sent_at_ms, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&$mail.id)
        .bind(&$mail.recipient)
        .bind(&$mail.subject)
        .bind(&$mail.body)
        .bind($mail.created_at_ms)
        .bind($mail.attempts)
        .bind($mail.next_try_ms)
        .bind($mail.sent_at_ms)
        .bind(&$mail.last_error)
    };
}
pub(crate) use insert_outbox_email;

impl Db {
    /// Queue one mail.
    pub async fn insert_outbox_email(&self, mail: &OutboxEmailRow) -> Result<(), DbError> {
        on_pool!(self, pool => insert_outbox_email!(mail).execute(pool).await.map(drop)).map_err(DbError::write("queue email"))
    }

    /// Unsent mail due at `now_ms` with fewer than `max_attempts` attempts, oldest first.
    pub async fn due_outbox_emails(&self, now_ms: i64, max_attempts: i64, limit: i64) -> Result<Vec<OutboxEmailRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT id, recipient, subject, body, created_at_ms, attempts, next_try_ms, sent_at_ms, last_error FROM outbox_emails \
             WHERE sent_at_ms IS NULL AND next_try_ms <= $1 AND attempts < $2 ORDER BY next_try_ms, id LIMIT $3")
            .bind(now_ms).bind(max_attempts).bind(limit).fetch_all(pool).await)
        .map_err(DbError::query("due outbox emails"))
    }

    /// Claim a due mail until `lease_until_ms` (counts as an attempt); `false`
    /// when another sender claimed it first (its `next_try_ms` moved).
    pub async fn claim_outbox_email(&self, id: &str, seen_next_try_ms: i64, lease_until_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE outbox_emails SET next_try_ms = $3, attempts = attempts + 1 WHERE id = $1 AND next_try_ms = $2 AND sent_at_ms IS NULL")
            .bind(id).bind(seen_next_try_ms).bind(lease_until_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("claim outbox email"))
    }

    /// A delivered mail: its body (which carries one-time links) is blanked,
    /// so the database keeps those tokens only as hashes.
    pub async fn mark_outbox_email_sent(&self, id: &str, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE outbox_emails SET sent_at_ms = $2, last_error = NULL, body = '' WHERE id = $1")
            .bind(id).bind(now_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("mark email sent"))
    }

    /// A failed attempt: try again at `next_try_ms`, keeping the error.
    pub async fn retry_outbox_email(&self, id: &str, next_try_ms: i64, error: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE outbox_emails SET next_try_ms = $2, last_error = $3 WHERE id = $1")
            .bind(id).bind(next_try_ms).bind(error).execute(pool).await.map(drop))
        .map_err(DbError::write("reschedule email"))
    }

    /// Every outbox row, newest first (operators and tests).
    pub async fn outbox_emails(&self, limit: i64) -> Result<Vec<OutboxEmailRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT id, recipient, subject, body, created_at_ms, attempts, next_try_ms, sent_at_ms, last_error FROM outbox_emails ORDER BY created_at_ms DESC, id DESC LIMIT $1")
            .bind(limit).fetch_all(pool).await)
        .map_err(DbError::query("list outbox emails"))
    }
}
