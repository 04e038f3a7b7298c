//! Files and batches, OpenAI-compatible (`/v1/files`, `/v1/batches`): a
//! JSONL file of requests is uploaded (checked line by line as it streams
//! in), a batch over it is a job ([`JobKind::Batch`]) whose worker answers
//! each line like a direct call — metered, budgeted and rate limited for the
//! batch's owner — and writes the answers to an output file and the
//! failures to an error file, in OpenAI's line format.
//!
//! Exactly once per line: each answered line is stored together with the
//! usage records of the calls that answered it, in one transaction, and a
//! line with a stored answer is never run again, so a batch that restarts
//! after a crash answers (and bills) every line once.
//!
//! Who sees what: a file or batch's owner, and members with
//! `manage_tenant` (all of the tenant's); anyone else gets a 404.
//!
//! The wire shapes of `/v1/chat/completions` and `/v1/embeddings` belong
//! to the server, so a line is answered through [`LineAnswerer`], which
//! the server implements with the same code as those routes.
//!
//! Must not: know HTTP or the shapes of the answers it stores.

mod files;
pub mod lines;
mod run;
mod views;

use std::sync::Arc;
use std::time::Duration;

use agentry_db::Db;
use agentry_db::batches::{BatchRecord, FileRecord, OwnedPage};
use agentry_types::{BatchStatus, JobKind, Permission};
use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::CallContext;
pub use crate::error::Error;
use crate::events::Events;
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{Jobs, NewJob, owner_of};
use crate::usage::Accounting;
pub use files::PART_BYTES;
use files::{InputCheck, PartWriter};
pub use views::{BatchErrorItem, BatchErrors, BatchObject, FileObject, ListPage, RequestCounts};

/// A batch's completion window (`24h`, the only one).
const COMPLETION_WINDOW_MS: i64 = 24 * 3_600_000;

/// `[files]`: uploads for batches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesSettings {
    /// The largest upload, in bytes (independent of `max_body_bytes`).
    pub max_bytes: u64,
    /// Days a file is kept (uploads, and batch output and error files).
    pub expire_days: u32,
}

impl Default for FilesSettings {
    fn default() -> Self {
        Self { max_bytes: 200 * 1024 * 1024, expire_days: 30 }
    }
}

/// `[batches]`: how batches run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    /// Batches run at once per process, on workers of their own (a long
    /// batch never holds a worker that background runs need).
    pub workers: usize,
    /// Lines of one batch answered at once.
    pub concurrency: usize,
    /// The most request lines in one batch input file.
    pub max_lines: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { workers: 2, concurrency: 8, max_lines: 50_000 }
    }
}

impl FilesSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes < 1024 {
            return Err("files.max_bytes must be at least 1024".into());
        }
        if !(1..=3650).contains(&self.expire_days) {
            return Err("files.expire_days must be 1-3650".into());
        }
        Ok(())
    }

    fn expires_at(&self, now: i64) -> i64 {
        now + i64::from(self.expire_days) * 86_400_000
    }
}

impl BatchSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=64).contains(&self.workers) {
            return Err("batches.workers must be 1-64".into());
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err("batches.concurrency must be 1-256".into());
        }
        if !(1..=1_000_000).contains(&self.max_lines) {
            return Err("batches.max_lines must be 1-1000000".into());
        }
        Ok(())
    }
}

/// The endpoints a batch line may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum BatchEndpoint {
    #[serde(rename = "/v1/chat/completions")]
    ChatCompletions,
    #[serde(rename = "/v1/embeddings")]
    Embeddings,
}

impl BatchEndpoint {
    pub const LIST: &'static str = "\"/v1/chat/completions\", \"/v1/embeddings\"";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "/v1/chat/completions",
            Self::Embeddings => "/v1/embeddings",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "/v1/chat/completions" => Some(Self::ChatCompletions),
            "/v1/embeddings" => Some(Self::Embeddings),
            _ => None,
        }
    }
}

/// How one line was answered.
pub enum LineAnswer {
    /// An HTTP status and the JSON body the route would have answered.
    Answered { status: u16, body: serde_json::Value },
    /// Refused by a rate limit: try again after this long (batches wait).
    RateLimited(Duration),
}

/// Answers one request line the way its route answers a direct call. The
/// calls it makes must use `ctx` (its settlement collects their records).
#[async_trait::async_trait]
pub trait LineAnswerer: Send + Sync + 'static {
    async fn answer(&self, access: &TenantAccess, ctx: &CallContext, endpoint: BatchEndpoint, body: serde_json::Map<String, serde_json::Value>) -> LineAnswer;
}

/// `POST /v1/batches`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBatch {
    /// A file uploaded with purpose `batch`.
    #[schema(min_length = 1)]
    pub input_file_id: String,
    /// The endpoint every line calls.
    pub endpoint: BatchEndpoint,
    /// Only `24h`.
    #[schema(pattern = "^24h$")]
    pub completion_window: String,
    /// Up to 16 keys of up to 64 characters, values of up to 512.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A page request in OpenAI's form: up to `limit` (1–100, default 20) after the object `after`.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub limit: Option<i64>,
    pub after: Option<String>,
}

impl ListRequest {
    fn limit(&self) -> Result<i64, Error> {
        match self.limit {
            None => Ok(20),
            Some(limit) if (1..=100).contains(&limit) => Ok(limit),
            Some(_) => Err(Error::invalid("'limit' must be between 1 and 100", "limit")),
        }
    }
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Batches {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    jobs: Jobs,
    accounting: Accounting,
    /// Where the ends of batches are published.
    events: Events,
    files: FilesSettings,
    batches: BatchSettings,
}

/// An upload in progress: bytes are stored as they come; nothing is
/// visible until [`FileUpload::finish`].
pub struct FileUpload {
    record: FileRecord,
    writer: PartWriter,
    check: InputCheck,
    max_bytes: u64,
    db: Db,
}

impl FileUpload {
    /// Store the next bytes; past `files.max_bytes` or on a bad line, the upload is refused.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), Error> {
        if self.writer.bytes() as u64 + chunk.len() as u64 > self.max_bytes {
            return Err(Error::TooLarge(format!("the file is larger than files.max_bytes ({} bytes)", self.max_bytes)));
        }
        self.check.push(chunk)?;
        self.writer.write(chunk).await
    }

    /// Remove what was stored of an upload that failed.
    pub async fn abort(self) {
        remove_upload(&self.db, &self.record).await;
    }
}

async fn remove_upload(db: &Db, file: &FileRecord) {
    if let Err(error) = db.delete_file(&file.tenant_id, &file.id).await {
        tracing::warn!(%error, file = %file.id, "could not remove a failed upload; it is removed when it expires");
    }
}

impl Batches {
    pub fn new(db: Db, jobs: Jobs, accounting: Accounting, events: Events, files: FilesSettings, batches: BatchSettings) -> Self {
        Self { inner: Arc::new(Inner { db, jobs, accounting, events, files, batches }) }
    }

    pub fn files_settings(&self) -> &FilesSettings {
        &self.inner.files
    }

    /// Run batches with `answerer` (before the job workers start), and remove expired files from now on.
    pub fn start(&self, answerer: Arc<dyn LineAnswerer>, stop: tokio_util::sync::CancellationToken) {
        self.inner.jobs.register_dedicated(JobKind::Batch, Arc::new(run::BatchRunner::new(self.clone(), answerer)), self.inner.batches.workers);
        tokio::spawn(remove_expired_files(self.inner.db.clone(), stop));
    }

    /// Start an upload for `access` of a file named `filename`.
    pub async fn begin_upload(&self, access: &TenantAccess, filename: &str) -> Result<FileUpload, Error> {
        if filename.trim().is_empty() || filename.chars().count() > 255 || filename.chars().any(char::is_control) {
            return Err(Error::invalid("the file needs a name of 1 to 255 characters, without control characters", "file"));
        }
        let now = now_ms();
        let record = FileRecord {
            id: format!("file-{}", uuid::Uuid::now_v7().simple()),
            tenant_id: access.tenant_id().to_owned(),
            owner: owner_of(access),
            purpose: "batch".into(),
            filename: filename.to_owned(),
            status: "uploading".into(),
            bytes: 0,
            lines: 0,
            endpoint: None,
            created_at_ms: now,
            expires_at_ms: self.inner.files.expires_at(now),
        };
        self.inner.db.insert_file(&record).await?;
        let writer = PartWriter::new(self.inner.db.clone(), record.id.clone());
        Ok(FileUpload { record, writer, check: InputCheck::new(self.inner.batches.max_lines), max_bytes: self.inner.files.max_bytes, db: self.inner.db.clone() })
    }

    /// Finish an upload of `purpose` (only `batch`); on any error nothing of it is kept.
    pub async fn finish_upload(&self, upload: FileUpload, purpose: &str) -> Result<FileObject, Error> {
        if purpose != "batch" {
            upload.abort().await;
            return Err(Error::invalid(format!("'purpose' must be \"batch\" (the only purpose files have here), not '{purpose}'"), "purpose"));
        }
        let FileUpload { mut record, writer, check, db, .. } = upload;
        let stored = async {
            let (lines, endpoint) = check.finish()?;
            Ok::<_, Error>((writer.finish().await?, lines, endpoint))
        };
        let (bytes, lines, endpoint) = match stored.await {
            Ok(stored) => stored,
            Err(error) => {
                remove_upload(&db, &record).await;
                return Err(error);
            }
        };
        self.inner.db.finish_file(&record.id, bytes, lines, Some(endpoint.as_str())).await?;
        (record.status, record.bytes, record.lines, record.endpoint) = ("processed".into(), bytes, lines, Some(endpoint.as_str().to_owned()));
        Ok(FileObject::from(&record))
    }

    /// The files the caller may see, newest first.
    pub async fn files(&self, access: &TenantAccess, purpose: Option<&str>, list: &ListRequest) -> Result<ListPage<FileObject>, Error> {
        let limit = list.limit()?;
        let after = match &list.after {
            Some(id) => Some(self.visible_file(access, id).await?),
            None => None,
        };
        let owner = own_only(access);
        let page = OwnedPage { owner: owner.as_deref(), after: after.as_ref().map(|f| (f.created_at_ms, f.id.as_str())), limit: limit + 1 };
        let rows = self.inner.db.files(access.tenant_id(), purpose, page).await?;
        Ok(ListPage::new(rows.iter().map(FileObject::from).collect(), limit, |f| f.id.clone()))
    }

    /// A file the caller may see.
    pub async fn file(&self, access: &TenantAccess, id: &str) -> Result<FileObject, Error> {
        Ok(FileObject::from(&self.visible_file(access, id).await?))
    }

    /// A file's bytes, streamed from storage.
    pub async fn file_content(&self, access: &TenantAccess, id: &str) -> Result<(FileObject, impl Stream<Item = Result<Bytes, Error>> + Send + 'static), Error> {
        let file = self.visible_file(access, id).await?;
        Ok((FileObject::from(&file), files::read_parts(self.inner.db.clone(), file.id)))
    }

    /// Delete a file the caller may see.
    pub async fn delete_file(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        let file = self.visible_file(access, id).await?;
        if self.inner.db.file_in_use(access.tenant_id(), &file.id).await? {
            return Err(Error::Conflict(format!("file '{id}' is the input of a batch that has not ended; cancel the batch first")));
        }
        self.inner.db.delete_file(access.tenant_id(), &file.id).await?;
        Ok(())
    }

    async fn visible_file(&self, access: &TenantAccess, id: &str) -> Result<FileRecord, Error> {
        match self.inner.db.file(access.tenant_id(), id).await? {
            Some(file) if file.status == "processed" && sees(access, &file.owner) => Ok(file),
            _ => Err(Error::NotFound(format!("file '{id}'"))),
        }
    }

    /// Create a batch over an uploaded file and queue its job.
    pub async fn create(&self, access: &TenantAccess, new: NewBatch) -> Result<BatchObject, Error> {
        if new.completion_window != "24h" {
            return Err(Error::invalid("'completion_window' must be \"24h\"", "completion_window"));
        }
        check_metadata(new.metadata.as_ref())?;
        let file = match self.visible_file(access, &new.input_file_id).await {
            Ok(file) => file,
            Err(Error::NotFound(message)) => return Err(Error::invalid(format!("{message} does not exist"), "input_file_id")),
            Err(other) => return Err(other),
        };
        if file.purpose != "batch" {
            return Err(Error::invalid(format!("file '{}' is a batch's {}, not batch input", file.id, file.purpose), "input_file_id"));
        }
        if file.endpoint.as_deref() != Some(new.endpoint.as_str()) {
            let calls = file.endpoint.as_deref().unwrap_or("no endpoint");
            return Err(Error::invalid(format!("the lines of file '{}' call {calls}, not {}", file.id, new.endpoint.as_str()), "endpoint"));
        }
        let now = now_ms();
        let record = BatchRecord {
            id: format!("batch_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: access.tenant_id().to_owned(),
            owner: owner_of(access),
            endpoint: new.endpoint.as_str().to_owned(),
            input_file_id: file.id.clone(),
            completion_window: new.completion_window,
            status: BatchStatus::Validating,
            output_file_id: None,
            error_file_id: None,
            errors: None,
            metadata: new.metadata.map(|m| serde_json::Value::Object(m).to_string()),
            job_id: None,
            total: file.lines,
            completed: 0,
            failed: 0,
            created_at_ms: now,
            in_progress_at_ms: None,
            finalizing_at_ms: None,
            completed_at_ms: None,
            failed_at_ms: None,
            expired_at_ms: None,
            cancelling_at_ms: None,
            cancelled_at_ms: None,
            expires_at_ms: now + COMPLETION_WINDOW_MS,
        };
        self.inner.db.insert_batch(&record).await?;
        let job = NewJob {
            kind: JobKind::Batch,
            subject_id: record.id.clone(),
            subject_version: 0,
            payload: serde_json::json!({}),
            priority: 0,
            idempotency_key: None,
            max_attempts: None,
        };
        let (job, _) = match self.inner.jobs.enqueue(access, job).await {
            Ok(queued) => queued,
            Err(error) => {
                let errors = BatchErrors::one("batch_failed", &format!("could not queue the batch: {error}")).to_json();
                self.inner.db.end_batch(&record.id, BatchStatus::Failed, &agentry_db::batches::BatchEnd { errors: Some(&errors), ..Default::default() }, now_ms()).await?;
                return Err(error);
            }
        };
        self.inner.db.set_batch_job(&record.id, &job.id).await?;
        Ok(BatchObject::from(&BatchRecord { job_id: Some(job.id), ..record }))
    }

    /// The batches the caller may see, newest first.
    pub async fn list(&self, access: &TenantAccess, list: &ListRequest) -> Result<ListPage<BatchObject>, Error> {
        let limit = list.limit()?;
        let after = match &list.after {
            Some(id) => Some(self.visible_batch(access, id).await?),
            None => None,
        };
        let owner = own_only(access);
        let page = OwnedPage { owner: owner.as_deref(), after: after.as_ref().map(|b| (b.created_at_ms, b.id.as_str())), limit: limit + 1 };
        let rows = self.inner.db.batches(access.tenant_id(), page).await?;
        Ok(ListPage::new(rows.iter().map(BatchObject::from).collect(), limit, |b| b.id.clone()))
    }

    /// A batch the caller may see.
    pub async fn get(&self, access: &TenantAccess, id: &str) -> Result<BatchObject, Error> {
        Ok(BatchObject::from(&self.visible_batch(access, id).await?))
    }

    /// Cancel a batch: it stops starting lines, and ends `cancelled` with
    /// the lines answered so far in its files. A batch that ended is left as it is.
    pub async fn cancel(&self, access: &TenantAccess, id: &str) -> Result<BatchObject, Error> {
        let batch = self.visible_batch(access, id).await?;
        if batch.status.is_ended() {
            return Err(Error::Conflict(format!("batch '{id}' is {}; only a batch that has not ended can be cancelled", batch.status)));
        }
        self.inner.db.move_batch(&batch.id, &[BatchStatus::Validating, BatchStatus::InProgress], BatchStatus::Cancelling, now_ms()).await?;
        if let Some(job) = self.inner.jobs.job_of_subject(&batch.tenant_id, JobKind::Batch, &batch.id).await? {
            self.inner.jobs.cancel_job(&job).await?;
        }
        self.get(access, id).await
    }

    async fn visible_batch(&self, access: &TenantAccess, id: &str) -> Result<BatchRecord, Error> {
        match self.inner.db.batch(access.tenant_id(), id).await? {
            Some(batch) if sees(access, &batch.owner) => Ok(batch),
            _ => Err(Error::NotFound(format!("batch '{id}'"))),
        }
    }
}

/// Whether the caller sees an object owned by `owner`.
fn sees(access: &TenantAccess, owner: &str) -> bool {
    access.can(Permission::ManageTenant) || owner == owner_of(access)
}

/// The owner a listing is limited to: the caller, unless they see the whole tenant.
fn own_only(access: &TenantAccess) -> Option<String> {
    (!access.can(Permission::ManageTenant)).then(|| owner_of(access))
}

pub(crate) fn check_metadata(metadata: Option<&serde_json::Map<String, serde_json::Value>>) -> Result<(), Error> {
    let Some(metadata) = metadata else { return Ok(()) };
    let bad = |message: String| Err(Error::invalid(message, "metadata"));
    if metadata.len() > 16 {
        return bad("'metadata' takes at most 16 keys".into());
    }
    for (key, value) in metadata {
        if key.chars().count() > 64 {
            return bad(format!("metadata key '{key}' is longer than 64 characters"));
        }
        match value.as_str() {
            Some(text) if text.chars().count() <= 512 => {}
            _ => return bad(format!("metadata '{key}' must be a string of at most 512 characters")),
        }
    }
    Ok(())
}

/// Remove expired files every ten minutes.
async fn remove_expired_files(db: Db, stop: tokio_util::sync::CancellationToken) {
    loop {
        loop {
            // An upload that has not finished in an hour never will (its server stopped).
            match db.delete_expired_files(now_ms(), now_ms() - 3_600_000).await {
                Ok(100..) => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "could not remove expired files");
                    break;
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(600)) => {}
        }
    }
}
