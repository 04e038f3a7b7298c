//! Personal data and how long things are kept: per-tenant retention
//! settings (enforced by `retention` jobs the platform queues hourly), a
//! person's data export, erasure requests (run as `erasure` jobs), and the
//! tenant's compliance report.
//!
//! Who may do what: retention settings and the compliance report take
//! `manage_tenant`; exporting or erasing a person's data takes
//! `manage_users` (erasure also a role within the caller's, as for removing
//! the member, and never one's own data); a signed-in person may export
//! their own data (with their account's sessions and identities, which an
//! administrator's export leaves out), not with an API key (403). A person
//! the tenant holds nothing about is a 404, as for a user that does not
//! exist; so is anyone else's export asked by a member without `manage_users`.
//!
//! Where a person's data lives is agentry-db's map of personal columns
//! (`agentry_db::privacy::PERSONAL_COLUMNS`); documents and audit events
//! are erased through their own services (search index, audit chain).
//!
//! Must not: know about HTTP, or erase anything outside the caller's
//! tenant but the account of a person left with no tenant.

mod compliance;
mod export;
mod jobs;

use std::sync::Arc;

use agentry_db::Db;
use agentry_db::identity::UserRow;
use agentry_db::privacy::RetentionRow;
use agentry_types::{AuditAction, JobKind, Permission};
use serde::{Deserialize, Serialize};

pub use compliance::ComplianceReport;
pub use export::DataExport;
pub use jobs::{ErasureJobs, RetentionJobs};

use crate::audit::RequestMeta;
use crate::error::Error;
use crate::identity::{Identity, TenantAccess, now_ms};
use crate::jobs::{JobView, Jobs, NewJob};
use crate::knowledge::Knowledge;

/// Operator settings (`[privacy]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// The shortest audit retention a tenant may set, in days.
    pub audit_min_days: u32,
    /// The largest data export, in bytes (files and documents included).
    pub export_max_bytes: u64,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        Self { audit_min_days: 365, export_max_bytes: 256 * 1024 * 1024 }
    }
}

impl PrivacySettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_DAYS).contains(&self.audit_min_days) {
            return Err(format!("privacy.audit_min_days must be 1-{MAX_DAYS}"));
        }
        if self.export_max_bytes < 1024 * 1024 {
            return Err("privacy.export_max_bytes must be at least 1048576".into());
        }
        Ok(())
    }
}

/// The longest retention that can be set (100 years).
const MAX_DAYS: u32 = 36_500;

/// How long a tenant keeps each kind of record, in days; `null` keeps it for ever.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Threads untouched for this long are deleted with their messages.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub threads_days: Option<u32>,
    /// Finished runs older than this are deleted with their tool calls.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub runs_days: Option<u32>,
    /// Document versions that are neither current nor latest, older than this, are deleted (with their chunks).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub document_versions_days: Option<u32>,
    /// Raw usage records and daily usage rollups older than this are deleted
    /// (raw records also go after `usage.retention_days`, whichever is shorter).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub usage_days: Option<u32>,
    /// Audit events older than this are deleted; never shorter than the
    /// operator's minimum (`audit_min_days`). The chain records each deletion.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 36500)]
    pub audit_days: Option<u32>,
}

/// A tenant's retention as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RetentionView {
    /// What `PUT` set (each `null`: kept for ever).
    pub settings: Retention,
    /// The shortest `audit_days` this installation allows.
    pub audit_min_days: u32,
    /// When the settings last changed (`null`: never set).
    pub updated_at_ms: Option<i64>,
}

impl Retention {
    fn from_row(row: &RetentionRow) -> Self {
        let days = |d: Option<i64>| d.and_then(|d| u32::try_from(d).ok());
        Self {
            threads_days: days(row.threads_days),
            runs_days: days(row.runs_days),
            document_versions_days: days(row.document_versions_days),
            usage_days: days(row.usage_days),
            audit_days: days(row.audit_days),
        }
    }

    fn check(&self, audit_min_days: u32) -> Result<(), Error> {
        let fields = [
            ("threads_days", self.threads_days),
            ("runs_days", self.runs_days),
            ("document_versions_days", self.document_versions_days),
            ("usage_days", self.usage_days),
            ("audit_days", self.audit_days),
        ];
        for (name, days) in fields {
            if days.is_some_and(|d| !(1..=MAX_DAYS).contains(&d)) {
                return Err(Error::invalid(format!("{name} must be 1-{MAX_DAYS} days, or null to keep for ever"), name));
            }
        }
        if self.audit_days.is_some_and(|d| d < audit_min_days) {
            return Err(Error::invalid(format!("audit_days must be at least {audit_min_days} (this installation's minimum, privacy.audit_min_days)"), "audit_days"));
        }
        Ok(())
    }
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Privacy {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    identity: Identity,
    knowledge: Knowledge,
    jobs: Jobs,
    settings: PrivacySettings,
    /// Exports are built in memory: at most [`EXPORTS_AT_ONCE`] at a time per process.
    exports: tokio::sync::Semaphore,
}

/// Data exports built at once by one process.
const EXPORTS_AT_ONCE: usize = 2;

impl Privacy {
    pub fn new(db: Db, identity: Identity, knowledge: Knowledge, jobs: Jobs, settings: PrivacySettings) -> Self {
        Self { inner: Arc::new(Inner { db, identity, knowledge, jobs, settings, exports: tokio::sync::Semaphore::new(EXPORTS_AT_ONCE) }) }
    }

    /// The tenant's retention settings.
    pub async fn retention(&self, access: &TenantAccess) -> Result<RetentionView, Error> {
        access.require(Permission::ManageTenant)?;
        self.retention_of(access.tenant_id()).await
    }

    async fn retention_of(&self, tenant_id: &str) -> Result<RetentionView, Error> {
        let row = self.inner.db.retention(tenant_id).await?;
        Ok(RetentionView {
            settings: row.as_ref().map(Retention::from_row).unwrap_or_default(),
            audit_min_days: self.inner.settings.audit_min_days,
            updated_at_ms: row.map(|r| r.updated_at_ms),
        })
    }

    /// Replace the tenant's retention settings (a field left out keeps that record for ever).
    pub async fn put_retention(&self, access: &TenantAccess, retention: Retention, meta: &RequestMeta) -> Result<RetentionView, Error> {
        access.require(Permission::ManageTenant)?;
        retention.check(self.inner.settings.audit_min_days)?;
        let days = |d: Option<u32>| d.map(i64::from);
        let row = RetentionRow {
            threads_days: days(retention.threads_days),
            runs_days: days(retention.runs_days),
            document_versions_days: days(retention.document_versions_days),
            usage_days: days(retention.usage_days),
            audit_days: days(retention.audit_days),
            updated_at_ms: now_ms(),
        };
        self.inner.db.put_retention(access.tenant_id(), &row).await?;
        let metadata = serde_json::to_value(&retention).unwrap_or_default();
        self.inner.identity.record_success(access, AuditAction::RetentionUpdate, None, meta, metadata).await?;
        self.retention_of(access.tenant_id()).await
    }

    /// The person `user_id`, when the tenant holds anything of theirs (a
    /// membership, or rows they own or created); else a 404.
    async fn person_in_tenant(&self, access: &TenantAccess, user_id: &str) -> Result<UserRow, Error> {
        let not_found = || Error::NotFound(format!("user '{user_id}'"));
        let user = self.inner.db.user_by_id(user_id).await?.ok_or_else(not_found)?;
        if self.inner.db.membership(access.tenant_id(), user_id).await?.is_some() || self.inner.db.holds_person(access.tenant_id(), user_id).await? {
            return Ok(user);
        }
        Err(not_found())
    }

    /// Queue the erasure of `user_id`'s data from the tenant (an `erasure`
    /// job acting for the caller). The audit event names the job, not the
    /// person.
    pub async fn request_erasure(&self, access: &TenantAccess, user_id: &str, meta: &RequestMeta) -> Result<JobView, Error> {
        access.require(Permission::ManageUsers)?;
        let user = self.person_in_tenant(access, user_id).await?;
        self.inner.identity.check_subject(access, &user, true).await?;
        // The account goes too only when this tenant is the last one the person belongs to.
        let memberships = self.inner.db.memberships_of_user(&user.id).await?;
        let account = memberships.len() == 1 && memberships[0].tenant_id == access.tenant_id();
        let new = NewJob {
            kind: JobKind::Erasure,
            subject_id: uuid::Uuid::now_v7().to_string(),
            subject_version: 0,
            payload: serde_json::json!({ "user_id": user.id, "email": user.email, "account": account }),
            priority: 0,
            idempotency_key: None,
            max_attempts: None,
        };
        let (job, _) = self.inner.jobs.enqueue(access, new).await?;
        self.inner.identity.record_success(access, AuditAction::UserErase, Some(format!("job:{}", job.id)), meta, serde_json::json!({ "status": "requested" })).await?;
        Ok(job.into())
    }
}
