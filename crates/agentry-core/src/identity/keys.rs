//! API key lifecycle: create (scoped to a subset of the creator's
//! permissions, optional expiry), list, rotate (the old key keeps working for
//! a grace period), revoke (immediate in this process, within
//! [`super::api_keys::CACHE_TTL`] on other replicas).
//!
//! Keys are personal objects. Anyone with a session creates, rotates and
//! revokes their own keys; `manage_api_keys` lists and revokes other
//! members' keys but never obtains a secret for them: only a key's owner
//! creates or rotates it (a rotation's new secret goes to the caller, so a
//! rotation by anyone else would hand them the owner's standing).

use agentry_db::identity::ApiKeyRow;
use agentry_types::AuditAction;
use agentry_types::{Permission, PermissionSet};
use serde::Serialize;

use super::{Credential, Error, Identity, RequestMeta, TenantAccess, api_keys, now_ms};
use crate::audit::Outcome;
use crate::page::{Cursor, Page, PageRequest};

/// What to create.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    /// `None`: everything the creator may do in the tenant, now.
    pub scopes: Option<PermissionSet>,
    pub expires_in_secs: Option<u64>,
    pub metadata: serde_json::Value,
}

/// A key as listed (never the secret).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub user_id: String,
    pub scopes: PermissionSet,
    pub metadata: serde_json::Value,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
    pub rotated_to: Option<String>,
}

/// A created key: its secret is in this answer and nowhere else.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    pub key: String,
}

impl From<&ApiKeyRow> for ApiKeyInfo {
    fn from(row: &ApiKeyRow) -> Self {
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            prefix: row.prefix.clone(),
            user_id: row.user_id.clone(),
            scopes: serde_json::from_str(&row.scopes).unwrap_or_default(),
            metadata: serde_json::from_str(&row.metadata).unwrap_or(serde_json::Value::Null),
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            revoked_at_ms: row.revoked_at_ms,
            last_used_at_ms: row.last_used_at_ms,
            rotated_to: row.rotated_to.clone(),
        }
    }
}

/// How the caller stands to a key it may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyRelation {
    Own,
    /// Another member's key, seen through `manage_api_keys`.
    Managed,
}

/// Longest lifetime and grace accepted, in seconds (10 years).
const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

impl Identity {
    fn key_owner(access: &TenantAccess) -> Result<&str, Error> {
        match &access.principal.0 {
            Credential::User { user_id, .. } => Ok(user_id),
            Credential::ApiKey { .. } => Err(Error::Forbidden("API keys cannot create API keys; sign in".into())),
            Credential::MasterKey => Err(Error::Forbidden("the master key does not own API keys; sign in as a user".into())),
        }
    }

    pub async fn create_api_key(&self, access: &TenantAccess, new: NewApiKey, meta: &RequestMeta) -> Result<CreatedApiKey, Error> {
        let owner = Self::key_owner(access)?;
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name must have 1-100 characters", "name"));
        }
        let scopes = new.scopes.unwrap_or(access.permissions);
        if !scopes.is_subset(access.permissions) {
            let extra: Vec<_> = scopes.iter().filter(|p| !access.can(*p)).map(Permission::as_str).collect();
            return Err(Error::invalid(format!("scopes exceed your permissions: {}", extra.join(", ")), "scopes"));
        }
        if new.expires_in_secs.is_some_and(|s| s == 0 || s > MAX_SECS) {
            return Err(Error::invalid("expires_in must be between 1 second and 10 years", "expires_in"));
        }
        if !new.metadata.is_object() && !new.metadata.is_null() {
            return Err(Error::invalid("metadata must be an object", "metadata"));
        }
        let now = now_ms();
        let generated = api_keys::generate();
        let row = ApiKeyRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: access.tenant_id.clone(),
            user_id: owner.to_owned(),
            name: name.to_owned(),
            prefix: generated.display_prefix,
            secret_hash: generated.hash,
            scopes: serde_json::to_string(&scopes).map_err(|e| Error::Internal(e.to_string()))?,
            metadata: if new.metadata.is_null() { "{}".into() } else { new.metadata.to_string() },
            created_at_ms: now,
            expires_at_ms: new.expires_in_secs.map(|s| now + (s * 1000) as i64),
            revoked_at_ms: None,
            last_used_at_ms: None,
            rotated_to: None,
        };
        self.db.insert_api_key(&row).await?;
        self.record(
            Some(&access.tenant_id),
            access.principal.actor(),
            AuditAction::ApiKeyCreate,
            Some(format!("api_key:{}", row.id)),
            Outcome::Success,
            meta,
            serde_json::json!({ "name": name, "scopes": scopes }),
        )
        .await?;
        Ok(CreatedApiKey { info: ApiKeyInfo::from(&row), key: generated.secret })
    }

    /// Keys of the tenant: all with `manage_api_keys`, otherwise the caller's own.
    /// A key sees itself; a signed-in user their own keys, or every key of
    /// the tenant with `manage_api_keys`.
    pub async fn api_keys(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<ApiKeyInfo>, Error> {
        if let Credential::ApiKey { key_id, .. } = &access.principal.0 {
            let own = self.db.api_key(&access.tenant_id, key_id).await?.iter().map(ApiKeyInfo::from).collect();
            return Ok(Page { data: own, next_cursor: None });
        }
        let own = if access.can(Permission::ManageApiKeys) { None } else { access.principal.user_id() };
        let rows = self.db.api_keys(&access.tenant_id, own, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.id), |row| ApiKeyInfo::from(&row)))
    }

    /// A key the caller may see: a key itself only (a leaked narrow key must
    /// not list or revoke its owner's other keys); a user's own keys; any
    /// with `manage_api_keys`. Others' keys are not found, so their ids
    /// reveal nothing.
    async fn visible_key(&self, access: &TenantAccess, id: &str) -> Result<(ApiKeyRow, KeyRelation), Error> {
        let row = self.db.api_key(&access.tenant_id, id).await?.ok_or(Error::NotFound("api key".into()))?;
        match &access.principal.0 {
            Credential::ApiKey { key_id, .. } if *key_id == row.id => Ok((row, KeyRelation::Own)),
            Credential::ApiKey { .. } => Err(Error::NotFound("api key".into())),
            _ if access.principal.user_id() == Some(row.user_id.as_str()) => Ok((row, KeyRelation::Own)),
            _ if access.can(Permission::ManageApiKeys) => Ok((row, KeyRelation::Managed)),
            _ => Err(Error::NotFound("api key".into())),
        }
    }

    pub async fn revoke_api_key(&self, access: &TenantAccess, id: &str, meta: &RequestMeta) -> Result<(), Error> {
        let (row, relation) = self.visible_key(access, id).await?;
        if relation == KeyRelation::Managed {
            // Within the ceiling: not the keys of someone who holds more than the caller.
            if let Some(owner) = self.db.membership(&access.tenant_id, &row.user_id).await? {
                self.outranked_member(access, &owner).await?;
            }
        }
        if !self.db.revoke_api_key(&access.tenant_id, id, now_ms()).await? {
            return Err(Error::NotFound("api key".into()));
        }
        self.keys.invalidate(&row.secret_hash);
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::ApiKeyRevoke, Some(format!("api_key:{id}")), Outcome::Success, meta, serde_json::json!({}))
            .await
    }

    /// A new secret for the key; the old one keeps working for `grace_secs`.
    pub async fn rotate_api_key(&self, access: &TenantAccess, id: &str, grace_secs: u64, meta: &RequestMeta) -> Result<CreatedApiKey, Error> {
        Self::key_owner(access)?;
        let (old, relation) = self.visible_key(access, id).await?;
        if relation != KeyRelation::Own {
            return Err(Error::Forbidden("only a key's owner can rotate it (the new secret goes to the caller); revoke it instead".into()));
        }
        let now = now_ms();
        if old.revoked_at_ms.is_some() || old.expires_at_ms.is_some_and(|t| t <= now) || old.rotated_to.is_some() {
            return Err(Error::Conflict("only a live, unrotated key can be rotated".into()));
        }
        if grace_secs > MAX_SECS {
            return Err(Error::invalid("grace_period must be at most 10 years", "grace_period"));
        }
        let generated = api_keys::generate();
        let new = ApiKeyRow {
            id: uuid::Uuid::now_v7().to_string(),
            prefix: generated.display_prefix,
            secret_hash: generated.hash,
            created_at_ms: now,
            last_used_at_ms: None,
            rotated_to: None,
            ..old.clone()
        };
        self.db.rotate_api_key(&access.tenant_id, id, now + (grace_secs * 1000) as i64, &new).await?;
        self.keys.invalidate(&old.secret_hash);
        let metadata = serde_json::json!({ "new_key": new.id, "grace_secs": grace_secs });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::ApiKeyRotate, Some(format!("api_key:{id}")), Outcome::Success, meta, metadata).await?;
        Ok(CreatedApiKey { info: ApiKeyInfo::from(&new), key: generated.secret })
    }
}
