//! The `bulk_submit` job: each item of a batch still to submit, in order,
//! becomes its run or upload with the access its submitter holds now. A
//! run is queued with the idempotency key `bulk:<batch>:<position>`, so an
//! attempt that died after queueing it finds it again; an upload made just
//! before such a death is made again (a second document). An item the
//! service refuses is `rejected` with the reason; a store that is
//! unavailable retries the job.
//!
//! Must not: act for anyone but the job's delegation.

use std::time::{Duration, Instant};

use agentry_db::jobs::JobRecord;
use agentry_types::{ChatMessage, JobKind, JobStatus, Role};

use super::{Bulk, Kind, RunItem};
use crate::error::Error;
use crate::gateway::CallContext;
use crate::identity::now_ms;
use crate::jobs::{JobContext, JobFailure, JobHandler};
use crate::knowledge::JsonUpload;
use crate::usage::Subject;

/// Items read from the store at a time.
const ITEMS_PER_READ: i64 = 100;
/// How often submission progress is reported (`job.progress`).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What an item became: its run or document and the job doing its work.
struct Submitted {
    subject_id: String,
    job_id: Option<String>,
}

impl Bulk {
    async fn submit(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        let retry = |e: agentry_db::DbError| JobFailure::Retry(e.to_string());
        let db = &self.inner.db;
        let Some(batch) = db.bulk(&job.tenant_id, &job.subject_id).await.map_err(retry)? else { return Ok(()) };
        let kind = Kind::stored(&batch.kind);
        let mut reported = Instant::now();
        loop {
            let items = db.unsubmitted_bulk_items(&batch.id, ITEMS_PER_READ).await.map_err(retry)?;
            if items.is_empty() {
                break;
            }
            for item in items {
                if context.cancel.is_cancelled() {
                    return Err(JobFailure::Cancelled);
                }
                // Cancelled (here or on another replica): submit nothing more, and cancel
                // again what was queued while the cancel looked for runs to stop.
                if db.bulk(&job.tenant_id, &batch.id).await.map_err(retry)?.is_none_or(|b| b.status == "cancelled") {
                    return self.cancel_jobs(&batch).await.map_err(JobFailure::of);
                }
                let input = item.input.as_deref().unwrap_or("null");
                let outcome = match kind {
                    Kind::AgentRuns => self.submit_run(context, &batch.id, item.position, input).await,
                    Kind::Documents => self.submit_upload(context, batch.collection_id.as_deref().unwrap_or_default(), input).await,
                };
                let (subject, job_id, error) = match outcome {
                    Ok(Submitted { subject_id, job_id }) => (Some(subject_id), job_id, None),
                    Err(error @ (Error::Db(_) | Error::Unavailable(_))) => return Err(JobFailure::of(error)),
                    Err(error) => (None, None, Some(error.to_string())),
                };
                db.settle_bulk_item(&batch.id, item.position, subject.as_deref(), job_id.as_deref(), error.as_deref()).await.map_err(retry)?;
                if reported.elapsed() >= PROGRESS_EVERY {
                    reported = Instant::now();
                    let inner = &self.inner;
                    inner.jobs.report_progress(&inner.events, job, item.position + 1, Some(batch.total)).await;
                }
            }
        }
        let inner = &self.inner;
        inner.jobs.report_progress(&inner.events, job, batch.total, Some(batch.total)).await;
        db.set_bulk_status(&job.tenant_id, &batch.id, "submitted", now_ms()).await.map_err(retry)?;
        Ok(())
    }

    async fn submit_run(&self, context: &JobContext, batch_id: &str, position: i64, input: &str) -> Result<Submitted, Error> {
        let item: RunItem = serde_json::from_str(input).map_err(|e| Error::Internal(format!("unreadable item: {e}")))?;
        let access = &context.access;
        let call = CallContext {
            request_id: format!("{batch_id}-{position}"),
            endpoint: "/api/v1/batches",
            subject: Some(Subject::of(access)),
            agent: None,
            settlement: Default::default(),
        };
        let run_input = crate::agents::RunInput { agent: Some(item.agent), messages: vec![ChatMessage::text(Role::User, item.input)] };
        let key = format!("bulk:{batch_id}:{position}");
        let run = self.inner.agents.queue_run(access, &call, item.thread_id.as_deref(), run_input, Some(key)).await?;
        let job = self.inner.db.job_of_subject(access.tenant_id(), JobKind::AgentRun, &run.id).await?;
        Ok(Submitted { subject_id: run.id, job_id: job.map(|j| j.id) })
    }

    async fn submit_upload(&self, context: &JobContext, collection_id: &str, input: &str) -> Result<Submitted, Error> {
        let document: JsonUpload = serde_json::from_str(input).map_err(|e| Error::Internal(format!("unreadable item: {e}")))?;
        let accepted = self.inner.knowledge.upload(&context.access, collection_id, document.into_upload()?).await?;
        Ok(Submitted { subject_id: accepted.document.id, job_id: accepted.job_id })
    }
}

/// The `bulk_submit` job handler.
pub(super) struct Submitter(pub(super) Bulk);

#[async_trait::async_trait]
impl JobHandler for Submitter {
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        self.0.submit(job, context).await
    }

    /// Items left unsubmitted stay `pending`; the batch shows why through its submit job.
    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        tracing::info!(batch = %job.subject_id, %status, %reason, "a batch's submission ended before every item was submitted");
    }

    async fn requeued(&self, _job: &JobRecord) {}
}
