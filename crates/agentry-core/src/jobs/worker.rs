//! The workers of the job queue: claim a job of a registered kind, redeem
//! its delegation, run its handler while holding the lease (a heartbeat
//! every third of `jobs.lease_secs`), and record the outcome — succeeded,
//! retried after a backoff, failed, dead once attempts are used up, or
//! cancelled. A heartbeat that finds the job no longer held (cancelled, or
//! taken over after the lease ran out) cancels the handler's token and
//! records nothing: the job is someone else's now. A worker stopped with
//! the server hands its job back (queued again at once) for the next
//! process or another replica to run. One more task samples
//! the queue's depth and age for `/metrics`.
//!
//! Must not: run ingestion kinds (the knowledge workers do).

use agentry_types::{JobKind, JobStatus};
use std::time::Duration;

use agentry_db::jobs::JobRecord;
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobFailure, JobHandler, Jobs};
use crate::identity::now_ms;

/// How long an idle worker sleeps when nothing wakes it (jobs queued by other replicas, retries coming due).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Start the workers and the metrics sampler; they stop when `stop` is
/// cancelled. `jobs.workers` workers run the kinds registered without
/// workers of their own; each kind registered with its own workers
/// ([`Jobs::register_dedicated`]) gets them, so that its long jobs cannot
/// take every worker.
pub fn spawn_workers(jobs: &Jobs, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let dedicated = jobs.inner.dedicated.read().clone();
    let shared: Vec<JobKind> = jobs.inner.handlers.read().keys().copied().filter(|kind| !dedicated.contains_key(kind)).collect();
    let mut pools: Vec<(Vec<JobKind>, usize)> = dedicated.into_iter().map(|(kind, workers)| (vec![kind], workers)).collect();
    if !shared.is_empty() {
        pools.push((shared, jobs.inner.settings.workers));
    }
    let mut tasks: Vec<_> =
        pools.into_iter().flat_map(|(kinds, workers)| (0..workers).map(move |_| kinds.clone())).map(|kinds| tokio::spawn(work(jobs.clone(), kinds, stop.clone()))).collect();
    tasks.push(tokio::spawn(sample_depths(jobs.clone(), stop)));
    tasks
}

async fn work(jobs: Jobs, kinds: Vec<JobKind>, stop: CancellationToken) {
    while !stop.is_cancelled() {
        jobs.bury_exhausted(&kinds).await;
        match jobs.inner.db.claim_job(&kinds, now_ms(), jobs.inner.settings.lease_ms()).await {
            Ok(claimed) => match claimed {
                Some(job) => jobs.process(job, &stop).await,
                None => {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = jobs.inner.wake.notified() => {}
                        () = tokio::time::sleep(IDLE_POLL) => {}
                    }
                }
            },
            Err(error) => {
                tracing::error!(%error, "cannot claim a job");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
}

impl Jobs {
    async fn process(&self, job: JobRecord, stop: &CancellationToken) {
        let Some(handler) = self.handler(job.kind) else { return };
        metrics::counter!("job_attempts_total", "kind" => job.kind.as_str()).increment(1);
        let started = std::time::Instant::now();
        let cancel = CancellationToken::new();
        self.inner.running.lock().insert(job.id.clone(), cancel.clone());
        let attempt = self.attempt(handler.as_ref(), &job, cancel.clone());
        tokio::pin!(attempt);
        let outcome = tokio::select! {
            outcome = &mut attempt => Some(outcome),
            () = self.hold_lease(&job) => None,
            () = stop.cancelled() => {
                // The server is stopping: the attempt is abandoned, not
                // cancelled, and the job handed back at once (the next
                // process, or another replica, runs it again).
                self.inner.running.lock().remove(&job.id);
                if let Err(error) = self.inner.db.hand_back_job(&job.id, job.claims, now_ms()).await {
                    tracing::warn!(%error, job = %job.id, "could not hand back a job at shutdown; it runs again when its lease runs out");
                }
                return;
            }
        };
        let Some(outcome) = outcome else {
            // Cancelled or taken over: the handler is told to stop and given
            // the chance to leave its subject in order; the job's record is
            // not this worker's to write any more.
            cancel.cancel();
            attempt.await.ok();
            self.inner.running.lock().remove(&job.id);
            tracing::info!(job = %job.id, kind = %job.kind, "the job is no longer held by this worker (cancelled, or its lease was taken over)");
            self.settle_cancelled(&job).await;
            return;
        };
        self.inner.running.lock().remove(&job.id);
        let now = now_ms();
        let db = &self.inner.db;
        let (status, error) = match &outcome {
            Ok(()) => (JobStatus::Succeeded, None),
            Err(JobFailure::Cancelled) => (JobStatus::Cancelled, Some("cancelled".to_owned())),
            Err(JobFailure::Permanent(reason)) => (JobStatus::Failed, Some(reason.clone())),
            Err(JobFailure::Retry(reason)) if job.attempts >= job.max_attempts => (JobStatus::Dead, Some(format!("gave up after {} attempts: {reason}", job.attempts))),
            Err(JobFailure::Retry(reason)) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %reason, "job failed; will retry");
                match db.retry_job_later(&job.id, job.claims, now + handler.retry_delay_ms(job.attempts), reason, now).await {
                    Ok(true) => {}
                    Ok(false) => self.settle_cancelled(&job).await,
                    Err(error) => tracing::error!(%error, job = %job.id, "cannot requeue a job; its lease will expire and it will run again"),
                }
                return;
            }
        };
        metrics::histogram!("job_duration_seconds", "kind" => job.kind.as_str()).record(started.elapsed().as_secs_f64());
        match db.end_job(&job.id, job.claims, status, error.as_deref(), now).await {
            Ok(true) => {
                metrics::counter!("jobs_finished_total", "kind" => job.kind.as_str(), "status" => status.as_str()).increment(1);
                if status != JobStatus::Succeeded {
                    self.ended(&job, status, error.as_deref().unwrap_or_default()).await;
                }
            }
            Ok(false) => {
                tracing::info!(job = %job.id, "the job changed hands before its outcome was recorded; keeping the newer state");
                self.settle_cancelled(&job).await;
            }
            Err(error) => tracing::error!(%error, job = %job.id, "cannot record a job's outcome; its lease will expire and it will run again"),
        }
    }

    /// Redeem the delegation and run one attempt.
    async fn attempt(&self, handler: &dyn JobHandler, job: &JobRecord, cancel: CancellationToken) -> Result<(), JobFailure> {
        let access = self.redeem(job).await?;
        handler.run(job, &JobContext { access, cancel }).await
    }

    /// Tell the kind's handler that `job` ended without succeeding.
    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        if let Some(handler) = self.handler(job.kind) {
            handler.ended(job, status, reason).await;
        }
    }

    /// A job this worker could not write an outcome for may have been
    /// cancelled while it ran: then its subject follows (the handler makes
    /// that idempotent).
    async fn settle_cancelled(&self, job: &JobRecord) {
        if let Ok(Some(now)) = self.inner.db.job(&job.tenant_id, &job.id).await
            && now.status == JobStatus::Cancelled
        {
            self.ended(&now, JobStatus::Cancelled, "cancelled while it ran").await;
        }
    }

    /// Turn dead the jobs whose worker died on their last attempt, at most
    /// once a second per process (a claim never takes them in between).
    async fn bury_exhausted(&self, kinds: &[JobKind]) {
        let now = now_ms();
        let last = self.inner.last_burial.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < 1000 || self.inner.last_burial.compare_exchange(last, now, std::sync::atomic::Ordering::Relaxed, std::sync::atomic::Ordering::Relaxed).is_err() {
            return;
        }
        match self.inner.db.bury_exhausted_jobs(kinds, now).await {
            Ok(buried) => {
                for job in buried {
                    metrics::counter!("jobs_finished_total", "kind" => job.kind.as_str(), "status" => "dead").increment(1);
                    self.ended(&job, JobStatus::Dead, job.error.as_deref().unwrap_or("attempts used up")).await;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot bury exhausted jobs"),
        }
    }

    /// Renew the lease every third of its length; returns when the job is
    /// no longer this claim's, or when renewals failed for a whole lease
    /// (another worker may hold it by then).
    async fn hold_lease(&self, job: &JobRecord) {
        let lease_ms = self.inner.settings.lease_ms();
        let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
        let mut held_until = now_ms() + lease_ms;
        loop {
            tokio::time::sleep(every).await;
            let now = now_ms();
            match self.inner.db.renew_job_lease(&job.id, job.claims, now, lease_ms).await {
                Ok(true) => held_until = now + lease_ms,
                Ok(false) => return,
                Err(error) if now >= held_until => {
                    tracing::warn!(%error, job = %job.id, "could not renew a job's lease for a whole lease; stopping it");
                    return;
                }
                Err(error) => tracing::warn!(%error, job = %job.id, "cannot renew a job's lease"),
            }
        }
    }
}

/// Sample queue depth (queued, running, dead) and the oldest queued job's age, per kind.
async fn sample_depths(jobs: Jobs, stop: CancellationToken) {
    let every = Duration::from_secs(jobs.inner.settings.metrics_interval_secs);
    loop {
        match jobs.inner.db.job_depths().await {
            Ok(depths) => {
                let now = now_ms();
                for kind in JobKind::ALL {
                    for status in [JobStatus::Queued, JobStatus::Running, JobStatus::Dead] {
                        let depth = depths.iter().find(|d| d.kind == kind.as_str() && d.status == status.as_str());
                        metrics::gauge!("job_queue_depth", "kind" => kind.as_str(), "status" => status.as_str()).set(depth.map_or(0.0, |d| d.count as f64));
                        if status == JobStatus::Queued {
                            let age = depth.map_or(0.0, |d| (now - d.oldest_created_at_ms).max(0) as f64 / 1000.0);
                            metrics::gauge!("jobs_oldest_queued_age_seconds", "kind" => kind.as_str()).set(age);
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot sample the job queue"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
