//! Background runs (`background: true`) on the durable job queue. Queuing
//! checks and routes the run as a started one would, records it `pending`
//! and queues an `agent_run` job; any replica's job worker then runs it
//! with the access its owner holds at that time (a member who lost the
//! agent's permission, or a revoked key, fails the run).
//!
//! A run whose worker died (a crash, `kill -9`, a lost host) is run again
//! from its start once the job's lease runs out: the durable step of a run
//! is its accepted input — its thread gets the exchange only when a run
//! succeeds, so a re-run neither loses nor repeats a turn. Model calls the
//! interrupted attempt made were real and stay metered; the re-run's are
//! metered too.
//!
//! Must not: run anything before the job is claimed, or outlive its job's
//! cancellation.

use agentry_types::{JobKind, JobStatus, RunStatus};
use std::sync::Arc;

use agentry_db::agents::{RunFinish, RunRow};
use agentry_db::jobs::JobRecord;
use agentry_types::{ChatMessage, Role};
use serde::{Deserialize, Serialize};

use super::{Agents, Error, RunInput, RunView, conversation_owner, new_run_row};
use crate::gateway::CallContext;
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{JobContext, JobFailure, JobHandler, NewJob, owner_of};
use crate::usage::Subject;

/// What an `agent_run` job carries besides its run's row.
#[derive(Debug, Serialize, Deserialize)]
struct QueuedRun {
    /// The agent the run was routed to.
    agent: String,
    /// The caller's system text (the run's row keeps the other messages).
    system: String,
    /// The request that queued it, for the usage records.
    request_id: String,
}

impl Agents {
    /// Queue a run as a job; its record (`pending`). With an idempotency key
    /// the caller already used, the run queued with it is returned instead.
    pub async fn queue_run(&self, access: &TenantAccess, call: &CallContext, thread_id: Option<&str>, input: RunInput, idempotency_key: Option<String>) -> Result<RunView, Error> {
        let planned = self.plan(access, call, input).await?;
        if let Some(thread) = thread_id {
            self.owned_thread(access, thread).await?;
        }
        let owner = conversation_owner(access)?;
        let id = uuid::Uuid::now_v7().to_string();
        let queued = QueuedRun { agent: planned.spec.name.clone(), system: planned.system_text.clone(), request_id: call.request_id.clone() };
        let payload = serde_json::to_value(&queued).map_err(|e| Error::Internal(e.to_string()))?;
        let now = now_ms();
        let row = RunRow { status: RunStatus::Pending, started_at_ms: None, ..new_run_row(&id, access, owner, thread_id, &planned.spec, &planned.route, &planned.messages, now) };
        // The run is recorded before its job exists, so a worker never claims a job whose run it cannot find.
        self.db.insert_run(&row).await?;
        let new = NewJob { kind: JobKind::AgentRun, subject_id: id.clone(), subject_version: 0, payload, priority: 0, idempotency_key, max_attempts: None };
        match self.jobs.enqueue(access, new).await {
            Ok((_, true)) => self.run(access, &id).await,
            Ok((job, false)) => {
                self.db.delete_run(&id).await?;
                self.run(access, &job.subject_id).await
            }
            Err(error) => {
                self.abandon_queued_run(access.tenant_id(), Some(owner_of(access)), &id, RunStatus::Failed, &format!("the run could not be queued: {error}")).await;
                Err(error)
            }
        }
    }

    /// One attempt at a queued run: plan it again with the access its
    /// owner holds now, and execute it to its end.
    async fn run_queued(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        let retry = |e: agentry_db::DbError| JobFailure::Retry(e.to_string());
        // A run deleted since (with its thread) has nothing left to do.
        let Some(row) = self.db.run(&job.tenant_id, &job.subject_id).await.map_err(retry)? else { return Ok(()) };
        match row.status {
            RunStatus::Pending | RunStatus::Running => {}
            RunStatus::Cancelled => return Err(JobFailure::Cancelled),
            _ => return Ok(()),
        }
        let queued: QueuedRun = serde_json::from_str(&job.payload).map_err(|e| JobFailure::Permanent(format!("unreadable job payload: {e}")))?;
        let mut messages: Vec<ChatMessage> = serde_json::from_str(&row.input).map_err(|e| JobFailure::Permanent(format!("unreadable run input: {e}")))?;
        if !queued.system.trim().is_empty() {
            messages.insert(0, ChatMessage::text(Role::System, queued.system));
        }
        let access = &context.access;
        let endpoint = if row.thread_id.is_some() { "/api/v1/threads/{id}/runs" } else { "/api/v1/runs" };
        let call = CallContext { request_id: queued.request_id, endpoint, subject: Some(Subject::of(access)), agent: None, settlement: Default::default() };
        let planned = self.plan(access, &call, RunInput { agent: Some(queued.agent), messages }).await.map_err(JobFailure::of)?;
        let (run, _) = self.prepare(access, &call, row.thread_id.as_deref(), planned, row.id.clone(), Some(&row)).await.map_err(JobFailure::of)?;
        let stop = run.live.cancel_token().clone();
        tokio::select! {
            () = self.execute(run) => {}
            () = async {
                context.cancel.cancelled().await;
                stop.cancel();
                std::future::pending::<()>().await;
            } => {}
        }
        match self.db.run(&job.tenant_id, &job.subject_id).await.map_err(retry)?.map(|r| r.status) {
            Some(RunStatus::Cancelled) => Err(JobFailure::Cancelled),
            _ => Ok(()),
        }
    }

    /// A queued run that will not run (its job failed, died or was
    /// cancelled before a worker held it) ends with the job's reason.
    async fn abandon_queued(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        // Retried since (its owner saw the run end and queued the job again): the run is the new attempt's now.
        if let Ok(Some(now)) = self.db.job(&job.tenant_id, &job.id).await
            && matches!(now.status, JobStatus::Queued | JobStatus::Running)
        {
            return;
        }
        let (status, error) = match status {
            JobStatus::Cancelled => (RunStatus::Cancelled, "the run was cancelled".to_owned()),
            _ => (RunStatus::Failed, format!("the run could not be run: {reason}")),
        };
        self.abandon_queued_run(&job.tenant_id, job.owner.clone(), &job.subject_id, status, &error).await;
    }

    /// End queued run `id` that never ran with `status` and `error`.
    async fn abandon_queued_run(&self, tenant_id: &str, owner: Option<String>, id: &str, status: RunStatus, error: &str) {
        let finish = RunFinish::unrun(status, error, now_ms());
        match self.db.finish_run(id, &finish).await {
            Ok(true) => {}
            // Already ended (it ran, or another path ended it): that end was published.
            Ok(false) => return,
            Err(error) => {
                tracing::warn!(%error, run = %id, "could not record the end of a queued run");
                return;
            }
        }
        let data = serde_json::json!({ "run_id": id, "status": status.as_str(), "error": { "code": "not_run", "message": error } });
        self.published_run_end(tenant_id, owner, status, data);
    }
}

/// The `agent_run` job handler.
pub(super) struct QueuedRuns(pub(super) Agents);

#[async_trait::async_trait]
impl JobHandler for QueuedRuns {
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        self.0.run_queued(job, context).await
    }

    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        self.0.abandon_queued(job, status, reason).await;
    }

    async fn requeued(&self, job: &JobRecord) {
        if let Err(error) = self.0.db.requeue_run(&job.subject_id).await {
            tracing::warn!(%error, run = %job.subject_id, "could not mark a retried run pending");
        }
    }
}

/// Register the handler of queued runs with the job queue.
pub(super) fn register(agents: &Agents) {
    agents.jobs.register(JobKind::AgentRun, Arc::new(QueuedRuns(agents.clone())));
}
