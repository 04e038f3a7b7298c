//! Firing schedules: the poll every replica runs (find due schedules, fire
//! each due time through the store's compare-and-set, which exactly one
//! replica wins), fires by hand, and the `schedule` job that carries a fire
//! out — runs its action with the access of whoever it acts for, records
//! the outcome in the schedule's history and publishes `schedule.fired`.
//!
//! Must not: carry out an action outside its job (a fire that is recorded
//! but whose job has not run yet is picked up by any replica's worker).

use std::time::Duration;

use agentry_db::jobs::JobRecord;
use agentry_db::schedules::{Advance, ScheduleRecord, ScheduleRunRecord};
use agentry_types::{ChatMessage, EventType, JobKind, JobStatus, Permission, Role};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::timing::{Misfire, Plan, Timing, plan};
use super::{ScheduleAction, Schedules, stored_action};
use crate::agents::RunInput;
use crate::error::Error;
use crate::events::{Audience, rfc3339};
use crate::gateway::CallContext;
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{JobContext, JobFailure, JobHandler, NewJob, owner_of};
use crate::knowledge::connectors::ConnectorRun;
use crate::usage::Subject;

/// Due schedules fired per poll (the rest wait for the next one).
const DUE_PER_POLL: i64 = 200;
/// Attempts a fire's job gets before it is dead.
const FIRE_ATTEMPTS: i32 = 3;
/// How often old history is pruned.
const PRUNE_EVERY_MS: i64 = 3_600_000;

/// What a `schedule` job carries besides its fire's id (its subject): the
/// action as it was when the fire was recorded, checked for whoever the
/// job acts for — a later change of the schedule is not carried out with
/// the access of whoever it acted for before.
#[derive(Debug, Serialize, Deserialize)]
struct FirePayload {
    schedule_id: String,
    action: ScheduleAction,
}

impl Schedules {
    /// Poll for due schedules every `schedules.poll_ms` until `stop`.
    pub fn spawn_poller(&self, stop: CancellationToken) {
        let schedules = self.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(schedules.inner.settings.poll_ms);
            let mut last_prune = 0;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(period) => {}
                }
                let now = now_ms();
                schedules.poll(now).await;
                if now - last_prune > PRUNE_EVERY_MS {
                    last_prune = now;
                    schedules.prune(now).await;
                }
            }
        });
    }

    async fn poll(&self, now: i64) {
        let due = match self.inner.db.due_schedules(now, DUE_PER_POLL).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "could not look for due schedules");
                return;
            }
        };
        for schedule in due {
            if let Err(error) = self.fire_due(&schedule, now).await {
                tracing::warn!(%error, schedule = %schedule.id, "could not fire a due schedule");
            }
        }
    }

    async fn prune(&self, now: i64) {
        let keep_ms = i64::try_from(self.inner.settings.history_days * 86_400_000).unwrap_or(i64::MAX);
        if let Err(error) = self.inner.db.prune_schedule_runs(now - keep_ms).await {
            tracing::warn!(%error, "could not prune schedule history");
        }
    }

    /// Fire `schedule`'s due time (or record it skipped), unless another replica did.
    async fn fire_due(&self, schedule: &ScheduleRecord, now: i64) -> Result<(), Error> {
        let Some(expected) = schedule.next_fire_ms else { return Ok(()) };
        let settings = &self.inner.settings;
        let plan = match Timing::parse(&schedule.cron, &schedule.timezone) {
            Ok(timing) => {
                let grace_ms = i64::try_from(settings.misfire_grace_secs * 1000).unwrap_or(i64::MAX);
                let min_ms = i64::try_from(settings.min_interval_secs * 1000).unwrap_or(i64::MAX);
                plan(&timing, expected, now, grace_ms, min_ms, Misfire::stored(&schedule.misfire))
            }
            // Checked when it was set: only a changed time zone database gets here.
            Err(reason) => {
                tracing::warn!(schedule = %schedule.id, %reason, "a schedule's timing no longer parses; it is stopped");
                Plan { due_ms: expected, trigger: "skip", next_ms: None }
            }
        };
        let mut run = new_run(&schedule.tenant_id, &schedule.id, plan.due_ms, now, plan.trigger);
        // A fire that has not ended (a long connector run) is not overlapped: this due time is skipped.
        let skipped = if plan.trigger == "skip" {
            Some(format!("missed while no server ran (misfire: {})", schedule.misfire))
        } else if self.inner.db.schedule_fire_pending(&schedule.tenant_id, &schedule.id).await? {
            Some("the previous fire had not ended".to_owned())
        } else {
            None
        };
        let job = if let Some(reason) = skipped {
            run.status = "skipped".into();
            run.error = Some(reason);
            run.finished_at_ms = Some(now);
            None
        } else {
            Some(self.fire_job(&schedule.tenant_id, &schedule.owner, &schedule.delegation, schedule, &run)?)
        };
        run.job_id = job.as_ref().map(|j| j.id.clone());
        if !self.inner.db.fire_schedule(&run, Advance::From { expected, next: plan.next_ms }, job.as_ref()).await? {
            return Ok(());
        }
        match job {
            Some(_) => self.inner.jobs.wake(JobKind::Schedule, 1),
            None => self.publish(schedule, &run).await,
        }
        Ok(())
    }

    /// Record a fire by hand, acting for `access`, and queue its job.
    pub(super) async fn fire_by_hand(&self, access: &TenantAccess, schedule: &ScheduleRecord) -> Result<ScheduleRunRecord, Error> {
        let now = now_ms();
        let mut run = new_run(&schedule.tenant_id, &schedule.id, now, now, "manual");
        if self.inner.db.schedule_fire_pending(&schedule.tenant_id, &schedule.id).await? {
            return Err(Error::Conflict(format!("schedule '{}' has a fire that has not ended yet; wait for it", schedule.id)));
        }
        let job = self.fire_job(&schedule.tenant_id, &owner_of(access), access.delegation().as_stored(), schedule, &run)?;
        run.job_id = Some(job.id.clone());
        if !self.inner.db.fire_schedule(&run, Advance::Stay, Some(&job)).await? {
            return Err(Error::NotFound(format!("schedule '{}'", schedule.id)));
        }
        self.inner.jobs.wake(JobKind::Schedule, 1);
        Ok(run)
    }

    fn fire_job(&self, tenant_id: &str, owner: &str, delegation: &str, schedule: &ScheduleRecord, run: &ScheduleRunRecord) -> Result<JobRecord, Error> {
        let payload = serde_json::to_value(FirePayload { schedule_id: schedule.id.clone(), action: stored_action(schedule)? }).map_err(|e| Error::Internal(e.to_string()))?;
        let new =
            NewJob { kind: JobKind::Schedule, subject_id: run.id.clone(), subject_version: 0, payload, priority: 0, idempotency_key: None, max_attempts: Some(FIRE_ATTEMPTS) };
        Ok(self.inner.jobs.record_for(tenant_id, owner, delegation, new))
    }

    /// One attempt at a fire: its action, with the access it acts with.
    async fn carry_out(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        let retry = |e: agentry_db::DbError| JobFailure::Retry(e.to_string());
        let Some(mut run) = self.inner.db.schedule_run(&job.tenant_id, &job.subject_id).await.map_err(retry)? else { return Ok(()) };
        if run.status != "queued" {
            return Ok(());
        }
        let Some(schedule) = self.inner.db.schedule(&job.tenant_id, &run.schedule_id).await.map_err(retry)? else {
            return Ok(());
        };
        let access = &context.access;
        if !access.can(Permission::ManageIntegrations) {
            return Err(JobFailure::Permanent("the schedule acts for someone who no longer holds manage_integrations".into()));
        }
        let fire: FirePayload = serde_json::from_str(&job.payload).map_err(|e| JobFailure::Permanent(format!("unreadable job payload: {e}")))?;
        match fire.action {
            ScheduleAction::RunAgent { agent, input, thread_id } => {
                let call = CallContext {
                    request_id: format!("schedule-{}", run.id),
                    endpoint: "/api/v1/schedules/{id}",
                    subject: Some(Subject::of(access)),
                    agent: None,
                    settlement: Default::default(),
                };
                let input = RunInput { agent: Some(agent), messages: vec![ChatMessage::text(Role::User, input)] };
                // Keyed by the fire: a retried attempt finds the run the first one queued.
                let queued = self.inner.agents.queue_run(access, &call, thread_id.as_deref(), input, Some(format!("schedule:{}", run.id))).await.map_err(JobFailure::of)?;
                run.run_id = Some(queued.id);
            }
            ScheduleAction::RefetchCollection { collection_id } => {
                let report = self.inner.knowledge.refetch_urls(access, &collection_id).await.map_err(JobFailure::of)?;
                run.result = Some(serde_json::to_string(&report).unwrap_or_default());
            }
            ScheduleAction::RunConnector { collection_id, connector } => {
                let fire = ConnectorRun { schedule_id: &schedule.id, run_id: &run.id, cancel: &context.cancel };
                let report = self.inner.knowledge.run_connector(access, &collection_id, &connector, fire).await.map_err(JobFailure::of)?;
                run.result = Some(serde_json::to_string(&report).unwrap_or_default());
            }
        }
        run.status = "succeeded".into();
        run.finished_at_ms = Some(now_ms());
        if self.inner.db.finish_schedule_run(&run).await.map_err(retry)? {
            self.publish(&schedule, &run).await;
        }
        Ok(())
    }

    /// A fire whose job ended without success: failed in the history, and published.
    async fn abandon(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        let Ok(Some(mut run)) = self.inner.db.schedule_run(&job.tenant_id, &job.subject_id).await else { return };
        run.status = if status == JobStatus::Cancelled { "skipped".into() } else { "failed".into() };
        run.error = Some(reason.to_owned());
        run.finished_at_ms = Some(now_ms());
        match self.inner.db.finish_schedule_run(&run).await {
            Ok(true) => {
                if let Ok(Some(schedule)) = self.inner.db.schedule(&job.tenant_id, &run.schedule_id).await {
                    self.publish(&schedule, &run).await;
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, run = %run.id, "could not record a schedule fire's end"),
        }
    }

    async fn publish(&self, schedule: &ScheduleRecord, run: &ScheduleRunRecord) {
        let action = stored_action(schedule).map(|a| a.kind()).unwrap_or("unknown");
        let result: Option<serde_json::Value> = run.result.as_deref().and_then(|r| serde_json::from_str(r).ok());
        let data = serde_json::json!({
            "schedule_id": schedule.id,
            "schedule_run_id": run.id,
            "due_at": rfc3339(run.due_ms),
            "trigger": run.trigger,
            "action": action,
            "status": run.status,
            "run_id": run.run_id,
            "result": result,
            "error": run.error,
        });
        let audience = Audience::owner(Some(schedule.owner.clone()), &[Permission::ManageIntegrations]);
        self.inner.events.publish(&schedule.tenant_id, EventType::ScheduleFired, audience, data).await;
    }
}

fn new_run(tenant_id: &str, schedule_id: &str, due_ms: i64, now: i64, trigger: &str) -> ScheduleRunRecord {
    ScheduleRunRecord {
        id: format!("sr_{}", uuid::Uuid::now_v7().simple()),
        tenant_id: tenant_id.to_owned(),
        schedule_id: schedule_id.to_owned(),
        due_ms,
        fired_at_ms: now,
        trigger: trigger.to_owned(),
        status: "queued".into(),
        job_id: None,
        run_id: None,
        result: None,
        error: None,
        finished_at_ms: None,
    }
}

/// The `schedule` job handler.
pub(super) struct Firer(pub(super) Schedules);

#[async_trait::async_trait]
impl JobHandler for Firer {
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        self.0.carry_out(job, context).await
    }

    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        self.0.abandon(job, status, reason).await;
    }

    async fn requeued(&self, job: &JobRecord) {
        if let Err(error) = self.0.inner.db.reopen_schedule_run(&job.tenant_id, &job.subject_id).await {
            tracing::warn!(%error, run = %job.subject_id, "could not reopen a schedule fire");
        }
    }
}
