//! Rows of OpenID Connect sign-in: pending logins (consumed once) and
//! provider-subject → user links.
//!
//! Must not: talk to providers or validate tokens (agentry-core does).

use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OidcLoginRow {
    pub state: String,
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub created_at_ms: i64,
    /// The signed-in user who started this flow to link the provider to their account.
    pub link_user_id: Option<String>,
}

impl Db {
    pub async fn insert_oidc_login(&self, row: &OidcLoginRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO oidc_logins (state, provider, nonce, pkce_verifier, created_at_ms, link_user_id) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&row.state).bind(&row.provider).bind(&row.nonce).bind(&row.pkce_verifier).bind(row.created_at_ms).bind(&row.link_user_id)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert oidc login"))
    }

    /// Remove and return a pending login (a state works once); also drops logins older than `expired_before_ms`.
    pub async fn take_oidc_login(&self, state: &str, expired_before_ms: i64) -> Result<Option<OidcLoginRow>, DbError> {
        on_pool!(self, pool => {
            sqlx::query("DELETE FROM oidc_logins WHERE created_at_ms < $1").bind(expired_before_ms).execute(pool).await
                .map_err(DbError::write("expire oidc logins"))?;
            sqlx::query_as("DELETE FROM oidc_logins WHERE state = $1 RETURNING state, provider, nonce, pkce_verifier, created_at_ms, link_user_id")
                .bind(state).fetch_optional(pool).await.map_err(DbError::write("take oidc login"))
        })
    }

    pub async fn user_by_identity(&self, provider: &str, subject: &str) -> Result<Option<String>, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT user_id FROM user_identities WHERE provider = $1 AND subject = $2")
            .bind(provider).bind(subject).fetch_optional(pool).await)
        .map_err(DbError::query("get user identity"))
    }

    pub async fn link_identity(&self, provider: &str, subject: &str, user_id: &str, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO user_identities (provider, subject, user_id, created_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(provider).bind(subject).bind(user_id).bind(now_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("link identity"))
    }
}
