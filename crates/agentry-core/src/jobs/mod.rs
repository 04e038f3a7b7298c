//! The durable job queue: work that happens while nobody waits. One table
//! holds every kind ([`JobKind`]): ingestion and summaries (run by the
//! knowledge workers, whose steps share transactions with the documents',
//! [`crate::knowledge::ingest`]) and the kinds registered here with a
//! [`JobHandler`] (background agent runs, …), run by this module's workers
//! ([`worker`]).
//!
//! A job carries who asked for it (its owner, and the delegation it acts
//! with — redeemed when it runs, so it can do no more than its owner holds
//! then), a priority, an idempotency key (a second create with the same key
//! returns the first job), attempts with exponential backoff and jitter, a
//! dead state with the last error once attempts are used up, progress, and
//! cancellation.
//!
//! Who sees a job: its owner, while holding the permission its kind needs
//! ([`kind_permission`]), and members with `manage_tenant` (all of the
//! tenant's). Anyone else gets a 404, as for a job that does not exist.
//!
//! Must not: know what a kind does (its handler does) or about HTTP.

mod worker;

use agentry_types::{EventType, JobKind, JobStatus, Permission};
use std::collections::HashMap;
use std::sync::Arc;

use agentry_db::Db;
use agentry_db::jobs::{Cancelled, JobFilter, JobRecord};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub use crate::error::Error;
use crate::events::{Audience, Events};
use crate::identity::{Identity, TenantAccess, now_ms};
use crate::page::{Cursor, Page, PageRequest};
pub use worker::spawn_workers;

/// Operator settings of the job queue (`[jobs]`). Ingestion and summaries
/// keep their own (`knowledge.workers`, `knowledge.max_attempts`,
/// `knowledge.lease_secs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSettings {
    /// Jobs run at once by this process (every kind but ingestion).
    pub workers: usize,
    /// How long a claimed job stays with its worker between heartbeats
    /// (sent every third of it); a job whose worker died runs again after it.
    pub lease_secs: u64,
    /// Attempts a job gets before it is dead.
    pub max_attempts: i32,
    /// How often the queue's depth and age are sampled for `/metrics`.
    pub metrics_interval_secs: u64,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self { workers: 4, lease_secs: 60, max_attempts: 5, metrics_interval_secs: 15 }
    }
}

impl JobsSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.workers) {
            return Err("jobs.workers must be 1-256".into());
        }
        if !(1..=86_400).contains(&self.lease_secs) {
            return Err("jobs.lease_secs must be 1-86400".into());
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err("jobs.max_attempts must be 1-100".into());
        }
        if !(1..=3600).contains(&self.metrics_interval_secs) {
            return Err("jobs.metrics_interval_secs must be 1-3600".into());
        }
        Ok(())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// The wait before attempt `attempts + 1` after a failed one: 1 s doubling
/// up to an hour, with full jitter over its upper half so that jobs that
/// failed together do not come back together.
pub fn backoff_ms(attempts: i32) -> i64 {
    let ceiling = (1000_i64 << attempts.clamp(0, 12)).min(3_600_000);
    rand::rng().random_range(ceiling / 2..=ceiling)
}

/// The permission a job's owner needs to see it: the one that created it.
/// A native batch's submitter holds one of these (its items' agent or upload permission).
const BULK_PERMISSIONS: &[Permission] =
    &[Permission::UseGeneralAgent, Permission::UseMathAgent, Permission::UseCodeAgent, Permission::UseRagAgent, Permission::UseVisionAgent, Permission::UploadDocuments];

pub fn kind_permission(kind: JobKind) -> &'static [Permission] {
    match kind {
        JobKind::Index | JobKind::Summary => &[Permission::UploadDocuments],
        JobKind::AgentRun => agentry_types::access::AGENT_PERMISSIONS,
        JobKind::Batch => &[Permission::UseModels],
        JobKind::WebhookDelivery | JobKind::Schedule => &[Permission::ManageIntegrations],
        JobKind::BulkSubmit => BULK_PERMISSIONS,
        JobKind::Retention => &[Permission::ManageTenant],
        JobKind::Erasure => &[Permission::ManageUsers],
    }
}

/// How one attempt went wrong.
#[derive(Debug)]
pub enum JobFailure {
    /// The job itself is at fault: it would fail again. Ends it as failed.
    Permanent(String),
    /// Something around it failed: try again after a backoff (dead when attempts run out).
    Retry(String),
    /// It was cancelled while it ran.
    Cancelled,
}

impl JobFailure {
    /// A service's error as an attempt's end: a busy or unavailable store
    /// (or a conflict with a concurrent change) is tried again; anything
    /// else means the job cannot be done as asked.
    pub fn of(error: Error) -> Self {
        match error {
            Error::Conflict(reason) | Error::Unavailable(reason) => Self::Retry(reason),
            Error::Db(e) => Self::Retry(e.to_string()),
            other => Self::Permanent(other.to_string()),
        }
    }
}

/// What a handler gets with a job it runs.
pub struct JobContext {
    /// The access of the job's delegation, as it stands now.
    pub access: TenantAccess,
    /// Cancelled when the job is cancelled (in this process at once, from
    /// another within a heartbeat) or its lease is lost.
    pub cancel: CancellationToken,
}

/// What runs one kind of job.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// One attempt at `job`.
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure>;

    /// The job ended without an attempt that succeeded: failed, dead, or
    /// cancelled before a worker held it (a running one is told through
    /// [`JobContext::cancel`]). The subject's own state follows here.
    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str);

    /// An ended job is about to be queued again by hand ([`Jobs::retry`]):
    /// its subject is made ready to run before a worker can claim it.
    async fn requeued(&self, job: &JobRecord);

    /// The wait before attempt `attempts + 1` after attempt `attempts` asked to be retried.
    fn retry_delay_ms(&self, attempts: i32) -> i64 {
        backoff_ms(attempts)
    }
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: JobKind,
    pub subject_id: String,
    pub subject_version: i32,
    /// The kind's own input.
    pub payload: serde_json::Value,
    pub priority: i32,
    pub idempotency_key: Option<String>,
    /// Attempts before it is dead (`jobs.max_attempts` when `None`).
    pub max_attempts: Option<i32>,
}

/// How far a job is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub done: i64,
    /// Unknown until the job knows it.
    pub total: Option<i64>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: JobKind,
    pub status: JobStatus,
    /// The object it works on: a document (`index`, `summary`), a run (`agent_run`), a batch (`batch`).
    pub subject_id: String,
    /// The subject's version, for kinds whose subject has versions.
    pub subject_version: Option<i32>,
    /// Who asked for it (`user:<id>` or `master`).
    pub owner: Option<String>,
    pub priority: i32,
    pub idempotency_key: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub progress: Progress,
    /// The last attempt's error.
    pub error: Option<String>,
    /// When it may run next (queued jobs).
    pub run_after_ms: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

impl From<JobRecord> for JobView {
    fn from(r: JobRecord) -> Self {
        Self {
            subject_version: (r.subject_version != 0).then_some(r.subject_version),
            progress: Progress { done: r.progress_done, total: r.progress_total },
            id: r.id,
            kind: r.kind,
            status: r.status,
            subject_id: r.subject_id,
            owner: r.owner,
            priority: r.priority,
            idempotency_key: r.idempotency_key,
            attempts: r.attempts,
            max_attempts: r.max_attempts,
            error: r.error,
            run_after_ms: r.run_after_ms,
            created_at_ms: r.created_at_ms,
            updated_at_ms: r.updated_at_ms,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

/// What a job listing shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobQuery {
    pub kind: Option<JobKind>,
    pub status: Option<JobStatus>,
}

/// The owner recorded on what `access` creates: `user:<id>`, or `master`.
pub fn owner_of(access: &TenantAccess) -> String {
    access.principal().user_id().map_or_else(|| "master".to_owned(), |id| format!("user:{id}"))
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    identity: Identity,
    settings: JobsSettings,
    handlers: RwLock<HashMap<JobKind, Arc<dyn JobHandler>>>,
    /// Kinds run by workers of their own, and how many.
    dedicated: RwLock<HashMap<JobKind, usize>>,
    /// Wakes an idle worker when a job is queued in this process.
    wake: Notify,
    /// Cancellation of the jobs this process's workers hold, by id.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Held while a handler is told a job ended, and while a job is retried.
    settling: tokio::sync::Mutex<()>,
}

impl Jobs {
    pub fn new(db: Db, identity: Identity, settings: JobsSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                identity,
                settings,
                handlers: RwLock::new(HashMap::new()),
                dedicated: RwLock::new(HashMap::new()),
                wake: Notify::new(),
                running: Mutex::new(HashMap::new()),
                settling: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn settings(&self) -> &JobsSettings {
        &self.inner.settings
    }

    /// Run jobs of `kind` with `handler` (before [`spawn_workers`]).
    pub fn register(&self, kind: JobKind, handler: Arc<dyn JobHandler>) {
        self.inner.handlers.write().insert(kind, handler);
    }

    /// Run jobs of `kind` with `handler` on `workers` workers of their own (before [`spawn_workers`]).
    pub fn register_dedicated(&self, kind: JobKind, handler: Arc<dyn JobHandler>, workers: usize) {
        self.register(kind, handler);
        self.inner.dedicated.write().insert(kind, workers);
    }

    /// The access of `job`'s delegation as it stands now: checked when an
    /// attempt starts, and again by handlers of long jobs while they run.
    pub async fn redeem(&self, job: &JobRecord) -> Result<TenantAccess, JobFailure> {
        let delegation = job.delegation.as_deref().ok_or_else(|| JobFailure::Permanent("the job has no delegation to act with".into()))?;
        self.inner.identity.redeem(&job.tenant_id, delegation).await.map_err(|e| match e {
            Error::Forbidden(reason) | Error::Internal(reason) => JobFailure::Permanent(reason),
            other => JobFailure::Retry(other.to_string()),
        })
    }

    fn handler(&self, kind: JobKind) -> Option<Arc<dyn JobHandler>> {
        self.inner.handlers.read().get(&kind).cloned()
    }

    /// Queue a job for `access` (its owner and delegation). With an
    /// idempotency key the tenant already used for this kind, the existing
    /// job is returned instead (`false`: not new).
    pub async fn enqueue(&self, access: &TenantAccess, new: NewJob) -> Result<(JobRecord, bool), Error> {
        if let Some(key) = &new.idempotency_key {
            check_idempotency_key(key)?;
        }
        if self.handler(new.kind).is_none() {
            return Err(Error::Internal(format!("no worker runs '{}' jobs", new.kind)));
        }
        let record = self.record_for(access.tenant_id(), &owner_of(access), access.delegation().as_stored(), new);
        let (job, created) = self.inner.db.insert_job(&record).await?;
        if created {
            metrics::counter!("jobs_created_total", "kind" => job.kind.as_str()).increment(1);
            self.inner.wake.notify_waiters();
        }
        Ok((job, created))
    }

    /// A queued job acting for `owner` with `delegation` (as stored), for a
    /// service that inserts it in a transaction of its own; [`Jobs::wake`]
    /// after that commits.
    pub fn record_for(&self, tenant_id: &str, owner: &str, delegation: &str, new: NewJob) -> JobRecord {
        let now = now_ms();
        JobRecord {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant_id.to_owned(),
            kind: new.kind,
            subject_id: new.subject_id,
            subject_version: new.subject_version,
            owner: Some(owner.to_owned()),
            delegation: Some(delegation.to_owned()),
            payload: new.payload.to_string(),
            priority: new.priority,
            idempotency_key: new.idempotency_key,
            status: JobStatus::Queued,
            attempts: 0,
            claims: 0,
            max_attempts: new.max_attempts.unwrap_or(self.inner.settings.max_attempts),
            run_after_ms: now,
            locked_until_ms: None,
            progress_done: 0,
            progress_total: None,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
            finished_at_ms: None,
        }
    }

    /// Record how far a running job is (fenced by its claim) and publish
    /// `job.progress` to its owner's stream. Callers report at most about
    /// once a second per job.
    pub async fn report_progress(&self, events: &Events, job: &JobRecord, done: i64, total: Option<i64>) {
        match self.inner.db.set_job_progress(&job.id, job.claims, done, total, now_ms()).await {
            Ok(true) => {
                let data = serde_json::json!({ "job_id": job.id, "kind": job.kind, "subject_id": job.subject_id, "done": done, "total": total });
                events.publish(&job.tenant_id, EventType::JobProgress, Audience::owner(job.owner.clone(), kind_permission(job.kind)), data).await;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, job = %job.id, "could not record a job's progress"),
        }
    }

    /// Tell this process's idle workers that `count` jobs were queued by a service's own transaction.
    pub fn wake(&self, kind: JobKind, count: usize) {
        if count > 0 {
            metrics::counter!("jobs_created_total", "kind" => kind.as_str()).increment(count as u64);
            self.inner.wake.notify_waiters();
        }
    }

    /// The jobs the caller may see, newest first, a page at a time.
    pub async fn list(&self, access: &TenantAccess, query: JobQuery, page: &PageRequest) -> Result<Page<JobView>, Error> {
        let owner = owner_of(access);
        let all = access.can(Permission::ManageTenant);
        let kinds: Vec<JobKind> = match query.kind {
            Some(kind) if !all => {
                require_kind(access, kind)?;
                vec![kind]
            }
            Some(kind) => vec![kind],
            // Own jobs of kinds whose permission the caller no longer holds stay hidden.
            None => JobKind::ALL.iter().copied().filter(|kind| all || holds_kind(access, *kind)).collect(),
        };
        let filter = JobFilter { owner: (!all).then_some(owner.as_str()), kinds: &kinds, status: query.status };
        let rows = self.inner.db.jobs(access.tenant_id(), &filter, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.id), JobView::from))
    }

    /// One job the caller may see.
    pub async fn get(&self, access: &TenantAccess, id: &str) -> Result<JobView, Error> {
        Ok(self.visible_job(access, id).await?.into())
    }

    async fn visible_job(&self, access: &TenantAccess, id: &str) -> Result<JobRecord, Error> {
        match self.inner.db.job(access.tenant_id(), id).await? {
            Some(job) if access.can(Permission::ManageTenant) || visible(access, &job) => Ok(job),
            _ => Err(Error::NotFound(format!("job '{id}'"))),
        }
    }

    /// Cancel a job the caller may see; a job that already ended is left as it is.
    pub async fn cancel(&self, access: &TenantAccess, id: &str) -> Result<JobView, Error> {
        let job = self.visible_job(access, id).await?;
        Ok(self.cancel_job(&job).await?.into())
    }

    /// Cancel `job` (found by its owner's service): a queued one ends at
    /// once (its handler is told), a running one's worker stops — in this
    /// process now, in another at its next heartbeat. Returns it as it is after.
    pub async fn cancel_job(&self, job: &JobRecord) -> Result<JobRecord, Error> {
        if self.handler(job.kind).is_none() {
            return Err(Error::Conflict(format!("'{}' jobs cannot be cancelled: delete the document or version they work on instead", job.kind)));
        }
        match self.inner.db.cancel_job(&job.tenant_id, &job.id, now_ms()).await?.ok_or_else(|| Error::NotFound(format!("job '{}'", job.id)))? {
            Cancelled::WasQueued(after) => {
                self.ended(&after, JobStatus::Cancelled, "cancelled before it ran").await;
                metrics::counter!("jobs_finished_total", "kind" => after.kind.as_str(), "status" => "cancelled").increment(1);
                Ok(after)
            }
            Cancelled::WasRunning(after) => {
                let here = self.inner.running.lock().get(&after.id).cloned();
                match here {
                    Some(token) => token.cancel(),
                    // Its worker died (the lease ran out): nobody else will tell the subject.
                    None if job.locked_until_ms.is_some_and(|until| until < now_ms()) => self.ended(&after, JobStatus::Cancelled, "cancelled after its worker stopped").await,
                    // A worker in another process stops at its next heartbeat and settles the subject.
                    None => {}
                }
                Ok(after)
            }
            Cancelled::AlreadyEnded(after) => Ok(after),
        }
    }

    /// Queue an ended job (dead, failed or cancelled) again, with fresh
    /// attempts. A job that acts for someone runs again with the retrier's
    /// credential, so only its owner may retry it; an ingestion job only for
    /// the document's latest version (an older one would become current).
    pub async fn retry(&self, access: &TenantAccess, id: &str) -> Result<JobView, Error> {
        let job = self.visible_job(access, id).await?;
        let delegation = match job.kind {
            // A delivery acts for its webhook's creator, whoever sends it again; retention for the platform.
            JobKind::WebhookDelivery | JobKind::Retention => None,
            JobKind::Index | JobKind::Summary => {
                if job.kind == JobKind::Index && !self.inner.db.is_latest_version(&job.tenant_id, &job.subject_id, job.subject_version).await? {
                    return Err(Error::Conflict(format!("job '{id}' indexes an older version of its document; restore that version instead")));
                }
                None
            }
            JobKind::AgentRun | JobKind::Batch | JobKind::Schedule | JobKind::BulkSubmit | JobKind::Erasure => {
                if job.owner.as_deref() != Some(owner_of(access).as_str()) {
                    return Err(Error::Forbidden("only the job's owner can run it again (it acts for them)".into()));
                }
                Some(access.delegation())
            }
        };
        if !matches!(job.status, JobStatus::Dead | JobStatus::Failed | JobStatus::Cancelled) {
            return Err(Error::Conflict(format!("job '{id}' is {}: only dead, failed or cancelled jobs can be retried", job.status)));
        }
        // The subject is made ready first: once queued, a worker may claim the job at once. Handlers are
        // told of ended jobs under the same lock, so that a late "it ended" cannot undo this retry.
        let handler = self.handler(job.kind);
        let settling = self.inner.settling.lock().await;
        if let Some(handler) = &handler {
            handler.requeued(&job).await;
        }
        let requeued = self.inner.db.requeue_job(&job.tenant_id, &job.id, delegation.as_ref().map(|d| d.as_stored()), now_ms()).await?;
        drop(settling);
        if !requeued {
            return Err(Error::Conflict(format!("job '{id}' is {}: only dead, failed or cancelled jobs can be retried", job.status)));
        }
        let requeued = self.inner.db.job(&job.tenant_id, &job.id).await?.ok_or_else(|| Error::NotFound(format!("job '{id}'")))?;
        if handler.is_some() {
            self.inner.wake.notify_waiters();
        }
        Ok(requeued.into())
    }

    /// The newest job of `kind` about `subject_id`, for the subject's own service.
    pub async fn job_of_subject(&self, tenant_id: &str, kind: JobKind, subject_id: &str) -> Result<Option<JobRecord>, Error> {
        Ok(self.inner.db.job_of_subject(tenant_id, kind, subject_id).await?)
    }
}

/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;

pub(crate) fn check_idempotency_key(key: &str) -> Result<(), Error> {
    if key.trim().is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS {
        return Err(Error::invalid(format!("'idempotency_key' must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters, not all blank"), "idempotency_key"));
    }
    Ok(())
}

/// Whether the caller owns `job` and holds what its kind needs.
fn visible(access: &TenantAccess, job: &JobRecord) -> bool {
    job.owner.as_deref() == Some(owner_of(access).as_str()) && holds_kind(access, job.kind)
}

fn holds_kind(access: &TenantAccess, kind: JobKind) -> bool {
    kind_permission(kind).iter().any(|p| access.can(*p))
}

fn require_kind(access: &TenantAccess, kind: JobKind) -> Result<(), Error> {
    if holds_kind(access, kind) {
        return Ok(());
    }
    Err(Error::Forbidden(format!("listing '{kind}' jobs needs one of: {}", kind_permission(kind).iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", "))))
}
