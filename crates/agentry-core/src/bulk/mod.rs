//! Native batches (`/api/v1/batches`): many background agent runs, or many
//! document uploads into one collection, submitted as one request and
//! followed as one object. The request is checked whole (every item's
//! shape, every agent, thread and the collection exist for the caller) and
//! stored with its items and a `bulk_submit` job in one transaction; the
//! job ([`submit`]) turns each item into its run (a job of its own, keyed
//! by the batch and item so a retried submission finds it) or its upload
//! (a document and its ingestion job), acting for the submitter with the
//! access they hold then. An item refused at that point (a document too
//! large, an agent no longer allowed) is `rejected` with the reason; the
//! others go on. Progress is counted from the items' jobs.
//!
//! Who sees a batch: its submitter while they hold what its type needs (an
//! agent permission, or `upload_documents`), and members with
//! `manage_tenant`; anyone else gets a 404.
//!
//! Must not: run an agent or ingest a document itself (their own jobs do).

mod submit;
mod views;

use std::collections::HashSet;
use std::sync::Arc;

use agentry_db::Db;
use agentry_db::bulk::{BulkItemRecord, BulkRecord};
use agentry_types::{JobKind, Permission};
use serde::{Deserialize, Serialize};

use crate::agents::Agents;
pub use crate::error::Error;
use crate::events::Events;
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{Jobs, NewJob, owner_of};
use crate::knowledge::{JsonUpload, Knowledge};
use crate::page::{Cursor, Page, PageRequest};
pub use views::{BulkItemView, BulkProgress, BulkStatus, BulkView};

/// Most items in one batch.
pub const MAX_ITEMS: usize = 10_000;
/// The longest `input` of an agent run item.
const MAX_INPUT_CHARS: usize = 32_000;
/// The longest `custom_id`.
const MAX_CUSTOM_ID_CHARS: usize = 64;
/// Batches submitted at once per process.
const SUBMIT_WORKERS: usize = 2;

/// What a batch is made of.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NewBulk {
    /// Background runs (`docs/agents.md`), each its own job.
    AgentRuns {
        items: Vec<RunItem>,
        #[serde(default)]
        metadata: BulkMetadata,
        /// A second batch with the same key (by the same submitter) returns the first.
        #[serde(default)]
        idempotency_key: Option<String>,
    },
    /// Uploads into one collection, each as `POST /api/v1/collections/{id}/documents` takes it in JSON.
    Documents {
        collection_id: String,
        items: Vec<DocumentItem>,
        #[serde(default)]
        metadata: BulkMetadata,
        #[serde(default)]
        idempotency_key: Option<String>,
    },
}

/// A batch's own labels: at most 16 keys, each value a string of at most 512 characters.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct BulkMetadata(pub serde_json::Map<String, serde_json::Value>);

/// One agent run of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunItem {
    /// Yours, to match results to inputs (unique in the batch).
    #[serde(default)]
    pub custom_id: Option<String>,
    pub agent: String,
    /// The user's message.
    pub input: String,
    /// A thread of yours the exchange joins.
    #[serde(default)]
    pub thread_id: Option<String>,
}

/// One upload of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentItem {
    #[serde(default)]
    pub custom_id: Option<String>,
    pub document: JsonUpload,
}

/// What the submit job reads of a batch's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AgentRuns,
    Documents,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::AgentRuns => "agent_runs",
            Self::Documents => "documents",
        }
    }

    fn stored(kind: &str) -> Self {
        if kind == "documents" { Self::Documents } else { Self::AgentRuns }
    }

    /// Holding one of these lets a submitter see their batch.
    fn permissions(self) -> &'static [Permission] {
        match self {
            Self::AgentRuns => agentry_types::access::AGENT_PERMISSIONS,
            Self::Documents => &[Permission::UploadDocuments],
        }
    }
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Bulk {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    jobs: Jobs,
    agents: Agents,
    knowledge: Knowledge,
    /// Where submission progress is published (`job.progress`).
    events: Events,
}

impl Bulk {
    /// The service; registers the `bulk_submit` handler with `jobs`.
    pub fn new(db: Db, jobs: Jobs, agents: Agents, knowledge: Knowledge, events: Events) -> Self {
        let bulk = Self { inner: Arc::new(Inner { db, jobs: jobs.clone(), agents, knowledge, events }) };
        // Workers of its own: large batches never hold up other kinds' jobs (agent runs among them).
        jobs.register_dedicated(JobKind::BulkSubmit, Arc::new(submit::Submitter(bulk.clone())), SUBMIT_WORKERS);
        bulk
    }

    /// Check and store a batch; its items are submitted in the background.
    pub async fn create(&self, access: &TenantAccess, input: NewBulk) -> Result<BulkView, Error> {
        let (NewBulk::AgentRuns { metadata, .. } | NewBulk::Documents { metadata, .. }) = &input;
        // The same bounds as OpenAI batches' metadata (16 string values).
        crate::batches::check_metadata(Some(&metadata.0))?;
        let (kind, collection_id, items, metadata, idempotency_key) = match input {
            NewBulk::AgentRuns { items, metadata, idempotency_key } => {
                self.check_runs(access, &items).await?;
                let items = items.into_iter().map(|item| (item.custom_id.clone(), serde_json::to_string(&item))).collect::<Vec<_>>();
                (Kind::AgentRuns, None, items, metadata, idempotency_key)
            }
            NewBulk::Documents { collection_id, items, metadata, idempotency_key } => {
                self.check_documents(access, &collection_id, &items).await?;
                let items = items.into_iter().map(|item| (item.custom_id.clone(), serde_json::to_string(&item.document))).collect::<Vec<_>>();
                (Kind::Documents, Some(collection_id), items, metadata, idempotency_key)
            }
        };
        let total = items.len();
        let items = items
            .into_iter()
            .enumerate()
            .map(|(position, (custom_id, input))| {
                let input = input.map_err(|e| Error::Internal(format!("item {position}: {e}")))?;
                Ok(BulkItemRecord { position: position as i64, custom_id, input: Some(input), subject_id: None, job_id: None, error: None })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let id = format!("bulk_{}", uuid::Uuid::now_v7().simple());
        let new =
            NewJob { kind: JobKind::BulkSubmit, subject_id: id.clone(), subject_version: 0, payload: serde_json::Value::Null, priority: 0, idempotency_key, max_attempts: None };
        if let Some(key) = &new.idempotency_key {
            crate::jobs::check_idempotency_key(key)?;
        }
        let job = self.inner.jobs.record_for(access.tenant_id(), &owner_of(access), access.delegation().as_stored(), new);
        let now = now_ms();
        let record = BulkRecord {
            id,
            tenant_id: access.tenant_id().to_owned(),
            owner: owner_of(access),
            kind: kind.as_str().to_owned(),
            collection_id,
            status: "submitting".into(),
            total: total as i64,
            job_id: job.id.clone(),
            metadata: serde_json::Value::Object(metadata.0).to_string(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        let (stored, created) = self.inner.db.insert_bulk(&record, &items, &job).await?;
        if created {
            self.inner.jobs.wake(JobKind::BulkSubmit, 1);
            metrics::counter!("bulk_items_total", "type" => kind.as_str()).increment(total as u64);
        }
        self.view(stored).await
    }

    /// Every item's shape, input and thread, and every agent it names, for the caller.
    async fn check_runs(&self, access: &TenantAccess, items: &[RunItem]) -> Result<(), Error> {
        check_count(items.len())?;
        check_custom_ids(items.iter().map(|item| item.custom_id.as_deref()))?;
        let mut agents = HashSet::new();
        let mut threads = HashSet::new();
        for (position, item) in items.iter().enumerate() {
            if item.input.trim().is_empty() || item.input.chars().count() > MAX_INPUT_CHARS {
                return Err(Error::invalid(format!("item {position}: 'input' must be 1 to {MAX_INPUT_CHARS} characters, not all blank"), "items"));
            }
            agents.insert(item.agent.as_str());
            threads.extend(item.thread_id.as_deref());
        }
        for agent in agents {
            let found = self.inner.agents.agent(access, agent).await.map_err(|e| match e {
                Error::NotFound(_) => Error::invalid(format!("unknown agent '{agent}'"), "items"),
                other => other,
            })?;
            if !found.usable {
                return Err(Error::Forbidden(format!("you may not run agent '{agent}'")));
            }
        }
        for thread in threads {
            self.inner.agents.thread(access, thread).await?;
        }
        Ok(())
    }

    /// The collection is the caller's to upload to, and every item is an upload.
    async fn check_documents(&self, access: &TenantAccess, collection_id: &str, items: &[DocumentItem]) -> Result<(), Error> {
        access.require(Permission::UploadDocuments)?;
        check_count(items.len())?;
        check_custom_ids(items.iter().map(|item| item.custom_id.as_deref()))?;
        self.inner.knowledge.collection(access, collection_id).await?;
        for (position, item) in items.iter().enumerate() {
            item.document.clone().into_upload().map_err(|e| match e {
                Error::Invalid { message, .. } => Error::invalid(format!("item {position}: {message}"), "items"),
                other => other,
            })?;
        }
        Ok(())
    }

    /// The batches the caller may see, newest first, a page at a time.
    pub async fn list(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<BulkView>, Error> {
        let owner = owner_of(access);
        let all = access.can(Permission::ManageTenant);
        let rows = self.inner.db.bulks(access.tenant_id(), (!all).then_some(owner.as_str()), page.after_key(), page.fetch()).await?;
        let rows: Vec<BulkRecord> = rows.into_iter().filter(|row| all || may_see(access, row)).collect();
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            views.push(self.view(row).await?);
        }
        Ok(page.page(views, |view| Cursor::new(view.created_at_ms, &view.id), |view| view))
    }

    /// One batch the caller may see, with its progress.
    pub async fn get(&self, access: &TenantAccess, id: &str) -> Result<BulkView, Error> {
        self.view(self.visible(access, id).await?).await
    }

    /// A batch's items in order, with what each became and where its work is, a page at a time.
    pub async fn items(&self, access: &TenantAccess, id: &str, page: &PageRequest) -> Result<Page<BulkItemView>, Error> {
        let batch = self.visible(access, id).await?;
        let after = page.after_key().map_or(-1, |(position, _)| position);
        let rows = self.inner.db.bulk_items(&batch.id, after, page.fetch()).await?;
        let kind = Kind::stored(&batch.kind);
        Ok(page.page(rows, |row| Cursor::new(row.position, "item"), |row| BulkItemView::of(kind, row)))
    }

    /// Stop submitting a batch's items and cancel the runs it queued that
    /// have not ended (ingestion already queued goes on).
    pub async fn cancel(&self, access: &TenantAccess, id: &str) -> Result<BulkView, Error> {
        let batch = self.visible(access, id).await?;
        if self.inner.db.set_bulk_status(access.tenant_id(), &batch.id, "cancelled", now_ms()).await? {
            self.cancel_jobs(&batch).await?;
        }
        self.get(access, id).await
    }

    /// The submit job first (in this process it stops before its next
    /// item), then the runs already queued that have not ended.
    pub(super) async fn cancel_jobs(&self, batch: &BulkRecord) -> Result<(), Error> {
        let db = &self.inner.db;
        self.cancel_job(&batch.tenant_id, &batch.job_id).await?;
        if Kind::stored(&batch.kind) != Kind::AgentRuns {
            return Ok(());
        }
        let mut after = -1;
        loop {
            let rows = db.bulk_items(&batch.id, after, 1000).await?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.position;
            for row in rows.into_iter().filter(|row| matches!(row.job_status.as_deref(), Some("queued" | "running"))) {
                if let Some(job_id) = &row.job_id {
                    self.cancel_job(&batch.tenant_id, job_id).await?;
                }
            }
        }
    }

    async fn cancel_job(&self, tenant_id: &str, id: &str) -> Result<(), Error> {
        let Some(job) = self.inner.db.job(tenant_id, id).await? else { return Ok(()) };
        match self.inner.jobs.cancel_job(&job).await {
            Ok(_) | Err(Error::NotFound(_) | Error::Conflict(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn visible(&self, access: &TenantAccess, id: &str) -> Result<BulkRecord, Error> {
        match self.inner.db.bulk(access.tenant_id(), id).await? {
            Some(row) if access.can(Permission::ManageTenant) || may_see(access, &row) => Ok(row),
            _ => Err(Error::NotFound(format!("batch '{id}'"))),
        }
    }

    async fn view(&self, row: BulkRecord) -> Result<BulkView, Error> {
        let progress = BulkProgress::of(&self.inner.db.bulk_progress(&row.id).await?);
        Ok(BulkView::of(row, progress))
    }
}

fn may_see(access: &TenantAccess, row: &BulkRecord) -> bool {
    row.owner == owner_of(access) && Kind::stored(&row.kind).permissions().iter().any(|p| access.can(*p))
}

fn check_count(count: usize) -> Result<(), Error> {
    if !(1..=MAX_ITEMS).contains(&count) {
        return Err(Error::invalid(format!("a batch has 1 to {MAX_ITEMS} items"), "items"));
    }
    Ok(())
}

fn check_custom_ids<'a>(ids: impl Iterator<Item = Option<&'a str>>) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for id in ids.flatten() {
        if id.is_empty() || id.chars().count() > MAX_CUSTOM_ID_CHARS || id.chars().any(char::is_control) {
            return Err(Error::invalid(format!("a 'custom_id' is 1 to {MAX_CUSTOM_ID_CHARS} characters without control characters"), "items"));
        }
        if !seen.insert(id) {
            return Err(Error::invalid(format!("'custom_id' {id:?} is used twice"), "items"));
        }
    }
    Ok(())
}
