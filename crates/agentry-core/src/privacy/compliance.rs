//! The tenant's compliance report: who administers it and whether they use
//! a second factor, second-factor coverage, API keys nobody used for a
//! long time or that never expire, whether the audit chain holds, the
//! retention settings, and the installation's last backup — with the
//! findings a reviewer should act on, in words.

use agentry_types::Permission;
use serde::Serialize;

use super::{Privacy, RetentionView};
use crate::audit::Verification;
use crate::error::Error;
use crate::identity::{TenantAccess, now_ms};

/// A key unused for this long is stale.
pub const STALE_KEY_DAYS: i64 = 90;

/// One member, as the report names them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberRef {
    pub user_id: String,
    pub email: String,
    pub role: String,
    /// A second factor (TOTP) is enrolled.
    pub mfa: bool,
    pub active: bool,
}

/// Second-factor coverage of the tenant's members.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MfaCoverage {
    /// The tenant requires a second factor.
    pub required: bool,
    pub members: usize,
    pub with_mfa: usize,
    /// `with_mfa / members` (1 for a tenant without members).
    pub coverage: f64,
    pub without_mfa: Vec<MemberRef>,
}

/// A live API key that deserves a look.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyRef {
    pub id: String,
    pub name: String,
    pub user_id: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
}

/// The tenant's live API keys.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KeyReport {
    pub live: usize,
    /// Not used for [`STALE_KEY_DAYS`] days (or never, and older than that).
    pub stale: Vec<KeyRef>,
    /// Keys without an expiry.
    pub without_expiry: usize,
    pub stale_after_days: i64,
}

/// The last backup taken with `agentry backup` on this installation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BackupInfo {
    pub at_ms: i64,
    pub bytes: i64,
    /// The archive holds the master key (it can open every sealed secret).
    pub includes_master_key: bool,
}

/// The report (`GET /api/v1/tenants/{tenant}/compliance/report`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ComplianceReport {
    pub tenant: String,
    pub generated_at_ms: i64,
    /// Members whose role can manage the tenant or its users.
    pub admins: Vec<MemberRef>,
    pub mfa: MfaCoverage,
    pub api_keys: KeyReport,
    /// A full verification of the tenant's audit chain, as of now.
    pub audit_chain: Verification,
    pub retention: RetentionView,
    /// `null` when no backup was recorded (PostgreSQL installations back up with their own tools).
    pub last_backup: Option<BackupInfo>,
    /// What a reviewer should act on, in words (empty when nothing).
    pub findings: Vec<String>,
}

impl Privacy {
    /// The tenant's compliance report (`manage_tenant`).
    pub async fn compliance_report(&self, access: &TenantAccess) -> Result<ComplianceReport, Error> {
        access.require(Permission::ManageTenant)?;
        let inner = &self.inner;
        let tenant_id = access.tenant_id();
        let now = now_ms();
        let members = inner.db.member_security(tenant_id).await?;
        let mut admins = Vec::new();
        let refs: Vec<MemberRef> =
            members.iter().map(|m| MemberRef { user_id: m.user_id.clone(), email: m.email.clone(), role: m.role.clone(), mfa: m.totp_enabled, active: m.is_active }).collect();
        // Members share a handful of roles: each role's permissions are looked up once.
        let mut administering: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
        for member in &refs {
            let administers = match administering.get(member.role.as_str()) {
                Some(known) => *known,
                None => {
                    let permissions = inner.identity.role_permissions(tenant_id, &member.role).await?;
                    let known = permissions.contains(Permission::ManageTenant) || permissions.contains(Permission::ManageUsers);
                    *administering.entry(&member.role).or_insert(known)
                }
            };
            if administers {
                admins.push(member.clone());
            }
        }
        let without_mfa: Vec<MemberRef> = refs.iter().filter(|m| !m.mfa && m.active).cloned().collect();
        let active = refs.iter().filter(|m| m.active).count();
        let with_mfa = active - without_mfa.len();
        let mfa =
            MfaCoverage { required: access.mfa_required(), members: active, with_mfa, coverage: if active == 0 { 1.0 } else { with_mfa as f64 / active as f64 }, without_mfa };

        let keys = inner.db.live_key_uses(tenant_id).await?;
        let stale_before = now - STALE_KEY_DAYS * 86_400_000;
        let live: Vec<_> = keys.into_iter().filter(|k| k.expires_at_ms.is_none_or(|t| t > now)).collect();
        let stale = live
            .iter()
            .filter(|k| k.last_used_at_ms.unwrap_or(k.created_at_ms) < stale_before)
            .map(|k| KeyRef {
                id: k.id.clone(),
                name: k.name.clone(),
                user_id: k.user_id.clone(),
                created_at_ms: k.created_at_ms,
                last_used_at_ms: k.last_used_at_ms,
                expires_at_ms: k.expires_at_ms,
            })
            .collect();
        let without_expiry = live.iter().filter(|k| k.expires_at_ms.is_none()).count();
        let api_keys = KeyReport { live: live.len(), stale, without_expiry, stale_after_days: STALE_KEY_DAYS };

        // The signed anchor of a verification is for those who read the audit log (`view_audit`), not this report.
        let audit_chain = Verification { anchor: None, ..inner.identity.audit().verify(tenant_id).await? };
        let retention = self.retention_of(tenant_id).await?;
        let last_backup = inner.db.last_backup().await?.map(|b| BackupInfo { at_ms: b.at_ms, bytes: b.bytes, includes_master_key: b.includes_master_key != 0 });

        let mut findings = Vec::new();
        let admins_without_mfa = admins.iter().filter(|a| !a.mfa && a.active).count();
        if admins_without_mfa > 0 {
            findings.push(format!("{admins_without_mfa} administrator(s) have no second factor"));
        }
        if !mfa.required && !mfa.without_mfa.is_empty() {
            findings.push(format!("the tenant does not require a second factor, and {} active member(s) have none", mfa.without_mfa.len()));
        }
        if !api_keys.stale.is_empty() {
            findings.push(format!("{} API key(s) unused for {STALE_KEY_DAYS} days or more: revoke them", api_keys.stale.len()));
        }
        if api_keys.without_expiry > 0 {
            findings.push(format!("{} API key(s) never expire", api_keys.without_expiry));
        }
        if !audit_chain.valid {
            findings.push(format!("the audit chain does not hold: {}", audit_chain.reason.as_deref().unwrap_or_default()));
        }
        if retention.updated_at_ms.is_none() {
            findings.push("no retention is set: threads, runs, document versions, usage records and audit events are kept for ever".into());
        }
        match &last_backup {
            None => findings.push("no backup was recorded (agentry backup)".into()),
            Some(b) if b.at_ms < now - 7 * 86_400_000 => findings.push("the last backup is more than 7 days old".into()),
            Some(_) => {}
        }
        Ok(ComplianceReport { tenant: access.tenant_slug().to_owned(), generated_at_ms: now, admins, mfa, api_keys, audit_chain, retention, last_backup, findings })
    }
}
