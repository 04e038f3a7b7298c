//! Delegations: the credential a queued job acts with. A job is created by
//! someone who holds a [`TenantAccess`]; it runs later, in any process,
//! after that request is gone. The job stores who asked (the user, the API
//! key, or the master key — never a secret) and [`Identity::redeem`] turns
//! that back into access when the job runs, with what the credential holds
//! *then*: a disabled user, a member who left, a revoked or expired key, or
//! a narrowed role or scope stops the job or narrows what it may do.
//!
//! The stored form is the only way in: a delegation is made from an access
//! that was checked ([`TenantAccess::delegation`]) and read back only by
//! [`Identity::redeem`], so holding one proves nothing until it is redeemed.
//!
//! Must not: keep secrets, or skip the membership check a request would get.

use serde::{Deserialize, Serialize};

use super::{Credential, Error, Identity, Principal, TenantAccess, now_ms, stored_permissions};

/// Who a queued job acts for; see the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "as", rename_all = "snake_case")]
enum Delegated {
    User { user_id: String },
    ApiKey { key_id: String },
    MasterKey,
}

/// A delegation in its stored form (JSON text kept with the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegation(String);

impl Delegation {
    /// The text to store with the job.
    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

impl Delegation {
    /// The delegation of jobs the platform queues by itself (retention):
    /// the master key's. Only code queues such jobs; no request can ask for it.
    pub fn platform() -> Self {
        Self(serde_json::to_string(&Delegated::MasterKey).unwrap_or_default())
    }
}

impl TenantAccess {
    /// The delegation a job queued with this access acts with.
    pub fn delegation(&self) -> Delegation {
        let delegated = match &self.principal.0 {
            Credential::User { user_id, .. } => Delegated::User { user_id: user_id.clone() },
            Credential::ApiKey { key_id, .. } => Delegated::ApiKey { key_id: key_id.clone() },
            Credential::MasterKey => Delegated::MasterKey,
        };
        Delegation(serde_json::to_string(&delegated).unwrap_or_default())
    }
}

impl Identity {
    /// The access a job stored with `stored` (its [`Delegation`]) has in
    /// tenant `tenant_id` now; `Forbidden` when the credential no longer
    /// stands (disabled user, revoked or expired key, no membership).
    pub async fn redeem(&self, tenant_id: &str, stored: &str) -> Result<TenantAccess, Error> {
        let gone = |what: &str| Error::Forbidden(format!("the job's {what} no longer has access to the tenant"));
        let delegated: Delegated = serde_json::from_str(stored).map_err(|_| Error::Internal("a job's stored delegation is unreadable".into()))?;
        let principal = match delegated {
            Delegated::User { user_id } => {
                let user = self.db.user_by_id(&user_id).await?.filter(|u| u.is_active).ok_or_else(|| gone("user"))?;
                // No session: the job outlives the request's. A tenant that
                // requires a second factor runs the jobs of users who have one enrolled.
                let mfa = self.db.mfa(&user_id).await?.is_some_and(|m| m.totp_enabled);
                Principal(Credential::User { user_id, session_id: String::new(), platform_admin: user.platform_admin, mfa })
            }
            Delegated::ApiKey { key_id } => {
                let row = self.db.api_key(tenant_id, &key_id).await?.ok_or_else(|| gone("API key"))?;
                let owner_active = self.db.user_by_id(&row.user_id).await?.is_some_and(|u| u.is_active);
                if row.revoked_at_ms.is_some() || row.expires_at_ms.is_some_and(|t| t <= now_ms()) || !owner_active {
                    return Err(gone("API key"));
                }
                let scopes = stored_permissions(&row.scopes, "api key", &row.id);
                Principal(Credential::ApiKey { key_id: row.id, user_id: row.user_id, tenant_id: row.tenant_id, scopes })
            }
            Delegated::MasterKey => Principal(Credential::MasterKey),
        };
        self.resolve_tenant_access(&principal, tenant_id).await.map_err(|e| match e {
            Error::NotFound(_) | Error::InvalidApiKey | Error::MfaRequired => gone("credential"),
            other => other,
        })
    }
}
