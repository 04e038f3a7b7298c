//! Rows and queries of the identity model: tenants, users, memberships,
//! custom roles, sessions, refresh tokens, API keys and JWT signing keys.
//!
//! Every tenant-owned query takes the tenant id as a required argument; the
//! caller (agentry-core's identity service) decides who may ask.
//!
//! Must not: hash, verify or decide anything (no business rules), or log
//! secrets (only hashes reach this module).

use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub mfa_required: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub is_active: bool,
    pub platform_admin: bool,
    pub failed_logins: i64,
    pub locked_until_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Whether the address is known to reach this person (a link sent to it
    /// was followed, or a platform administrator said so).
    pub email_verified: bool,
}

/// A membership with its tenant's slug and name.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct MembershipRow {
    pub tenant_id: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RoleRow {
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    /// JSON array of permission names.
    pub permissions: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at_ms: i64,
    pub last_used_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub revoke_reason: Option<String>,
    /// Whether the sign-in passed a second factor.
    pub mfa: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub secret_hash: String,
    /// JSON array of permission names.
    pub scopes: String,
    /// JSON object.
    pub metadata: String,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub rotated_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SigningKeyRow {
    pub kid: String,
    /// Base64 of the PKCS#8 DER private key, sealed by agentry-core (`enc:v1:…`).
    pub private_der: String,
    /// Base64url of the raw public key.
    pub public_key: String,
    pub created_at_ms: i64,
    pub retired_at_ms: Option<i64>,
}

/// What a refresh-token lookup found.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub session_id: String,
    pub created_at_ms: i64,
    pub used_at_ms: Option<i64>,
}

macro_rules! user_columns {
    () => {
        "id, email, display_name, password_hash, is_active, platform_admin, failed_logins, locked_until_ms, created_at_ms, updated_at_ms, email_verified"
    };
}
macro_rules! membership_select {
    () => {
        "SELECT m.tenant_id, t.slug AS tenant_slug, t.name AS tenant_name, m.user_id, u.email, m.role, m.created_at_ms \
     FROM memberships m JOIN tenants t ON t.id = m.tenant_id JOIN users u ON u.id = m.user_id"
    };
}
macro_rules! session_columns {
    () => {
        "id, user_id, ip, user_agent, created_at_ms, last_used_at_ms, expires_at_ms, revoked_at_ms, revoke_reason, mfa"
    };
}
macro_rules! api_key_columns {
    () => {
        "id, tenant_id, user_id, name, prefix, secret_hash, scopes, metadata, created_at_ms, expires_at_ms, revoked_at_ms, last_used_at_ms, rotated_to"
    };
}

impl Db {
    pub async fn insert_tenant(&self, tenant: &TenantRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO tenants (id, slug, name, mfa_required, created_at_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&tenant.id).bind(&tenant.slug).bind(&tenant.name).bind(tenant.mfa_required).bind(tenant.created_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert tenant"))
    }

    pub async fn tenant(&self, id_or_slug: &str) -> Result<Option<TenantRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT id, slug, name, mfa_required, created_at_ms FROM tenants WHERE id = $1 OR slug = $1")
            .bind(id_or_slug).fetch_optional(pool).await)
        .map_err(DbError::query("get tenant"))
    }

    pub async fn all_tenants(&self) -> Result<Vec<TenantRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT id, slug, name, mfa_required, created_at_ms FROM tenants ORDER BY created_at_ms, id")
            .fetch_all(pool).await)
        .map_err(DbError::query("list tenants"))
    }

    /// Sessions neither expired nor revoked at `now_ms`, per tenant slug of
    /// their user's memberships (a member of two tenants counts in both), most first.
    pub async fn active_sessions_by_tenant(&self, now_ms: i64) -> Result<Vec<(String, i64)>, DbError> {
        let sql = "SELECT t.slug, COUNT(*) AS sessions FROM sessions s JOIN memberships m ON m.user_id = s.user_id JOIN tenants t ON t.id = m.tenant_id \
             WHERE s.revoked_at_ms IS NULL AND s.expires_at_ms > $1 GROUP BY t.slug ORDER BY sessions DESC, t.slug";
        on_pool!(self, pool => sqlx::query_as(sql).bind(now_ms).fetch_all(pool).await).map_err(DbError::query("active sessions"))
    }

    /// Change the tenant's name and/or MFA policy (`None` keeps the value).
    pub async fn update_tenant(&self, tenant_id: &str, name: Option<&str>, mfa_required: Option<bool>) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE tenants SET name = COALESCE($2, name), mfa_required = COALESCE($3, mfa_required) WHERE id = $1")
            .bind(tenant_id).bind(name).bind(mfa_required).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("update tenant"))
    }

    pub async fn insert_user(&self, user: &UserRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, is_active, platform_admin, failed_logins, locked_until_ms, created_at_ms, updated_at_ms, email_verified) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&user.id).bind(&user.email).bind(&user.display_name).bind(&user.password_hash).bind(user.is_active)
            .bind(user.platform_admin).bind(user.failed_logins).bind(user.locked_until_ms).bind(user.created_at_ms).bind(user.updated_at_ms)
            .bind(user.email_verified)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert user"))
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, DbError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await).map_err(DbError::query("get user"))
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, DbError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
        on_pool!(self, pool => sqlx::query_as(sql).bind(email).fetch_optional(pool).await).map_err(DbError::query("get user by email"))
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET password_hash = $2, updated_at_ms = $3 WHERE id = $1")
            .bind(user_id).bind(hash).bind(now_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("set password"))
    }

    /// Record a failed sign-in and, in the same statement, lock the account
    /// until `lock_until_ms` once `threshold` failures are reached; returns
    /// whether this failure locked it.
    pub async fn record_login_failure(&self, user_id: &str, threshold: i64, lock_until_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query_scalar(
            "UPDATE users SET failed_logins = failed_logins + 1, \
             locked_until_ms = CASE WHEN failed_logins + 1 >= $2 THEN $3 ELSE locked_until_ms END \
             WHERE id = $1 RETURNING failed_logins >= $2")
            .bind(user_id).bind(threshold).bind(lock_until_ms).fetch_one(pool).await)
        .map_err(DbError::write("record login failure"))
    }

    pub async fn clear_login_failures(&self, user_id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET failed_logins = 0, locked_until_ms = NULL WHERE id = $1")
            .bind(user_id).execute(pool).await.map(drop))
        .map_err(DbError::write("clear login failures"))
    }

    pub async fn set_user_active(&self, user_id: &str, active: bool, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET is_active = $2, updated_at_ms = $3 WHERE id = $1")
            .bind(user_id).bind(active).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("update user"))
    }

    /// Add or change a membership (one role per user per tenant).
    pub async fn upsert_membership(&self, tenant_id: &str, user_id: &str, role: &str, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO memberships (tenant_id, user_id, role, created_at_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role")
            .bind(tenant_id).bind(user_id).bind(role).bind(now_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("upsert membership"))
    }

    /// End a membership, and with it the user's place in the tenant's groups (one transaction).
    pub async fn delete_membership(&self, tenant_id: &str, user_id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            sqlx::query("DELETE FROM group_members WHERE user_id = $2 AND group_id IN (SELECT id FROM groups WHERE tenant_id = $1)")
                .bind(tenant_id).bind(user_id).execute(&mut *tx).await.map_err(DbError::write("leave groups"))?;
            let deleted = sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                .bind(tenant_id).bind(user_id).execute(&mut *tx).await.map_err(DbError::write("delete membership"))?.rows_affected() > 0;
            tx.commit().await.map_err(DbError::write("commit membership delete"))?;
            Ok(deleted)
        })
    }

    pub async fn membership(&self, tenant_id: &str, user_id: &str) -> Result<Option<MembershipRow>, DbError> {
        let sql = concat!(membership_select!(), " WHERE m.tenant_id = $1 AND m.user_id = $2");
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(user_id).fetch_optional(pool).await).map_err(DbError::query("get membership"))
    }

    pub async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MembershipRow>, DbError> {
        let sql = concat!(membership_select!(), " WHERE m.user_id = $1 ORDER BY t.slug");
        on_pool!(self, pool => sqlx::query_as(sql).bind(user_id).fetch_all(pool).await).map_err(DbError::query("list memberships"))
    }

    /// The tenant's members in the order they joined, after the member
    /// with `after`'s (created_at_ms, user_id).
    pub async fn members_of_tenant(&self, tenant_id: &str, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<MembershipRow>, DbError> {
        let sql = concat!(
            membership_select!(),
            " WHERE m.tenant_id = $1 AND m.created_at_ms >= $2 AND ($3 = '' OR m.created_at_ms > $2 OR m.user_id > $3) ORDER BY m.created_at_ms, m.user_id LIMIT $4"
        );
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(at).bind(id).bind(limit).fetch_all(pool).await).map_err(DbError::query("list members"))
    }

    /// Number of members of the tenant holding `role`.
    pub async fn count_members_with_role(&self, tenant_id: &str, role: &str) -> Result<i64, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = $2")
            .bind(tenant_id).bind(role).fetch_one(pool).await)
        .map_err(DbError::query("count members"))
    }

    pub async fn upsert_role(&self, role: &RoleRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO roles (tenant_id, name, description, permissions, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET description = excluded.description, permissions = excluded.permissions")
            .bind(&role.tenant_id).bind(&role.name).bind(&role.description).bind(&role.permissions).bind(role.created_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("upsert role"))
    }

    pub async fn role(&self, tenant_id: &str, name: &str) -> Result<Option<RoleRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT tenant_id, name, description, permissions, created_at_ms FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id).bind(name).fetch_optional(pool).await)
        .map_err(DbError::query("get role"))
    }

    pub async fn roles_of_tenant(&self, tenant_id: &str) -> Result<Vec<RoleRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT tenant_id, name, description, permissions, created_at_ms FROM roles WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id).fetch_all(pool).await)
        .map_err(DbError::query("list roles"))
    }

    pub async fn delete_role(&self, tenant_id: &str, name: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id).bind(name).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("delete role"))
    }

    /// A new session and its first refresh token.
    pub async fn insert_session(&self, session: &SessionRow, refresh_hash: &str) -> Result<(), DbError> {
        let sql = concat!("INSERT INTO sessions (", session_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)");
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            sqlx::query(sql).bind(&session.id).bind(&session.user_id).bind(&session.ip).bind(&session.user_agent)
                .bind(session.created_at_ms).bind(session.last_used_at_ms).bind(session.expires_at_ms).bind(session.revoked_at_ms).bind(&session.revoke_reason).bind(session.mfa)
                .execute(&mut *tx).await.map_err(DbError::write("insert session"))?;
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms) VALUES ($1, $2, $3)")
                .bind(refresh_hash).bind(&session.id).bind(session.created_at_ms)
                .execute(&mut *tx).await.map_err(DbError::write("insert refresh token"))?;
            tx.commit().await.map_err(DbError::write("commit session"))
        })
    }

    /// Revoke every live session of `user_id` but `keep`.
    /// Delete sessions (with their refresh tokens) that expired or were
    /// revoked before `before_ms`: they can never be used again, and they
    /// hold the address and user agent of a sign-in. How many were deleted.
    pub async fn delete_sessions_ended_before(&self, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM sessions WHERE expires_at_ms < $1 OR revoked_at_ms < $1").bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::write("delete ended sessions"))
    }

    pub async fn revoke_other_sessions(&self, user_id: &str, keep: &str, reason: &str, now_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $3, revoke_reason = $4 WHERE user_id = $1 AND id <> $2 AND revoked_at_ms IS NULL")
            .bind(user_id).bind(keep).bind(now_ms).bind(reason).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::write("revoke other sessions"))
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, DbError> {
        let sql = concat!("SELECT ", session_columns!(), " FROM sessions WHERE id = $1");
        on_pool!(self, pool => sqlx::query_as(sql).bind(id).fetch_optional(pool).await).map_err(DbError::query("get session"))
    }

    pub async fn sessions_of_user(&self, user_id: &str, now_ms: i64) -> Result<Vec<SessionRow>, DbError> {
        let sql = concat!("SELECT ", session_columns!(), " FROM sessions WHERE user_id = $1 AND revoked_at_ms IS NULL AND expires_at_ms > $2 ORDER BY created_at_ms DESC");
        on_pool!(self, pool => sqlx::query_as(sql).bind(user_id).bind(now_ms).fetch_all(pool).await).map_err(DbError::query("list sessions"))
    }

    /// Revoke one session of `user_id` (or all of them when `session_id` is
    /// `None`); returns how many were live.
    pub async fn revoke_sessions(&self, user_id: &str, session_id: Option<&str>, reason: &str, now_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE sessions SET revoked_at_ms = $3, revoke_reason = $4 WHERE user_id = $1 AND ($2 IS NULL OR id = $2) AND revoked_at_ms IS NULL")
            .bind(user_id).bind(session_id).bind(now_ms).bind(reason).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::write("revoke sessions"))
    }

    pub async fn refresh_token(&self, token_hash: &str) -> Result<Option<RefreshTokenRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT token_hash, session_id, created_at_ms, used_at_ms FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash).fetch_optional(pool).await)
        .map_err(DbError::query("get refresh token"))
    }

    /// Mark `old_hash` used and store its successor, atomically; `false` when
    /// the old token was already used (a concurrent or replayed refresh).
    pub async fn rotate_refresh_token(&self, old_hash: &str, new_hash: &str, session_id: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            let claimed = sqlx::query("UPDATE refresh_tokens SET used_at_ms = $2 WHERE token_hash = $1 AND used_at_ms IS NULL")
                .bind(old_hash).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("use refresh token"))?.rows_affected() == 1;
            if !claimed {
                return Ok(false);
            }
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at_ms) VALUES ($1, $2, $3)")
                .bind(new_hash).bind(session_id).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("insert refresh token"))?;
            sqlx::query("UPDATE sessions SET last_used_at_ms = $2 WHERE id = $1")
                .bind(session_id).bind(now_ms).execute(&mut *tx).await.map_err(DbError::write("touch session"))?;
            tx.commit().await.map_err(DbError::write("commit refresh"))?;
            Ok(true)
        })
    }

    pub async fn insert_api_key(&self, key: &ApiKeyRow) -> Result<(), DbError> {
        let sql = concat!("INSERT INTO api_keys (", api_key_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&key.id).bind(&key.tenant_id).bind(&key.user_id).bind(&key.name).bind(&key.prefix).bind(&key.secret_hash)
            .bind(&key.scopes).bind(&key.metadata).bind(key.created_at_ms).bind(key.expires_at_ms).bind(key.revoked_at_ms)
            .bind(key.last_used_at_ms).bind(&key.rotated_to)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert api key"))
    }

    pub async fn api_key_by_hash(&self, secret_hash: &str) -> Result<Option<ApiKeyRow>, DbError> {
        let sql = concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE secret_hash = $1");
        on_pool!(self, pool => sqlx::query_as(sql).bind(secret_hash).fetch_optional(pool).await).map_err(DbError::query("get api key"))
    }

    pub async fn api_key(&self, tenant_id: &str, id: &str) -> Result<Option<ApiKeyRow>, DbError> {
        let sql = concat!("SELECT ", api_key_columns!(), " FROM api_keys WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get api key"))
    }

    /// The tenant's keys, or only `user_id`'s when given, newest first,
    /// after the key with `after`'s (created_at_ms, id).
    pub async fn api_keys(&self, tenant_id: &str, user_id: Option<&str>, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<ApiKeyRow>, DbError> {
        let sql = concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
             AND created_at_ms <= $3 AND ($4 = '' OR created_at_ms < $3 OR id < $4) ORDER BY created_at_ms DESC, id DESC LIMIT $5"
        );
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(user_id).bind(at).bind(id).bind(limit).fetch_all(pool).await).map_err(DbError::query("list api keys"))
    }

    pub async fn revoke_api_key(&self, tenant_id: &str, id: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE api_keys SET revoked_at_ms = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at_ms IS NULL")
            .bind(tenant_id).bind(id).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("revoke api key"))
    }

    /// Claim up to `limit` live keys (not rotated: a rotated key ends on purpose) that expire after `now_ms` and by
    /// `before_ms` and whose owner was not told yet: each is marked told as
    /// it is returned, so of several replicas only one gets a key.
    pub async fn claim_expiring_api_keys(&self, now_ms: i64, before_ms: i64, limit: i64) -> Result<Vec<ApiKeyRow>, DbError> {
        const SQL: &str = concat!(
            "UPDATE api_keys SET expiry_notified_at_ms = $1 WHERE expiry_notified_at_ms IS NULL AND id IN (",
            "SELECT id FROM api_keys WHERE revoked_at_ms IS NULL AND rotated_to IS NULL AND expiry_notified_at_ms IS NULL AND expires_at_ms > $1 AND expires_at_ms <= $2 LIMIT $3",
            ") RETURNING ",
            api_key_columns!()
        );
        on_pool!(self, pool => sqlx::query_as(SQL).bind(now_ms).bind(before_ms).bind(limit).fetch_all(pool).await).map_err(DbError::query("claim expiring api keys"))
    }

    /// Store the successor of key `old_id` and cut the old key's life to `old_expires_at_ms`.
    pub async fn rotate_api_key(&self, tenant_id: &str, old_id: &str, old_expires_at_ms: i64, new_key: &ApiKeyRow) -> Result<(), DbError> {
        let sql = concat!("INSERT INTO api_keys (", api_key_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)");
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            sqlx::query(sql)
                .bind(&new_key.id).bind(&new_key.tenant_id).bind(&new_key.user_id).bind(&new_key.name).bind(&new_key.prefix).bind(&new_key.secret_hash)
                .bind(&new_key.scopes).bind(&new_key.metadata).bind(new_key.created_at_ms).bind(new_key.expires_at_ms).bind(new_key.revoked_at_ms)
                .bind(new_key.last_used_at_ms).bind(&new_key.rotated_to)
                .execute(&mut *tx).await.map_err(DbError::write("insert rotated api key"))?;
            sqlx::query("UPDATE api_keys SET rotated_to = $3, expires_at_ms = CASE WHEN expires_at_ms IS NULL OR expires_at_ms > $4 THEN $4 ELSE expires_at_ms END \
                         WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id).bind(old_id).bind(&new_key.id).bind(old_expires_at_ms)
                .execute(&mut *tx).await.map_err(DbError::write("expire rotated api key"))?;
            tx.commit().await.map_err(DbError::write("commit rotation"))
        })
    }

    /// Record use times (batched by the caller).
    pub async fn touch_api_keys(&self, uses: &[(String, i64)]) -> Result<(), DbError> {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            for (id, at) in uses {
                sqlx::query("UPDATE api_keys SET last_used_at_ms = $2 WHERE id = $1 AND (last_used_at_ms IS NULL OR last_used_at_ms < $2)")
                    .bind(id).bind(at).execute(&mut *tx).await.map_err(DbError::write("touch api key"))?;
            }
            tx.commit().await.map_err(DbError::write("commit api key uses"))
        })
    }

    pub async fn insert_signing_key(&self, key: &SigningKeyRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO signing_keys (kid, private_der, public_key, created_at_ms, retired_at_ms) VALUES ($1, $2, $3, $4, $5)")
            .bind(&key.kid).bind(&key.private_der).bind(&key.public_key).bind(key.created_at_ms).bind(key.retired_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert signing key"))
    }

    /// Keys not retired before `since_ms`, newest first.
    pub async fn signing_keys(&self, since_ms: i64) -> Result<Vec<SigningKeyRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT kid, private_der, public_key, created_at_ms, retired_at_ms FROM signing_keys \
             WHERE retired_at_ms IS NULL OR retired_at_ms > $1 ORDER BY created_at_ms DESC, kid DESC")
            .bind(since_ms).fetch_all(pool).await)
        .map_err(DbError::query("list signing keys"))
    }

    /// Retire every active key but `keep_kid`.
    pub async fn retire_signing_keys_except(&self, keep_kid: &str, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE signing_keys SET retired_at_ms = $2 WHERE kid <> $1 AND retired_at_ms IS NULL")
            .bind(keep_kid).bind(now_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("retire signing keys"))
    }
}
