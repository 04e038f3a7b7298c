//! The workers of the job queue. Each pool (the kinds without workers of
//! their own share one; each kind registered with its own workers has one)
//! runs as a dispatcher and up to `workers` attempts at once. The
//! dispatcher makes one round trip per round ([`agentry_db::Db::settle_and_claim`]):
//! it writes how the attempts that finished since the last round ended and
//! claims as many jobs as there are free workers, in one transaction — so
//! a busy pool pays one commit for many jobs. While the queue is deep (the
//! last claim got all it asked for) a round also claims a few jobs ahead
//! (the pool's worker count, 4 to 32), started as workers free up without
//! a round trip; outcomes then wait for the next round at most 50 ms. A
//! held job is started only if it was not cancelled meanwhile (in this
//! process: a cancel from another replica reaches it at its first
//! heartbeat, as for any running job), and one that waited more than a
//! second (behind long attempts) goes back to the queue unspent. Once a
//! second a round also takes over jobs whose worker died (their lease ran
//! out) and buries those that used their last attempt.
//!
//! An attempt redeems its job's delegation, runs the handler while holding
//! the lease (a heartbeat every third of `jobs.lease_secs`), and reports
//! its outcome — succeeded, retried after a backoff, failed, dead once
//! attempts are used up, or cancelled — for the next round to write (an
//! attempt that panics reports nothing, and frees its worker). A
//! heartbeat that finds the job no longer held (cancelled, or taken over
//! after the lease ran out) cancels the handler's token and reports
//! nothing: the job is someone else's now. What handlers do after a job
//! ended without success runs beside the dispatcher, never in its way:
//! jobs it just claimed start at once. An attempt stopped with the server
//! hands its job back (queued again at once) for the next process or
//! another replica to run; the dispatcher waits for every attempt to
//! report and writes what they reported before it stops. One more task
//! samples the queue's depth and age for `/metrics`.
//!
//! Must not: run ingestion kinds (the knowledge workers do).

use agentry_types::{JobKind, JobStatus};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use agentry_db::jobs::{ClaimRequest, JobEnding, JobRecord, Settle};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{JobContext, JobFailure, JobHandler, Jobs};
use crate::identity::now_ms;

/// How long an idle pool sleeps when nothing wakes it (jobs queued by other replicas, retries coming due).
const IDLE_POLL: Duration = Duration::from_millis(500);
/// How often a pool looks for jobs whose worker died.
const ORPHAN_CHECK_MS: i64 = 1000;
/// Rounds tried to write the last outcomes when stopping.
const LAST_ROUND_TRIES: usize = 5;
/// Jobs a pool claims ahead of its free workers while the queue is deep
/// (its worker count, within these bounds).
const PREFETCH_MIN: usize = 4;
const PREFETCH_MAX: usize = 32;
/// Longest an attempt's outcome waits unwritten while held jobs run.
const WRITE_WITHIN: Duration = Duration::from_millis(50);
/// Longest a job claimed ahead waits for a worker before it goes back to the queue.
const HOLD_MAX_MS: i64 = 1000;

/// Start the pools and the metrics sampler; they stop when `stop` is
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
    let mut tasks: Vec<_> = pools.into_iter().map(|(kinds, workers)| tokio::spawn(dispatch(jobs.clone(), kinds, workers, stop.clone()))).collect();
    tasks.push(tokio::spawn(sample_depths(jobs.clone(), stop)));
    tasks
}

/// What an attempt leaves for its pool to write.
enum Outcome {
    /// Ended for good.
    Ended { status: JobStatus, error: Option<String> },
    /// Back in the queue at `at_ms`.
    RetryAt { at_ms: i64, error: String },
    /// Nothing to write: handed back at shutdown, or no longer this worker's.
    Nothing,
}

struct Finished {
    job: JobRecord,
    outcome: Outcome,
}

/// What a handler is told once a round has written an outcome.
enum FollowUp {
    /// The job ended without success.
    Ended(JobRecord, JobStatus, String),
    /// The outcome could not be written: the job may have been cancelled while it ran.
    CheckCancelled(JobRecord),
}

/// An attempt's report to its pool; one that is dropped unsent (its attempt
/// panicked) reports nothing, so the pool frees the worker.
struct Report {
    pool: mpsc::UnboundedSender<Finished>,
    job: Option<JobRecord>,
}

impl Report {
    fn send(mut self, outcome: Outcome) {
        if let Some(job) = self.job.take() {
            // The pool is gone only when it gave up writing at shutdown: the job runs again after its lease.
            self.pool.send(Finished { job, outcome }).ok();
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(job) = self.job.take() {
            self.pool.send(Finished { job, outcome: Outcome::Nothing }).ok();
        }
    }
}

impl Finished {
    fn settle(&self) -> Option<Settle<'_>> {
        let ending = match &self.outcome {
            Outcome::Ended { status, error } => JobEnding::Ended { status: *status, error: error.as_deref() },
            Outcome::RetryAt { at_ms, error } => JobEnding::RetryAt { at_ms: *at_ms, error },
            Outcome::Nothing => return None,
        };
        Some(Settle { id: &self.job.id, claim: self.job.claims, ending })
    }
}

/// One pool: rounds of settle-and-claim, attempts on up to `workers` tasks.
async fn dispatch(jobs: Jobs, kinds: Vec<JobKind>, workers: usize, stop: CancellationToken) {
    let (report, mut reports) = mpsc::unbounded_channel::<Finished>();
    let mut running = 0usize;
    let mut finished: Vec<Finished> = Vec::new();
    // Claimed ahead while the queue is deep, started as workers free up without a round trip.
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut deep = false;
    let mut first_unwritten: Option<Instant> = None;
    let mut last_orphan_check = 0;
    let prefetch = workers.clamp(PREFETCH_MIN, PREFETCH_MAX);
    while !stop.is_cancelled() {
        // Listening before the round: a job queued during it wakes the wait below.
        let woken = jobs.inner.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        while let Ok(done) = reports.try_recv() {
            running -= 1;
            finished.push(done);
        }
        // Held past HOLD_MAX behind long attempts: back to the queue, for an idle worker anywhere.
        while held.front().is_some_and(|front| now_ms() - front.claimed_at_ms > HOLD_MAX_MS) {
            if let Some(stale) = held.pop_front() {
                jobs.hand_back(&stale.job).await;
            }
        }
        while running < workers {
            let Some(next) = held.pop_front() else { break };
            if jobs.still_held(&next).await {
                running += 1;
                start(&jobs, next, &report, &stop);
            }
        }
        if !finished.is_empty() {
            first_unwritten.get_or_insert_with(Instant::now);
        }
        let free = workers.saturating_sub(running);
        let need_jobs = free > 0 && held.is_empty();
        // Outcomes wait for the next claim while held jobs run, but never long.
        let need_write = first_unwritten.is_some_and(|at| held.is_empty() || at.elapsed() >= WRITE_WITHIN);
        let orphans = need_jobs && now_ms() - last_orphan_check >= ORPHAN_CHECK_MS;
        if !(need_jobs || need_write) {
            wait(&stop, &mut reports, &mut running, &mut finished, None, first_unwritten).await;
            continue;
        }
        if orphans {
            last_orphan_check = now_ms();
            jobs.bury_exhausted(&kinds, last_orphan_check).await;
        }
        let want = if need_jobs { free + if deep { prefetch } else { 0 } } else { 0 };
        let claimed = match jobs.round(&kinds, &finished, want, orphans).await {
            Ok(claimed) => {
                finished.clear();
                first_unwritten = None;
                claimed
            }
            Err(error) => {
                tracing::error!(%error, "cannot settle or claim jobs");
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
        };
        if need_jobs {
            deep = claimed.len() == want;
        }
        for job in claimed {
            let cancel = jobs.hold(&job);
            held.push_back(Held { job, cancel, claimed_at_ms: now_ms() });
        }
        while running < workers {
            let Some(next) = held.pop_front() else { break };
            running += 1;
            start(&jobs, next, &report, &stop);
        }
        // Wait for a finish, the time to write outcomes, a new job (with a worker free) or the poll.
        let wake = (running < workers && held.is_empty()).then_some(&mut woken);
        wait(&stop, &mut reports, &mut running, &mut finished, wake, first_unwritten).await;
    }
    // Stopping: held jobs and every attempt hand their jobs back at once; what attempts reported is written.
    for Held { job, .. } in held.drain(..) {
        jobs.hand_back(&job).await;
    }
    while running > 0 {
        let Some(done) = reports.recv().await else { break };
        running -= 1;
        finished.push(done);
    }
    for _ in 0..LAST_ROUND_TRIES {
        match jobs.round(&kinds, &finished, 0, false).await {
            Ok(_) => return,
            Err(error) => tracing::warn!(%error, "cannot write the last job outcomes; trying again"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::error!(jobs = finished.len(), "could not write the last job outcomes; those jobs run again when their lease runs out");
}

/// A claimed job not started yet, with the token that cancels it.
struct Held {
    job: JobRecord,
    cancel: CancellationToken,
    claimed_at_ms: i64,
}

/// Start an attempt at a held job on a free worker.
fn start(jobs: &Jobs, held: Held, report: &mpsc::UnboundedSender<Finished>, stop: &CancellationToken) {
    let (jobs, stop) = (jobs.clone(), stop.clone());
    let report = Report { pool: report.clone(), job: Some(held.job.clone()) };
    tokio::spawn(async move {
        let outcome = jobs.process(&held.job, &stop, held.cancel).await;
        report.send(outcome);
    });
}

/// Wait for an attempt to finish, `wake` (a job queued), the time to write
/// outcomes (`first_unwritten` + [`WRITE_WITHIN`]), or the idle poll.
async fn wait(
    stop: &CancellationToken,
    reports: &mut mpsc::UnboundedReceiver<Finished>,
    running: &mut usize,
    finished: &mut Vec<Finished>,
    wake: Option<&mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>>,
    first_unwritten: Option<Instant>,
) {
    let poll = first_unwritten.map_or(IDLE_POLL, |at| WRITE_WITHIN.saturating_sub(at.elapsed()));
    let woken = async {
        match wake {
            Some(woken) => woken.as_mut().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = stop.cancelled() => {}
        done = reports.recv() => if let Some(done) = done {
            *running -= 1;
            finished.push(done);
        },
        () = woken => {}
        () = tokio::time::sleep(poll) => {}
    }
}

impl Jobs {
    /// One round trip: write `finished`, claim up to `free` jobs. The
    /// handlers of jobs that ended without success are told beside the
    /// pool, so that the jobs just claimed start at once.
    async fn round(&self, kinds: &[JobKind], finished: &[Finished], free: usize, orphans: bool) -> Result<Vec<JobRecord>, agentry_db::DbError> {
        let settles: Vec<Settle<'_>> = finished.iter().filter_map(Finished::settle).collect();
        let claim = ClaimRequest { kinds, lease_ms: self.inner.settings.lease_ms(), limit: i64::try_from(free).unwrap_or(i64::MAX), orphans };
        let (written, claimed) = self.inner.db.settle_and_claim(&settles, Some(claim), now_ms()).await?;
        let mut follow_ups = Vec::new();
        let settled = finished.iter().filter(|f| f.settle().is_some());
        for (done, held) in settled.zip(written) {
            let job = &done.job;
            match (&done.outcome, held) {
                (Outcome::Ended { status, error }, true) => {
                    metrics::counter!("jobs_finished_total", "kind" => job.kind.as_str(), "status" => status.as_str()).increment(1);
                    if *status != JobStatus::Succeeded {
                        follow_ups.push(FollowUp::Ended(job.clone(), *status, error.clone().unwrap_or_default()));
                    }
                }
                (Outcome::RetryAt { .. }, true) | (Outcome::Nothing, _) => {}
                (_, false) => {
                    tracing::info!(job = %job.id, "the job changed hands before its outcome was recorded; keeping the newer state");
                    follow_ups.push(FollowUp::CheckCancelled(job.clone()));
                }
            }
        }
        if !follow_ups.is_empty() {
            let jobs = self.clone();
            tokio::spawn(async move {
                for follow_up in follow_ups {
                    match follow_up {
                        FollowUp::Ended(job, status, reason) => jobs.ended(&job, status, &reason).await,
                        FollowUp::CheckCancelled(job) => jobs.settle_cancelled(&job).await,
                    }
                }
            });
        }
        Ok(claimed)
    }

    /// A claimed job's cancel token, listed so that cancelling the job here stops it at once.
    fn hold(&self, job: &JobRecord) -> CancellationToken {
        let cancel = CancellationToken::new();
        self.inner.running.lock().insert(job.id.clone(), cancel.clone());
        cancel
    }

    /// Whether a held job is still this pool's to start: not cancelled
    /// meanwhile (the dispatcher hands back the ones held too long).
    async fn still_held(&self, held: &Held) -> bool {
        if held.cancel.is_cancelled() {
            self.inner.running.lock().remove(&held.job.id);
            self.settle_cancelled(&held.job).await;
            return false;
        }
        true
    }

    /// Give a claimed job back to the queue, its attempt unspent (held too
    /// long, or the server is stopping). One that was cancelled meanwhile
    /// has its subject settled instead.
    async fn hand_back(&self, job: &JobRecord) {
        self.inner.running.lock().remove(&job.id);
        match self.inner.db.hand_back_job(&job.id, job.claims, now_ms()).await {
            Ok(true) => {}
            Ok(false) => self.settle_cancelled(job).await,
            Err(error) => tracing::warn!(%error, job = %job.id, "could not hand back a job; it runs again when its lease runs out"),
        }
    }

    /// One attempt at `job`, holding its lease; what the pool writes after it.
    async fn process(&self, job: &JobRecord, stop: &CancellationToken, cancel: CancellationToken) -> Outcome {
        let Some(handler) = self.handler(job.kind) else {
            self.inner.running.lock().remove(&job.id);
            return Outcome::Nothing;
        };
        metrics::counter!("job_attempts_total", "kind" => job.kind.as_str()).increment(1);
        let started = std::time::Instant::now();
        let attempt = agentry_llm::trace_context::in_span(
            || tracing::info_span!("job", otel.name = %format!("job {}", job.kind.as_str()), agentry.job.kind = job.kind.as_str(), agentry.job.id = %job.id, agentry.job.attempt = job.attempts),
            self.attempt(handler.as_ref(), job, cancel.clone()),
        );
        tokio::pin!(attempt);
        let outcome = tokio::select! {
            outcome = &mut attempt => Some(outcome),
            () = self.hold_lease(job) => None,
            () = stop.cancelled() => {
                // The server is stopping: the attempt is abandoned, not
                // cancelled, and the job handed back at once (the next
                // process, or another replica, runs it again).
                self.hand_back(job).await;
                return Outcome::Nothing;
            }
        };
        let Some(outcome) = outcome else {
            // Cancelled or taken over: the handler is told to stop and given
            // the chance to leave its subject in order; the job's record is
            // not this worker's to write any more.
            cancel.cancel();
            attempt.await.ok();
            tracing::info!(job = %job.id, kind = %job.kind, "the job is no longer held by this worker (cancelled, or its lease was taken over)");
            self.settle_cancelled(job).await;
            self.inner.running.lock().remove(&job.id);
            return Outcome::Nothing;
        };
        metrics::histogram!("job_duration_seconds", "kind" => job.kind.as_str()).record(started.elapsed().as_secs_f64());
        // The job stays listed as running here until its subject is settled: a retry waits for that (`Jobs::retry`).
        let outcome = match outcome {
            Ok(()) => Outcome::Ended { status: JobStatus::Succeeded, error: None },
            Err(JobFailure::Cancelled) => {
                // Cancelled through the job (not only its subject): its record already says so; the subject
                // follows at once, before its owner can retry the job (a later follow-up would undo the retry).
                if let Ok(Some(now)) = self.inner.db.job(&job.tenant_id, &job.id).await
                    && now.status == JobStatus::Cancelled
                {
                    self.ended(&now, JobStatus::Cancelled, "cancelled while it ran").await;
                    self.inner.running.lock().remove(&job.id);
                    return Outcome::Nothing;
                }
                Outcome::Ended { status: JobStatus::Cancelled, error: Some("cancelled".to_owned()) }
            }
            Err(JobFailure::Permanent(reason)) => Outcome::Ended { status: JobStatus::Failed, error: Some(reason) },
            Err(JobFailure::Retry(reason)) if job.attempts >= job.max_attempts => {
                Outcome::Ended { status: JobStatus::Dead, error: Some(format!("gave up after {} attempts: {reason}", job.attempts)) }
            }
            Err(JobFailure::Retry(reason)) => {
                tracing::warn!(job = %job.id, kind = %job.kind, attempt = job.attempts, %reason, "job failed; will retry");
                Outcome::RetryAt { at_ms: now_ms() + handler.retry_delay_ms(job.attempts), error: reason }
            }
        };
        self.inner.running.lock().remove(&job.id);
        outcome
    }

    /// Redeem the delegation and run one attempt.
    async fn attempt(&self, handler: &dyn JobHandler, job: &JobRecord, cancel: CancellationToken) -> Result<(), JobFailure> {
        let access = self.redeem(job).await?;
        handler.run(job, &JobContext { access, cancel }).await
    }

    /// Tell the kind's handler that `job` ended without succeeding (never while it is being retried).
    pub(super) async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        if let Some(handler) = self.handler(job.kind) {
            let _settling = self.inner.settling.lock().await;
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

    /// Turn dead the jobs of `kinds` whose worker died on their last attempt
    /// (a claim never takes them); their handlers are told beside the pool.
    async fn bury_exhausted(&self, kinds: &[JobKind], now: i64) {
        match self.inner.db.bury_exhausted_jobs(kinds, now).await {
            Ok(buried) if !buried.is_empty() => {
                let jobs = self.clone();
                tokio::spawn(async move {
                    for job in buried {
                        metrics::counter!("jobs_finished_total", "kind" => job.kind.as_str(), "status" => "dead").increment(1);
                        jobs.ended(&job, JobStatus::Dead, job.error.as_deref().unwrap_or("attempts used up")).await;
                    }
                });
            }
            Ok(_) => {}
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
