//! Rows and queries of invitations (a pending offer of membership to an
//! e-mail address) and e-mail verification links. Tokens are stored as
//! their SHA-256 only.
//!
//! Accepting is one transaction: the invitation is claimed (only while it
//! is pending and unexpired, so a link works once), the new account (if
//! any) and the membership are written with it, or nothing is.
//!
//! Must not: decide anything (who may invite, which role, whether an
//! account may join): agentry-core's identity service does.

use crate::identity::UserRow;
use crate::outbox::OutboxEmailRow;
use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    pub token_hash: String,
    /// Who invited (user id, or `master` for the master key).
    pub invited_by: String,
    /// `email` (sent through the outbox) or `link` (shown to the inviter).
    pub delivered: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub accepted_at_ms: Option<i64>,
    pub accepted_user_id: Option<String>,
    pub revoked_at_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailVerificationRow {
    pub token_hash: String,
    pub user_id: String,
    pub email: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub used_at_ms: Option<i64>,
}

macro_rules! invitation_columns {
    () => {
        "id, tenant_id, email, role, token_hash, invited_by, delivered, created_at_ms, expires_at_ms, accepted_at_ms, accepted_user_id, revoked_at_ms"
    };
}

impl Db {
    /// A new invitation; with `mail`, its e-mail is queued in the same
    /// transaction (an invitation never exists without its mail). Earlier
    /// pending invitations of the same address to the same tenant are
    /// revoked with it (one live link per address and tenant).
    pub async fn insert_invitation(&self, invitation: &InvitationRow, mail: Option<&OutboxEmailRow>) -> Result<(), DbError> {
        let i = invitation;
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            sqlx::query("UPDATE invitations SET revoked_at_ms = $3 WHERE tenant_id = $1 AND email = $2 AND accepted_at_ms IS NULL AND revoked_at_ms IS NULL")
                .bind(&i.tenant_id).bind(&i.email).bind(i.created_at_ms).execute(&mut *tx).await.map_err(DbError::write("supersede invitations"))?;
            sqlx::query(concat!("INSERT INTO invitations (", invitation_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"))
                .bind(&i.id).bind(&i.tenant_id).bind(&i.email).bind(&i.role).bind(&i.token_hash).bind(&i.invited_by).bind(&i.delivered)
                .bind(i.created_at_ms).bind(i.expires_at_ms).bind(i.accepted_at_ms).bind(&i.accepted_user_id).bind(i.revoked_at_ms)
                .execute(&mut *tx).await.map_err(DbError::write("insert invitation"))?;
            if let Some(mail) = mail {
                crate::outbox::insert_outbox_email!(mail).execute(&mut *tx).await.map_err(DbError::write("queue email"))?;
            }
            tx.commit().await.map_err(DbError::write("commit invitation"))
        })
    }

    pub async fn invitation_by_hash(&self, token_hash: &str) -> Result<Option<InvitationRow>, DbError> {
        let sql = concat!("SELECT ", invitation_columns!(), " FROM invitations WHERE token_hash = $1");
        on_pool!(self, pool => sqlx::query_as(sql).bind(token_hash).fetch_optional(pool).await).map_err(DbError::query("get invitation by token"))
    }

    pub async fn invitation(&self, tenant_id: &str, id: &str) -> Result<Option<InvitationRow>, DbError> {
        let sql = concat!("SELECT ", invitation_columns!(), " FROM invitations WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get invitation"))
    }

    /// The tenant's invitations, newest first.
    pub async fn invitations_of_tenant(&self, tenant_id: &str, limit: i64) -> Result<Vec<InvitationRow>, DbError> {
        let sql = concat!("SELECT ", invitation_columns!(), " FROM invitations WHERE tenant_id = $1 ORDER BY created_at_ms DESC, id DESC LIMIT $2");
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(limit).fetch_all(pool).await).map_err(DbError::query("list invitations"))
    }

    /// How many invitations the tenant created since `since_ms`, and the
    /// oldest of them (for the per-tenant sending limit).
    pub async fn invitations_created_since(&self, tenant_id: &str, since_ms: i64) -> Result<(i64, Option<i64>), DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT COUNT(*), MIN(created_at_ms) FROM invitations WHERE tenant_id = $1 AND created_at_ms >= $2")
            .bind(tenant_id).bind(since_ms).fetch_one(pool).await)
        .map_err(DbError::query("count invitations"))
    }

    /// Revoke a pending invitation; `false` when it is not pending (or absent).
    pub async fn revoke_invitation(&self, tenant_id: &str, id: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE invitations SET revoked_at_ms = $3 WHERE tenant_id = $1 AND id = $2 AND accepted_at_ms IS NULL AND revoked_at_ms IS NULL")
            .bind(tenant_id).bind(id).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("revoke invitation"))
    }

    /// Accept an invitation in one transaction: claim it (only while pending
    /// and unexpired at `now_ms`), create `new_user` when given (a taken
    /// e-mail is [`DbError::Conflict`]), add the membership (never changing
    /// an existing one) and, with `verify`, mark the account's e-mail
    /// verified. `false` (and nothing written) when the invitation was no
    /// longer pending.
    pub async fn accept_invitation(&self, invitation: &InvitationRow, user_id: &str, new_user: Option<&UserRow>, verify: bool, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            let claimed = sqlx::query(
                "UPDATE invitations SET accepted_at_ms = $2, accepted_user_id = $3 \
                 WHERE id = $1 AND accepted_at_ms IS NULL AND revoked_at_ms IS NULL AND expires_at_ms > $2")
                .bind(&invitation.id).bind(now_ms).bind(user_id).execute(&mut *tx).await.map_err(DbError::write("claim invitation"))?
                .rows_affected() > 0;
            if !claimed {
                return Ok(false);
            }
            if let Some(user) = new_user {
                sqlx::query(
                    "INSERT INTO users (id, email, display_name, password_hash, is_active, platform_admin, failed_logins, locked_until_ms, created_at_ms, updated_at_ms, email_verified) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
                    .bind(&user.id).bind(&user.email).bind(&user.display_name).bind(&user.password_hash).bind(user.is_active)
                    .bind(user.platform_admin).bind(user.failed_logins).bind(user.locked_until_ms).bind(user.created_at_ms).bind(user.updated_at_ms)
                    .bind(user.email_verified)
                    .execute(&mut *tx).await.map_err(DbError::write("insert user"))?;
            }
            sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, user_id) DO NOTHING")
                .bind(&invitation.tenant_id).bind(user_id).bind(&invitation.role).bind(now_ms)
                .execute(&mut *tx).await.map_err(DbError::write("insert membership"))?;
            if verify {
                sqlx::query("UPDATE users SET email_verified = TRUE, updated_at_ms = $2 WHERE id = $1")
                    .bind(user_id).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("verify email"))?;
            }
            tx.commit().await.map_err(DbError::write("commit acceptance"))?;
            Ok(true)
        })
    }

    /// A new verification link; with `mail`, its e-mail is queued in the same transaction.
    pub async fn insert_email_verification(&self, row: &EmailVerificationRow, mail: Option<&OutboxEmailRow>) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            sqlx::query("INSERT INTO email_verifications (token_hash, user_id, email, created_at_ms, expires_at_ms, used_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&row.token_hash).bind(&row.user_id).bind(&row.email).bind(row.created_at_ms).bind(row.expires_at_ms).bind(row.used_at_ms)
                .execute(&mut *tx).await.map_err(DbError::write("insert email verification"))?;
            if let Some(mail) = mail {
                crate::outbox::insert_outbox_email!(mail).execute(&mut *tx).await.map_err(DbError::write("queue email"))?;
            }
            tx.commit().await.map_err(DbError::write("commit email verification"))
        })
    }

    /// How many verification links the user was sent since `since_ms`.
    pub async fn email_verifications_since(&self, user_id: &str, since_ms: i64) -> Result<i64, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM email_verifications WHERE user_id = $1 AND created_at_ms >= $2")
            .bind(user_id).bind(since_ms).fetch_one(pool).await)
        .map_err(DbError::query("count email verifications"))
    }

    /// Use a verification link: when it is unused, unexpired and its
    /// address is still the account's, mark it used and the account's
    /// e-mail verified (one transaction). The user id, or `None`.
    pub async fn use_email_verification(&self, token_hash: &str, now_ms: i64) -> Result<Option<String>, DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            let user_id: Option<String> = sqlx::query_scalar(
                "UPDATE email_verifications SET used_at_ms = $2 WHERE token_hash = $1 AND used_at_ms IS NULL AND expires_at_ms > $2 \
                 AND email = (SELECT email FROM users WHERE users.id = email_verifications.user_id) RETURNING user_id")
                .bind(token_hash).bind(now_ms).fetch_optional(&mut *tx).await.map_err(DbError::write("use email verification"))?;
            if let Some(user_id) = &user_id {
                sqlx::query("UPDATE users SET email_verified = TRUE, updated_at_ms = $2 WHERE id = $1")
                    .bind(user_id).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("verify email"))?;
            }
            tx.commit().await.map_err(DbError::write("commit email verification"))?;
            Ok(user_id)
        })
    }

    /// The owner of a mailbox reclaims an unverified account created for
    /// its address by someone else: in one transaction the password becomes
    /// theirs, the address verified, and every session and API key of the
    /// account is revoked. `false` (nothing written) unless the account
    /// exists and is still unverified.
    pub async fn reclaim_unverified_account(&self, user_id: &str, password_hash: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            let reclaimed = sqlx::query("UPDATE users SET password_hash = $2, email_verified = TRUE, failed_logins = 0, locked_until_ms = NULL, updated_at_ms = $3 WHERE id = $1 AND email_verified = FALSE")
                .bind(user_id).bind(password_hash).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("reclaim account"))?
                .rows_affected() > 0;
            if !reclaimed {
                return Ok(false);
            }
            sqlx::query("UPDATE sessions SET revoked_at_ms = $2, revoke_reason = 'account reclaimed by its mailbox owner' WHERE user_id = $1 AND revoked_at_ms IS NULL")
                .bind(user_id).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("revoke sessions"))?;
            sqlx::query("UPDATE api_keys SET revoked_at_ms = $2 WHERE user_id = $1 AND revoked_at_ms IS NULL")
                .bind(user_id).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("revoke api keys"))?;
            tx.commit().await.map_err(DbError::write("commit reclaim"))?;
            Ok(true)
        })
    }

    /// Mark an account's e-mail verified (a platform administrator vouches); `false` when absent.
    pub async fn set_email_verified(&self, user_id: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET email_verified = TRUE, updated_at_ms = $2 WHERE id = $1")
            .bind(user_id).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("verify email"))
    }
}
