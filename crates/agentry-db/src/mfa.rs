//! Rows of multi-factor authentication: a user's TOTP secret and state, the
//! last accepted time step, and single-use recovery codes (hashes only).
//!
//! Must not: generate or check codes (agentry-core's identity service does).

use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MfaRow {
    /// The base32 secret, sealed by agentry-core (`enc:v1:…`); present but
    /// not enabled while enrolment awaits confirmation.
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
}

impl Db {
    pub async fn mfa(&self, user_id: &str) -> Result<Option<MfaRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = $1")
            .bind(user_id).fetch_optional(pool).await)
        .map_err(DbError::query("get mfa state"))
    }

    /// Set (or clear) the secret and whether it is enabled; resets the step.
    pub async fn set_totp(&self, user_id: &str, secret: Option<&str>, enabled: bool, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET totp_secret = $2, totp_enabled = $3, totp_last_step = NULL, updated_at_ms = $4 WHERE id = $1")
            .bind(user_id).bind(secret).bind(enabled).bind(now_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("set totp"))
    }

    /// Accept time step `step` once: `false` if it (or a later one) was used.
    pub async fn claim_totp_step(&self, user_id: &str, step: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)")
            .bind(user_id).bind(step).execute(pool).await.map(|r| r.rows_affected() == 1))
        .map_err(DbError::write("claim totp step"))
    }

    /// Replace the user's recovery codes with `hashes`.
    pub async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await.map_err(DbError::write("delete recovery codes"))?;
            for hash in hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user_id).bind(hash).execute(&mut *tx).await.map_err(DbError::write("insert recovery code"))?;
            }
            tx.commit().await.map_err(DbError::write("commit recovery codes"))
        })
    }

    /// Use a recovery code: `false` when unknown or already used.
    pub async fn use_recovery_code(&self, user_id: &str, hash: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE recovery_codes SET used_at_ms = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at_ms IS NULL")
            .bind(user_id).bind(hash).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() == 1))
        .map_err(DbError::write("use recovery code"))
    }

    pub async fn unused_recovery_codes(&self, user_id: &str) -> Result<i64, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at_ms IS NULL")
            .bind(user_id).fetch_one(pool).await)
        .map_err(DbError::query("count recovery codes"))
    }
}
