//! The columns that hold secrets the server reads back — JWT signing keys
//! (`signing_keys.private_der`), TOTP secrets (`users.totp_secret`) and
//! external MCP servers' headers (`mcp_servers.headers`) — listed and
//! rewritten together: the startup step that seals values still stored in
//! clear, and `agentry keys rotate-master`, which reseals every value under
//! a new master key, go through here.
//!
//! A rewrite is one write transaction of compare-and-set updates (a row
//! changed since it was listed is left as it is, and not counted).
//!
//! Must not: seal, open or judge values (agentry-core's `secrets` module
//! does); the listing returns what is stored, sealed or not.

use crate::{Db, DbError, on_pool};

/// Where a secret is stored: its column and the row's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretSlot {
    /// `signing_keys.private_der` of key `kid`.
    SigningKey { kid: String },
    /// `users.totp_secret` of a user.
    TotpSecret { user_id: String },
    /// `mcp_servers.headers` of a tenant's registered server.
    McpHeaders { tenant_id: String, name: String },
    /// `webhooks.secrets` of a webhook endpoint.
    WebhookSecrets { id: String },
}

/// A stored secret as read (sealed or, before the startup step, in clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub slot: SecretSlot,
    pub value: String,
}

/// Replace `old` (as listed) by `new` in `slot`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUpdate {
    pub slot: SecretSlot,
    pub old: String,
    pub new: String,
}

/// (row key…, value) pairs as the listing queries return them.
type Pairs = Vec<(String, String)>;
type Triples = Vec<(String, String, String)>;

impl Db {
    /// Every stored secret: signing keys (retired ones too), TOTP secrets
    /// (pending and enabled), MCP server headers, webhook signing keys.
    pub async fn stored_secrets(&self) -> Result<Vec<StoredSecret>, DbError> {
        let (keys, totp, mcp, hooks): (Pairs, Pairs, Triples, Pairs) = on_pool!(self, pool => {
            let keys = sqlx::query_as("SELECT kid, private_der FROM signing_keys ORDER BY kid").fetch_all(pool).await.map_err(DbError::query("list signing key secrets"))?;
            let totp = sqlx::query_as("SELECT id, totp_secret FROM users WHERE totp_secret IS NOT NULL ORDER BY id").fetch_all(pool).await.map_err(DbError::query("list totp secrets"))?;
            let mcp = sqlx::query_as("SELECT tenant_id, name, headers FROM mcp_servers ORDER BY tenant_id, name").fetch_all(pool).await.map_err(DbError::query("list mcp server headers"))?;
            let hooks = sqlx::query_as("SELECT id, secrets FROM webhooks ORDER BY id").fetch_all(pool).await.map_err(DbError::query("list webhook secrets"))?;
            Ok::<_, DbError>((keys, totp, mcp, hooks))
        })?;
        let keys = keys.into_iter().map(|(kid, value)| StoredSecret { slot: SecretSlot::SigningKey { kid }, value });
        let totp = totp.into_iter().map(|(user_id, value)| StoredSecret { slot: SecretSlot::TotpSecret { user_id }, value });
        let mcp = mcp.into_iter().map(|(tenant_id, name, value)| StoredSecret { slot: SecretSlot::McpHeaders { tenant_id, name }, value });
        let hooks = hooks.into_iter().map(|(id, value)| StoredSecret { slot: SecretSlot::WebhookSecrets { id }, value });
        Ok(keys.chain(totp).chain(mcp).chain(hooks).collect())
    }

    /// Apply `updates` in one write transaction, each only where the stored
    /// value is still `old`; returns how many rows changed. `before_commit`
    /// runs inside the transaction, after the updates: an error from it
    /// rolls everything back and is returned as [`DbError::Aborted`] (the
    /// master key rotation writes its key files there, so the database and
    /// the files never disagree in a way that loses a key).
    pub async fn rewrite_secrets<F>(&self, updates: &[SecretUpdate], before_commit: F) -> Result<u64, DbError>
    where
        F: FnOnce() -> Result<(), String>,
    {
        on_pool!(self, pool => {
            let mut tx = crate::begin_write(pool).await.map_err(DbError::write("begin"))?;
            let mut changed = 0;
            for update in updates {
                let done = match &update.slot {
                    SecretSlot::SigningKey { kid } => sqlx::query("UPDATE signing_keys SET private_der = $2 WHERE kid = $1 AND private_der = $3")
                        .bind(kid).bind(&update.new).bind(&update.old).execute(&mut *tx).await,
                    SecretSlot::TotpSecret { user_id } => sqlx::query("UPDATE users SET totp_secret = $2 WHERE id = $1 AND totp_secret = $3")
                        .bind(user_id).bind(&update.new).bind(&update.old).execute(&mut *tx).await,
                    SecretSlot::McpHeaders { tenant_id, name } => sqlx::query("UPDATE mcp_servers SET headers = $3 WHERE tenant_id = $1 AND name = $2 AND headers = $4")
                        .bind(tenant_id).bind(name).bind(&update.new).bind(&update.old).execute(&mut *tx).await,
                    SecretSlot::WebhookSecrets { id } => sqlx::query("UPDATE webhooks SET secrets = $2 WHERE id = $1 AND secrets = $3")
                        .bind(id).bind(&update.new).bind(&update.old).execute(&mut *tx).await,
                };
                changed += done.map_err(DbError::write("rewrite secret"))?.rows_affected();
            }
            before_commit().map_err(DbError::Aborted)?;
            tx.commit().await.map_err(DbError::write("commit secrets"))?;
            Ok(changed)
        })
    }
}
