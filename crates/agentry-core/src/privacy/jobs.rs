//! The two job kinds of this service: `erasure` (one person, one tenant,
//! acting for the administrator who asked) and `retention` (one tenant,
//! queued hourly by the platform with its own delegation; one per tenant
//! and hour whichever replica queues it, by idempotency key).
//!
//! Both are idempotent: an attempt that fails half way runs again from the
//! start and finds less to do.

use std::time::Duration;

use agentry_db::jobs::JobRecord;
use agentry_db::privacy::Person;
use agentry_types::{JobKind, JobStatus, Permission};
use tokio_util::sync::CancellationToken;

use super::Privacy;
use crate::audit::PLATFORM_CHAIN;
use crate::error::Error;
use crate::identity::{Delegation, now_ms};
use crate::jobs::{JobContext, JobFailure, JobHandler, NewJob};

const DAY_MS: i64 = 86_400_000;
/// Who owns the retention jobs the platform queues.
pub const PLATFORM_OWNER: &str = "system";

/// Runs `erasure` jobs.
pub struct ErasureJobs(pub Privacy);

/// Runs `retention` jobs.
pub struct RetentionJobs(pub Privacy);

#[derive(serde::Deserialize)]
struct ErasurePayload {
    user_id: String,
    /// Their address when the request was made (used when the account is already gone).
    email: String,
    /// This tenant was the last the person belonged to when the request was made.
    #[serde(default)]
    account: bool,
}

#[async_trait::async_trait]
impl JobHandler for ErasureJobs {
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        let Ok(payload) = serde_json::from_str::<ErasurePayload>(&job.payload) else {
            // Done before: the payload naming the person is cleared when an erasure finishes.
            return Ok(());
        };
        let db = &self.0.inner.db;
        let user = db.user_by_id(&payload.user_id).await.map_err(|e| JobFailure::of(e.into()))?;
        // Checked again as the requester stands now (their role, the person's, the last admin).
        if let Some(user) = &user {
            self.0.inner.identity.check_subject(&context.access, user, true).await.map_err(JobFailure::of)?;
        } else {
            context.access.require(Permission::ManageUsers).map_err(JobFailure::of)?;
        }
        let email = user.as_ref().map_or(payload.email.as_str(), |u| u.email.as_str());
        let actor = context.access.principal().actor();
        self.0.erase(&job.tenant_id, &Person { user_id: &payload.user_id, email }, payload.account, &actor).await.map_err(JobFailure::of)?;
        db.clear_job_payload(&job.id).await.map_err(|e| JobFailure::of(e.into()))
    }

    async fn ended(&self, _job: &JobRecord, _status: JobStatus, _reason: &str) {}

    async fn requeued(&self, _job: &JobRecord) {}
}

#[async_trait::async_trait]
impl JobHandler for RetentionJobs {
    async fn run(&self, job: &JobRecord, _context: &JobContext) -> Result<(), JobFailure> {
        self.0.enforce_retention(&job.tenant_id).await.map_err(JobFailure::of)
    }

    async fn ended(&self, _job: &JobRecord, _status: JobStatus, _reason: &str) {}

    async fn requeued(&self, _job: &JobRecord) {}
}

impl Privacy {
    /// Erase `person` from `tenant_id`: their documents (and chunks), the
    /// audit events naming them, every mapped row; then, when this was the
    /// last tenant they belonged to (`account`) and still is, their account.
    async fn erase(&self, tenant_id: &str, person: &Person<'_>, account: bool, actor: &crate::audit::Actor) -> Result<(), Error> {
        let inner = &self.inner;
        let audit = inner.identity.audit();
        // Events by their API keys are theirs too: the keys' ids, read before the keys are deleted.
        let mut ids = vec![person.user_id.to_owned()];
        ids.extend(inner.db.api_key_ids_of(tenant_id, person.user_id).await?);
        let mut events = audit.erase_person(tenant_id, &ids, person.email, actor).await?;
        let documents = inner.knowledge.erase_documents_of(tenant_id, person.user_id).await?;
        let rows = inner.db.erase_from_tenant(tenant_id, person).await?;
        let user = inner.db.user_by_id(person.user_id).await?;
        let last = account && user.as_ref().is_some_and(|u| !u.platform_admin) && inner.db.memberships_of_user(person.user_id).await?.is_empty();
        if last {
            events += audit.erase_person(PLATFORM_CHAIN, &ids, person.email, actor).await?;
            inner.db.erase_account(person).await?;
        }
        inner.identity.person_erased();
        tracing::info!(tenant_id, documents, audit_events = events, rows, account = last, "erased a person's data");
        Ok(())
    }

    /// Delete what `tenant_id` keeps past its retention settings.
    async fn enforce_retention(&self, tenant_id: &str) -> Result<(), Error> {
        let inner = &self.inner;
        let Some(row) = inner.db.retention(tenant_id).await? else { return Ok(()) };
        let now = now_ms();
        let cutoff = |days: i64| now - days * DAY_MS;
        if let Some(days) = row.threads_days {
            inner.db.delete_threads_idle_before(tenant_id, cutoff(days)).await?;
        }
        if let Some(days) = row.runs_days {
            inner.db.delete_runs_before(tenant_id, cutoff(days)).await?;
        }
        if let Some(days) = row.document_versions_days {
            inner.knowledge.prune_versions_before(tenant_id, cutoff(days)).await?;
        }
        if let Some(days) = row.usage_days {
            inner.db.delete_tenant_usage_records_before(tenant_id, cutoff(days)).await?;
            // Budgets and invoices read the rollups of the current and the previous month: those stay.
            let day = chrono::DateTime::from_timestamp_millis(cutoff(days)).unwrap_or_default().date_naive();
            let kept_from = previous_month_start(chrono::Utc::now().date_naive());
            inner.db.delete_usage_rollups_before(tenant_id, &day.min(kept_from).format("%Y-%m-%d").to_string()).await?;
        }
        // Never shorter than the installation's minimum, even if the settings were stored under a longer one.
        if let Some(days) = row.audit_days.map(|d| d.max(i64::from(inner.settings.audit_min_days))) {
            inner.identity.audit().prune(tenant_id, cutoff(days)).await?;
        }
        Ok(())
    }

    /// Queue one `retention` job for every tenant with retention settings
    /// (one per tenant and hour, however many replicas do this).
    pub async fn queue_retention(&self) -> Result<usize, Error> {
        let inner = &self.inner;
        let hour = now_ms() / 3_600_000;
        let mut queued = 0;
        for tenant_id in inner.db.tenants_with_retention().await? {
            let new = NewJob {
                kind: JobKind::Retention,
                subject_id: tenant_id.clone(),
                subject_version: 0,
                payload: serde_json::json!({}),
                priority: -1,
                idempotency_key: Some(format!("retention-{hour}")),
                max_attempts: None,
            };
            let record = inner.jobs.record_for(&tenant_id, PLATFORM_OWNER, Delegation::platform().as_stored(), new);
            if inner.db.insert_job(&record).await?.1 {
                queued += 1;
            }
        }
        inner.jobs.wake(JobKind::Retention, queued);
        Ok(queued)
    }

    /// Run `erasure` and `retention` jobs on `jobs`' workers (before they start).
    pub fn register(&self, jobs: &crate::jobs::Jobs) {
        jobs.register(JobKind::Erasure, std::sync::Arc::new(ErasureJobs(self.clone())));
        jobs.register(JobKind::Retention, std::sync::Arc::new(RetentionJobs(self.clone())));
    }

    /// Queue a `retention` job for the caller's tenant now (`manage_tenant`), as the hourly one would.
    pub async fn run_retention(&self, access: &crate::identity::TenantAccess) -> Result<crate::jobs::JobView, Error> {
        access.require(Permission::ManageTenant)?;
        let new = NewJob {
            kind: JobKind::Retention,
            subject_id: access.tenant_id().to_owned(),
            subject_version: 0,
            payload: serde_json::json!({}),
            priority: 0,
            idempotency_key: None,
            max_attempts: None,
        };
        let record = self.inner.jobs.record_for(access.tenant_id(), PLATFORM_OWNER, Delegation::platform().as_stored(), new);
        let (job, created) = self.inner.db.insert_job(&record).await?;
        self.inner.jobs.wake(JobKind::Retention, usize::from(created));
        Ok(job.into())
    }

    /// Queue retention jobs every `every` until `stop`.
    pub fn spawn_retention_queue(&self, every: Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(error) = this.queue_retention().await {
                    tracing::warn!(%error, "could not queue retention jobs");
                }
            }
        });
    }
}

/// The first day of the month before `today`'s.
fn previous_month_start(today: chrono::NaiveDate) -> chrono::NaiveDate {
    use chrono::Datelike;
    let (year, month) = if today.month() == 1 { (today.year() - 1, 12) } else { (today.year(), today.month() - 1) };
    chrono::NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(today)
}

#[cfg(test)]
mod tests {
    use super::previous_month_start;

    #[test]
    fn the_previous_month_starts_on_its_first_day() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        assert_eq!(previous_month_start(day(2026, 12, 7)), day(2026, 11, 1));
        assert_eq!(previous_month_start(day(2027, 1, 31)), day(2026, 12, 1));
    }
}
