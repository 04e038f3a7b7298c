//! The batch job: answer every line of a batch's input that has no stored
//! answer yet, `batches.concurrency` at a time, with the credential of the
//! batch's owner as it stands now; then write the output and error files
//! and end the batch.
//!
//! A line waits out a rate limit (batches are not latency-sensitive); any
//! other refusal — a budget spent mid-batch (`insufficient_quota`), a bad
//! request, an upstream error — is that line's answer, in the error file.
//! A line's answer is stored with the usage records of its calls in one
//! transaction, and only then are the budget counters settled; a line cut
//! off by a crash left no answer and no record, and runs again.
//!
//! Must not: shape answers (the [`LineAnswerer`] does).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_db::Db;
use agentry_db::batches::{BatchEnd, BatchRecord, BatchResult, FileRecord};
use agentry_db::jobs::JobRecord;
use agentry_types::{BatchStatus, EventType, JobStatus, Permission};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;

use super::files::PartWriter;
use super::lines::{LineSplitter, RawLine, check_line, parse_line};
use super::{BatchErrors, Batches, Error, LineAnswer, LineAnswerer};
use crate::CallContext;
use crate::events::Audience;
use crate::gateway::{Settlement, Unsettled};
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{JobContext, JobFailure, JobHandler};
use crate::usage::Subject;

/// Results read per query when the files are written (each at most [`MAX_ANSWER_BYTES`]).
const RESULT_PAGE: i64 = 8;

/// The largest answer a line stores; a larger one is that line's error
/// (`response_too_large`), so neither a line nor the files' writer holds more.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// How often a running batch checks that its owner still holds what it needs.
const RECHECK_EVERY: Duration = Duration::from_secs(30);

pub(super) struct BatchRunner {
    batches: Batches,
    answerer: Arc<dyn LineAnswerer>,
    /// On SQLite, answers are stored one at a time: SQLite has one writer,
    /// and lines that queue for it here wait their turn, where lines left
    /// to its busy handler starve each other (measured: 250 ms a line at 8
    /// lines in flight, and "database is locked" past 5 s).
    one_writer: Option<tokio::sync::Mutex<()>>,
}

/// Why a batch stopped answering lines.
enum Stop {
    Done,
    Cancelled,
    Expired,
}

fn retry(error: Error) -> JobFailure {
    JobFailure::Retry(error.to_string())
}

impl BatchRunner {
    pub(super) fn new(batches: Batches, answerer: Arc<dyn LineAnswerer>) -> Self {
        let one_writer = (batches.inner.db.backend() == agentry_db::Backend::Sqlite).then(|| tokio::sync::Mutex::new(()));
        Self { batches, answerer, one_writer }
    }

    fn db(&self) -> &Db {
        &self.batches.inner.db
    }

    /// Answer the lines not answered yet, until all are, or the batch is
    /// cancelled or expires. The owner's access is checked again every
    /// [`RECHECK_EVERY`]: lines started after it changed use what they hold then.
    async fn answer_lines(&self, job: &JobRecord, context: &JobContext, batch: &BatchRecord, file: FileRecord) -> Result<Stop, JobFailure> {
        let answered: HashSet<i64> = self.db().answered_batch_lines(&batch.id).await.map_err(|e| retry(e.into()))?.into_iter().collect();
        let mut done = answered.len() as i64;
        let mut access = Arc::new(context.access.clone());
        let mut checked = Instant::now();
        let mut input = InputLines::new(self.db().clone(), file.id);
        let mut in_flight = FuturesUnordered::new();
        let mut exhausted = false;
        let mut reported = Instant::now();
        loop {
            if checked.elapsed() >= RECHECK_EVERY {
                checked = Instant::now();
                let now = self.batches.inner.jobs.redeem(job).await?;
                require_models(&now)?;
                access = Arc::new(now);
            }
            let stop = if context.cancel.is_cancelled() {
                Some(Stop::Cancelled)
            } else if now_ms() >= batch.expires_at_ms {
                Some(Stop::Expired)
            } else {
                None
            };
            while stop.is_none() && !exhausted && in_flight.len() < self.batches.inner.batches.concurrency {
                match input.next().await.map_err(retry)? {
                    None => exhausted = true,
                    Some(line) if answered.contains(&line.index) => {}
                    Some(line) => in_flight.push(self.answer_line(access.clone(), context, batch, line)),
                }
            }
            let Some(answered) = in_flight.next().await else {
                if exhausted && input.requests() != file.lines {
                    // Only a file whose parts changed under the batch gets here.
                    return Err(JobFailure::Permanent(format!("its input file has {} of its {} request lines", input.requests(), file.lines)));
                }
                return Ok(stop.unwrap_or(Stop::Done));
            };
            if answered.map_err(retry)? {
                done += 1;
            }
            if reported.elapsed() >= Duration::from_secs(1) {
                reported = Instant::now();
                let batches = &self.batches.inner;
                batches.jobs.report_progress(&batches.events, job, done, Some(batch.total)).await;
            }
        }
    }

    /// Answer one line and store its answer; false when it was not answered
    /// (the batch was cancelled while the line waited out a rate limit).
    async fn answer_line(&self, access: Arc<TenantAccess>, context: &JobContext, batch: &BatchRecord, line: RawLine) -> Result<bool, Error> {
        let request_id = format!("batch_req_{}", uuid::Uuid::now_v7().simple());
        let request = match parse_line(&line.bytes) {
            Ok(request) => request,
            // Checked at upload: only a file changed since could get here.
            Err(message) => {
                let output =
                    json!({ "id": request_id, "custom_id": format!("line-{}", line.number), "response": null, "error": { "code": "invalid_request", "message": message } });
                return self
                    .store(batch, BatchResult { line: line.index, custom_id: format!("line-{}", line.number), ok: false, output: output.to_string() }, Collected::new(self))
                    .await;
            }
        };
        let collected = Collected::new(self);
        let ctx = CallContext {
            request_id: request_id.clone(),
            endpoint: request.endpoint.as_str(),
            subject: Some(Subject::of(&access)),
            agent: None,
            settlement: Settlement::Collected(collected.slot.clone()),
        };
        let (status, body) = loop {
            match self.answerer.answer(&access, &ctx, request.endpoint, request.body.clone()).await {
                LineAnswer::Answered { status, body } => break (status, body),
                LineAnswer::RateLimited(wait) => {
                    tokio::select! {
                        () = context.cancel.cancelled() => return Ok(false),
                        () = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
                    }
                }
            }
        };
        let answer = json!({ "id": request_id, "custom_id": request.custom_id, "response": { "status_code": status, "request_id": request_id, "body": body }, "error": null });
        let mut result = BatchResult { line: line.index, custom_id: request.custom_id, ok: (200..300).contains(&status), output: answer.to_string() };
        if result.output.len() > MAX_ANSWER_BYTES {
            let message = format!("the answer is larger than {} MiB; split the request", MAX_ANSWER_BYTES / (1024 * 1024));
            let error = json!({ "id": request_id, "custom_id": result.custom_id, "response": null, "error": { "code": "response_too_large", "message": message } });
            (result.ok, result.output) = (false, error.to_string());
        }
        self.store(batch, result, collected).await
    }

    /// Store a line's answer with its calls' records, then settle their
    /// counters; calls whose records were not stored are not billed.
    async fn store(&self, batch: &BatchRecord, result: BatchResult, collected: Collected) -> Result<bool, Error> {
        let unsettled = collected.take();
        let records: Vec<_> = unsettled.iter().map(|u| u.record.clone()).collect();
        let stored = {
            let _turn = match &self.one_writer {
                Some(lock) => Some(lock.lock().await),
                None => None,
            };
            self.db().store_batch_result(&batch.id, &result, &records).await
        };
        if matches!(stored, Ok(true)) {
            for Unsettled { ticket, record } in unsettled {
                self.batches.inner.accounting.settle_stored(ticket, &record);
            }
        } else {
            settle_unstored(&self.batches, unsettled);
        }
        // Not stored: another worker stored this line first (this one's lease had run out), or the batch ended.
        stored?;
        Ok(true)
    }

    /// Write the output and error files and end the batch with `status`.
    async fn finalize(&self, batch: &BatchRecord, status: BatchStatus, errors: Option<BatchErrors>) -> Result<(), Error> {
        if status == BatchStatus::Completed {
            self.db().move_batch(&batch.id, &[BatchStatus::Validating, BatchStatus::InProgress], BatchStatus::Finalizing, now_ms()).await?;
        }
        let unrun = match status {
            BatchStatus::Expired => Some(("batch_expired", "This line was not run: the batch expired first.")),
            BatchStatus::Cancelled => Some(("batch_cancelled", "This line was not run: the batch was cancelled.")),
            BatchStatus::Failed => Some(("batch_failed", "This line was not run: the batch failed.")),
            _ => None,
        };
        let output = self.write_results(batch, true, None).await?;
        let error = self.write_results(batch, false, unrun).await?;
        let errors = errors.map(|e| e.to_json());
        let end = BatchEnd { output_file_id: output.as_deref(), error_file_id: error.as_deref(), errors: errors.as_deref() };
        if !self.db().end_batch(&batch.id, status, &end, now_ms()).await? {
            // Someone else ended it first: these files are not its files.
            for id in output.iter().chain(error.iter()) {
                self.db().delete_file(&batch.tenant_id, id).await?;
            }
            return Ok(());
        }
        let event_type = match status {
            BatchStatus::Completed => EventType::BatchCompleted,
            BatchStatus::Cancelled => EventType::BatchCancelled,
            _ => EventType::BatchFailed,
        };
        let data = serde_json::json!({ "batch_id": batch.id, "status": status.as_str(), "output_file_id": output, "error_file_id": error });
        let audience = Audience::owner(Some(batch.owner.clone()), &[Permission::UseModels]);
        self.batches.inner.events.publish(&batch.tenant_id, event_type, audience, data).await;
        Ok(())
    }

    /// Write the answered (`ok`) or failed lines to a new file, with, for
    /// the error file of a batch that stopped early, a line for each line
    /// never run; `None` when there is nothing to write.
    async fn write_results(&self, batch: &BatchRecord, ok: bool, unrun: Option<(&str, &str)>) -> Result<Option<String>, Error> {
        let db = self.db();
        let now = now_ms();
        let kind = if ok { "output" } else { "error" };
        let file = FileRecord {
            id: format!("file-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: batch.tenant_id.clone(),
            owner: batch.owner.clone(),
            purpose: "batch_output".into(),
            filename: format!("{}_{kind}.jsonl", batch.id),
            status: "uploading".into(),
            bytes: 0,
            lines: 0,
            endpoint: None,
            created_at_ms: now,
            expires_at_ms: self.batches.inner.files.expires_at(now),
        };
        db.insert_file(&file).await?;
        let mut writer = PartWriter::new(db.clone(), file.id.clone());
        let mut lines = 0;
        let mut after = -1;
        loop {
            let page = db.batch_results(&batch.id, ok, after, RESULT_PAGE).await?;
            for result in &page {
                writer.write(result.output.as_bytes()).await?;
                writer.write(b"\n").await?;
                after = result.line;
            }
            lines += page.len() as i64;
            if (page.len() as i64) < RESULT_PAGE {
                break;
            }
        }
        if let Some((code, message)) = unrun {
            let answered: HashSet<i64> = db.answered_batch_lines(&batch.id).await?.into_iter().collect();
            let mut input = InputLines::new(db.clone(), batch.input_file_id.clone());
            while let Some(line) = input.next().await? {
                if answered.contains(&line.index) {
                    continue;
                }
                let custom_id = check_line(&line.bytes).map_or_else(|_| format!("line-{}", line.number), |(custom_id, _)| custom_id);
                let id = format!("batch_req_{}", uuid::Uuid::now_v7().simple());
                let entry = json!({ "id": id, "custom_id": custom_id, "response": null, "error": { "code": code, "message": message } });
                writer.write(entry.to_string().as_bytes()).await?;
                writer.write(b"\n").await?;
                lines += 1;
            }
        }
        let bytes = writer.finish().await?;
        if lines == 0 {
            db.delete_file(&batch.tenant_id, &file.id).await?;
            return Ok(None);
        }
        db.finish_file(&file.id, bytes, lines, None).await?;
        Ok(Some(file.id))
    }
}

/// The calls of one line, collected for [`BatchRunner::store`]; calls
/// still here when it is dropped (the line was abandoned: cancelled, or its
/// attempt failed) give their reservations back unbilled.
struct Collected {
    slot: Arc<parking_lot::Mutex<Vec<Unsettled>>>,
    batches: Batches,
}

impl Collected {
    fn new(runner: &BatchRunner) -> Self {
        Self { slot: Arc::default(), batches: runner.batches.clone() }
    }

    fn take(&self) -> Vec<Unsettled> {
        std::mem::take(&mut *self.slot.lock())
    }
}

impl Drop for Collected {
    fn drop(&mut self) {
        settle_unstored(&self.batches, self.take());
    }
}

/// The batch's owner must still be allowed to call models.
fn require_models(access: &TenantAccess) -> Result<(), JobFailure> {
    if access.can(Permission::UseModels) {
        return Ok(());
    }
    Err(JobFailure::Permanent("the batch's owner no longer holds the use_models permission".into()))
}

/// Give back the reservations of calls whose records were not stored: they are not billed.
fn settle_unstored(batches: &Batches, unsettled: Vec<Unsettled>) {
    for Unsettled { ticket, mut record } in unsettled {
        (record.cost_nusd, record.output_tokens, record.input_tokens) = (0, 0, 0);
        batches.inner.accounting.settle_stored(ticket, &record);
    }
}

#[async_trait::async_trait]
impl JobHandler for BatchRunner {
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        let db = self.db();
        let batch = db.batch(&job.tenant_id, &job.subject_id).await.map_err(|e| retry(e.into()))?.ok_or_else(|| JobFailure::Permanent("the batch was deleted".into()))?;
        if batch.status.is_ended() {
            return Ok(());
        }
        if batch.status == BatchStatus::Cancelling {
            return Err(JobFailure::Cancelled);
        }
        let file = db
            .file(&batch.tenant_id, &batch.input_file_id)
            .await
            .map_err(|e| retry(e.into()))?
            .ok_or_else(|| JobFailure::Permanent(format!("its input file '{}' was deleted", batch.input_file_id)))?;
        require_models(&context.access)?;
        db.move_batch(&batch.id, &[BatchStatus::Validating], BatchStatus::InProgress, now_ms()).await.map_err(|e| retry(e.into()))?;
        match self.answer_lines(job, context, &batch, file).await? {
            Stop::Done => self.finalize(&batch, BatchStatus::Completed, None).await.map_err(retry),
            Stop::Expired => self.finalize(&batch, BatchStatus::Expired, None).await.map_err(retry),
            Stop::Cancelled => Err(JobFailure::Cancelled),
        }
    }

    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        let batch = match self.db().batch(&job.tenant_id, &job.subject_id).await {
            Ok(Some(batch)) if !batch.status.is_ended() => batch,
            Ok(_) => return,
            Err(error) => {
                tracing::error!(%error, batch = %job.subject_id, "cannot end a batch whose job ended");
                return;
            }
        };
        let (status, errors) = match status {
            JobStatus::Cancelled => (BatchStatus::Cancelled, None),
            _ => (BatchStatus::Failed, Some(BatchErrors::one("batch_failed", reason))),
        };
        if let Err(error) = self.finalize(&batch, status, errors).await {
            tracing::error!(%error, batch = %batch.id, "cannot write the files of a batch that ended");
        }
    }

    async fn requeued(&self, job: &JobRecord) {
        let reopen = async {
            let db = self.db();
            if let Some(batch) = db.batch(&job.tenant_id, &job.subject_id).await? {
                for id in batch.output_file_id.iter().chain(batch.error_file_id.iter()) {
                    db.delete_file(&batch.tenant_id, id).await?;
                }
                db.reopen_batch(&batch.tenant_id, &batch.id, now_ms(), super::COMPLETION_WINDOW_MS).await?;
            }
            Ok::<_, agentry_db::DbError>(())
        };
        if let Err(error) = reopen.await {
            tracing::error!(%error, batch = %job.subject_id, "cannot reopen a batch whose job was retried");
        }
    }
}

/// A stored input file's request lines, read part by part.
struct InputLines {
    db: Db,
    file_id: String,
    seq: i32,
    splitter: LineSplitter,
    ready: VecDeque<RawLine>,
    ended: bool,
}

impl InputLines {
    fn new(db: Db, file_id: String) -> Self {
        Self { db, file_id, seq: 0, splitter: LineSplitter::default(), ready: VecDeque::new(), ended: false }
    }

    /// Request lines read so far.
    fn requests(&self) -> i64 {
        self.splitter.requests()
    }

    async fn next(&mut self) -> Result<Option<RawLine>, Error> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Ok(Some(line));
            }
            if self.ended {
                return Ok(None);
            }
            match self.db.file_part(&self.file_id, self.seq).await? {
                Some(part) => {
                    self.seq += 1;
                    self.ready.extend(self.splitter.push(&part).map_err(Error::Internal)?);
                }
                None => {
                    self.ended = true;
                    self.ready.extend(self.splitter.finish());
                }
            }
        }
    }
}
