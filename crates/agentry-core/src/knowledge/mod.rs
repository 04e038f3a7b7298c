//! The knowledge base: collections, documents and their versions, the
//! ingestion queue's producer side, and search. Every function takes the
//! caller's [`TenantAccess`] and checks the permission it needs; documents
//! restricted by an ACL are invisible (not found) to anyone outside it, but
//! for the answer to their own upload.
//!
//! Uploads return at once with a job id: the bytes (or the URL to fetch
//! them from, judged here only as far as needs no network) and the job are
//! stored in one transaction and [`ingest`] workers do the rest, fetching
//! URLs through the guarded [`Outbound`] client first ([`fetch`]). Search embeds the
//! query through the gateway (metered like any model call), runs keyword
//! and vector search with the tenant, collection, document, metadata and
//! ACL filters inside the index, fuses them, and keeps only chunks of each
//! document's current version. [`answers`] offers the semantic answer
//! [`cache`], which every document change of a collection invalidates.
//!
//! Must not: speak HTTP, or parse and chunk on the request path.

mod answers;
pub mod cache;
pub mod connectors;
mod fetch;
pub mod ingest;
mod json_upload;
mod lineage;
mod privacy;
pub mod quality;
mod rebuild;
mod refetch;
mod search;
mod summaries;
mod views;

use agentry_types::{DocumentStatus, JobKind, JobStatus};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use agentry_db::knowledge::{CollectionRow, DocumentRow, JobRow, NewVersion, VersionContent, VersionRow};
use agentry_db::{Db, DbError};
use agentry_search::chunk::{ChunkConfig, Chunker};
use agentry_search::index::Index;
use agentry_search::index::embedded::EmbeddedIndex;
use agentry_search::index::postgres::PostgresIndex;
use agentry_search::parse::{self, ParseError};
use agentry_types::Permission;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::coord::Coord;
use crate::events::Events;
use crate::gateway::{CallContext, Gateway};
use crate::identity::{TenantAccess, now_ms};
use crate::outbound::Outbound;
use crate::page::{Cursor, Page, PageRequest};
use crate::usage::Subject;
pub use answers::{AnswerLookup, AnswerQuestion, AnswerToStore};
pub use json_upload::JsonUpload;
pub use lineage::{CollectionQuality, QualityCount, RunQuality, VersionLineage};
pub use refetch::RefetchReport;
pub use search::{SearchHit, SearchMode, SearchRequest, SearchResponse};
pub use views::{Accepted, Collection, DocumentVersion, DocumentView, IngestJob, VersionFile};

pub use crate::error::Error;

/// Operator settings of the knowledge base.
#[derive(Debug, Clone)]
pub struct KnowledgeSettings {
    /// Public model name used to embed chunks and queries.
    pub embedding_model: String,
    /// `tokenizer.json` that chunk sizes are counted with (the embedding model's).
    pub tokenizer: Option<PathBuf>,
    /// Which index serves search.
    pub index_backend: IndexBackend,
    /// Where the embedded index lives (one folder per embedding model inside).
    pub index_dir: PathBuf,
    pub max_document_bytes: usize,
    pub workers: usize,
    /// Attempts before a document fails for good (parse errors fail at once).
    pub max_attempts: i32,
    pub lease_ms: i64,
    pub default_chunking: ChunkConfig,
    /// What one document may produce when parsed (text, decompressed
    /// data, sections, chunks, title length); over it, ingestion fails.
    pub parse_limits: parse::Limits,
    /// Where documents are parsed (the server: PDF and DOCX in a child process).
    pub parser: parse::Parser,
    pub answer_cache: cache::CacheSettings,
    /// Chat model that writes each indexed version's summary; none: no summaries.
    pub summary_model: Option<String>,
    /// Longest summary, in tokens.
    pub summary_max_tokens: u32,
}

/// Where chunks are indexed for search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexBackend {
    /// PostgreSQL (full text + pgvector) when the database is PostgreSQL, else embedded.
    Auto,
    /// tantivy + HNSW files in the data dir (one replica).
    Embedded,
    /// A search table in the PostgreSQL database (any number of replicas).
    Postgres,
}

/// Store pages one request scans for documents the caller may read.
const MAX_SCANNED_PAGES: usize = 20;

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Knowledge {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    gateway: Gateway,
    /// Where indexed and failed documents are published.
    events: Events,
    /// Fetches URL uploads.
    outbound: Outbound,
    settings: KnowledgeSettings,
    index: OnceCell<Index>,
    tokenizer: OnceCell<tokenizers::Tokenizer>,
    chunkers: parking_lot::Mutex<HashMap<ChunkConfig, Arc<Chunker>>>,
    wake: tokio::sync::Notify,
    cache: cache::SemanticCache,
    tickets: answers::Tickets,
}

/// Who may read a document: `*` (everyone in the tenant) unless restricted
/// to users (ids), roles (names) or groups (ids, checked to exist at upload).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessList {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The stored list did not parse: it grants nothing (fail closed).
    #[serde(default, skip_deserializing, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
}

impl AccessList {
    /// A list as stored with document `id`. One that does not parse grants
    /// nothing, never "everyone", and is logged.
    pub fn stored(json: &str, id: &str) -> Self {
        serde_json::from_str(json).unwrap_or_else(|error| {
            tracing::error!(document = %id, %error, "stored document ACL does not parse; nobody may read the document");
            Self { unreadable: true, ..Self::default() }
        })
    }

    /// Index principals; an empty list is public within the tenant, an unreadable one grants no one.
    pub fn principals(&self) -> Vec<String> {
        if self.unreadable {
            return Vec::new();
        }
        if self.users.is_empty() && self.roles.is_empty() && self.groups.is_empty() {
            return vec!["*".to_owned()];
        }
        let users = self.users.iter().map(|u| format!("user:{u}"));
        users.chain(self.roles.iter().map(|r| format!("role:{r}"))).chain(self.groups.iter().map(|g| format!("group:{g}"))).collect()
    }
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionInput {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub chunking: Option<ChunkConfig>,
    /// What its documents must pass to be searchable (none by default).
    #[serde(default)]
    pub quality: quality::QualityChecks,
}

/// A change to a collection: what is given replaces what was.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionChange {
    pub description: Option<String>,
    /// Applies to versions ingested from now on.
    pub quality: Option<quality::QualityChecks>,
}

/// A document upload, however it arrived (multipart or JSON).
#[derive(Debug, Clone)]
pub struct Upload {
    pub content: Content,
    pub title: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub acl: AccessList,
    /// Replace this document with a new version instead of creating one.
    pub document_id: Option<String>,
    /// Collected by a connector: its lineage (and the page's URL as the source).
    pub collected: Option<Collected>,
}

/// How a connector collected an upload's bytes.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The connector's settings (JSON), as its schedule holds them.
    pub connector: String,
    pub schedule_id: Option<String>,
    /// The schedule fire that ran the connector.
    pub run_id: Option<String>,
    /// The page's URL.
    pub source_url: String,
    /// The sitemap, feed or page the URL was found on.
    pub discovered_from: Option<String>,
    pub fetched_at_ms: i64,
}

/// Where an upload's bytes are.
#[derive(Debug, Clone)]
pub enum Content {
    /// Sent with the request.
    Bytes { bytes: Vec<u8>, file_name: Option<String>, content_type: Option<String> },
    /// An `http`/`https` URL the ingestion worker fetches (never the request).
    Url(String),
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Knowledge {
    /// `outbound` fetches URL uploads; its `max_bytes` should be
    /// `max_document_bytes` (larger bodies are refused after reading otherwise).
    pub fn new(db: Db, gateway: Gateway, coord: Coord, outbound: Outbound, events: Events, settings: KnowledgeSettings) -> Self {
        let cache = cache::SemanticCache::new(coord, settings.answer_cache.clone());
        let inner = Inner {
            db,
            gateway,
            events,
            outbound,
            settings,
            index: OnceCell::new(),
            tokenizer: OnceCell::new(),
            chunkers: parking_lot::Mutex::default(),
            wake: tokio::sync::Notify::new(),
            cache,
            tickets: answers::tickets(),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn settings(&self) -> &KnowledgeSettings {
        &self.inner.settings
    }

    /// A model call of the knowledge base, metered to `tenant` (and `user`) as the `knowledge` agent.
    fn call_context(tenant: &str, user: Option<&str>) -> CallContext {
        CallContext {
            request_id: uuid::Uuid::now_v7().to_string(),
            endpoint: "knowledge",
            subject: Some(Subject { tenant_id: tenant.to_owned(), user_id: user.map(str::to_owned), api_key_id: None }),
            agent: Some("knowledge".to_owned()),
            settlement: Default::default(),
        }
    }

    /// Embed texts with the configured model, metered to `tenant` as the `knowledge` agent.
    async fn embed(&self, tenant: &str, user: Option<&str>, texts: Vec<String>) -> Result<Vec<Vec<f32>>, Error> {
        let served = self
            .inner
            .gateway
            .embed(&Self::call_context(tenant, user), &self.inner.settings.embedding_model, texts)
            .await
            .map_err(|e| Error::Unavailable(format!("embedding model '{}': {e}", self.inner.settings.embedding_model)))?;
        Ok(served.routed.value.vectors)
    }

    /// Embed a reader's query or question (metered to them).
    async fn embed_query(&self, access: &TenantAccess, text: &str) -> Result<Vec<f32>, Error> {
        let vectors = self.embed(access.tenant_id(), access.principal().user_id(), vec![text.to_owned()]).await?;
        vectors.into_iter().next().ok_or_else(|| Error::Unavailable("the embedding model returned no vector".into()))
    }

    /// The reader's principals: everyone, their user, their role and their groups in the tenant.
    async fn reader_principals(&self, access: &TenantAccess) -> Result<Vec<String>, Error> {
        let mut principals = vec!["*".to_owned()];
        if let Some(user) = access.principal().user_id() {
            principals.push(format!("user:{user}"));
            let groups = self.inner.db.group_ids_of_user(access.tenant_id(), user).await?;
            principals.extend(groups.into_iter().map(|g| format!("group:{g}")));
        }
        principals.extend(access.role().as_ref().map(|role| format!("role:{role}")));
        Ok(principals)
    }

    /// Each group an ACL names exists in the tenant: a typo would hide the document from everyone.
    async fn check_acl(&self, access: &TenantAccess, acl: &AccessList) -> Result<(), Error> {
        for id in &acl.groups {
            if self.inner.db.group(access.tenant_id(), id).await?.is_none() {
                return Err(Error::invalid(format!("the ACL names group '{id}', which does not exist in this tenant"), "acl"));
            }
        }
        // A role named before it exists would go to whoever creates it first.
        for role in &acl.roles {
            if role.parse::<agentry_types::BuiltinRole>().is_err() && self.inner.db.role(access.tenant_id(), role).await?.is_none() {
                return Err(Error::invalid(format!("the ACL names role '{role}', which does not exist in this tenant"), "acl"));
            }
        }
        Ok(())
    }

    /// Each collection exists in the reader's tenant (not found otherwise).
    async fn require_collections(&self, access: &TenantAccess, ids: &[String]) -> Result<(), Error> {
        for id in ids {
            self.collection(access, id).await?;
        }
        Ok(())
    }

    /// The index, opened on first use with the embedding model's dimensions
    /// (one embedded folder or PostgreSQL table per model and dimension count).
    async fn index(&self, tenant: &str) -> Result<Index, Error> {
        if let Some(index) = self.inner.index.get() {
            return Ok(index.clone());
        }
        // Opened (and rebuilt, when it is empty) in a task of its own: a
        // caller that goes away must not cut a rebuild short.
        let (this, tenant) = (self.clone(), tenant.to_owned());
        tokio::spawn(async move { this.open_index(&tenant).await }).await.map_err(|e| Error::Unavailable(format!("opening the index: {e}")))?
    }

    async fn open_index(&self, tenant: &str) -> Result<Index, Error> {
        self.inner
            .index
            .get_or_try_init(|| async {
                let probe = self.embed(tenant, None, vec!["dimensions".to_owned()]).await?;
                let dimensions = probe.first().map_or(0, Vec::len);
                if dimensions == 0 {
                    return Err(Error::Unavailable("the embedding model returned no vector".into()));
                }
                let model: String = self.inner.settings.embedding_model.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
                let name = format!("{model}-{dimensions}");
                let index = match (self.inner.settings.index_backend, &self.inner.db) {
                    (IndexBackend::Auto | IndexBackend::Postgres, Db::Postgres(pool)) => {
                        let table = name.replace('-', "_");
                        Index::Postgres(PostgresIndex::open(pool.clone(), &table, dimensions).await?)
                    }
                    (IndexBackend::Postgres, Db::Sqlite(_)) => return Err(Error::Unavailable("knowledge.index = \"postgres\" needs a PostgreSQL database".into())),
                    (IndexBackend::Auto | IndexBackend::Embedded, _) => {
                        let dir = self.inner.settings.index_dir.join(name);
                        let index = tokio::task::spawn_blocking(move || EmbeddedIndex::open(&dir, dimensions))
                            .await
                            .map_err(|e| Error::Unavailable(format!("opening the index: {e}")))??;
                        Index::Embedded(Arc::new(index))
                    }
                };
                rebuild::if_empty(&self.inner.db, &index, dimensions, self.inner.settings.parse_limits.max_title_chars).await?;
                Ok(index)
            })
            .await
            .cloned()
    }

    pub async fn create_collection(&self, access: &TenantAccess, input: CollectionInput) -> Result<Collection, Error> {
        require(access, Permission::UploadDocuments)?;
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("'name' must be 1 to 200 characters", "name"));
        }
        let chunking = input.chunking.unwrap_or(self.inner.settings.default_chunking);
        chunking.validate().map_err(|m| Error::invalid(m, "chunking"))?;
        check_quality_change(access, &input.quality)?;
        let now = now_ms();
        let row = CollectionRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: access.tenant_id().to_owned(),
            name: name.to_owned(),
            description: input.description,
            chunk_max_tokens: chunking.max_tokens as i32,
            chunk_overlap_tokens: chunking.overlap_tokens as i32,
            created_at_ms: now,
            updated_at_ms: now,
            quality: serde_json::to_string(&input.quality).map_err(|e| Error::Internal(e.to_string()))?,
        };
        match self.inner.db.insert_collection(&row).await {
            Err(DbError::Conflict { .. }) => Err(Error::Conflict(format!("a collection named '{name}' already exists"))),
            other => other.map(|()| row.into()).map_err(Into::into),
        }
    }

    /// The tenant's collections, oldest first, a page at a time.
    pub async fn collections(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<Collection>, Error> {
        require(access, Permission::ReadDocuments)?;
        let rows = self.inner.db.collections_of_tenant(access.tenant_id(), page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.id), Collection::from))
    }

    pub async fn collection(&self, access: &TenantAccess, id: &str) -> Result<Collection, Error> {
        require(access, Permission::ReadDocuments)?;
        Ok(self.inner.db.collection(access.tenant_id(), id).await?.ok_or_else(|| Error::NotFound(format!("collection '{id}'")))?.into())
    }

    /// Change a collection's description or quality checks.
    pub async fn update_collection(&self, access: &TenantAccess, id: &str, change: CollectionChange) -> Result<Collection, Error> {
        require(access, Permission::UploadDocuments)?;
        let current = self.collection(access, id).await?;
        if let Some(quality) = &change.quality {
            check_quality_change(access, quality)?;
        }
        let description = change.description.unwrap_or(current.description);
        let quality = serde_json::to_string(&change.quality.unwrap_or(current.quality)).map_err(|e| Error::Internal(e.to_string()))?;
        if !self.inner.db.update_collection(access.tenant_id(), id, &description, &quality, now_ms()).await? {
            return Err(Error::NotFound(format!("collection '{id}'")));
        }
        self.collection(access, id).await
    }

    pub async fn delete_collection(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        require(access, Permission::DeleteDocuments)?;
        let chunk_ids = self.inner.db.delete_collection(access.tenant_id(), id).await?.ok_or_else(|| Error::NotFound(format!("collection '{id}'")))?;
        self.inner.cache.invalidate(access.tenant_id(), id).await;
        self.unindex(access.tenant_id(), chunk_ids).await
    }

    /// Store an upload as a new document (or a new version of `upload.document_id`) and queue its ingestion.
    pub async fn upload(&self, access: &TenantAccess, collection_id: &str, upload: Upload) -> Result<Accepted, Error> {
        require(access, Permission::UploadDocuments)?;
        let collection = self.collection(access, collection_id).await?;
        // Uploaded bytes: their format and hash now. A URL: the worker fetches it.
        let (stored, source_url, named_source) = match &upload.content {
            Content::Bytes { bytes, file_name, content_type } => {
                let limit = self.inner.settings.max_document_bytes;
                if bytes.len() > limit {
                    return Err(Error::TooLarge(format!("the document is {} bytes; the limit is {limit}", bytes.len())));
                }
                if bytes.is_empty() {
                    return Err(Error::invalid("the document is empty", "file"));
                }
                let format = parse::sniff(bytes, file_name.as_deref(), content_type.as_deref()).map_err(|e| match e {
                    e @ ParseError::TooLarge { .. } => Error::TooLarge(e.to_string()),
                    other => Error::Unprocessable(other.to_string()),
                })?;
                (Some((format, hex_sha256(bytes), bytes.as_slice())), None, file_name.clone())
            }
            Content::Url(raw) => {
                let url = fetch::check_upload_url(&self.inner.outbound, raw)?.to_string();
                (None, Some(url.clone()), Some(url))
            }
        };
        let now = now_ms();
        // A connector's page is known by its URL, whatever the bytes' file name.
        let named_source = upload.collected.as_ref().map(|c| c.source_url.clone()).or(named_source);
        let origin = match (&upload.collected, &source_url) {
            (Some(_), _) => "connector",
            (None, Some(_)) => "url",
            (None, None) => "upload",
        };
        let collected = upload.collected.as_ref();
        let source_url = source_url.or_else(|| collected.map(|c| c.source_url.clone()));
        let source = named_source.clone().unwrap_or_else(|| "upload".to_owned());
        // The title is repeated with every chunk: a given one over the limit
        // is refused, one taken from the file name or URL is cut.
        let max_title = self.inner.settings.parse_limits.max_title_chars;
        if upload.title.as_ref().is_some_and(|t| t.chars().count() > max_title) {
            return Err(Error::invalid(format!("'title' must be at most {max_title} characters"), "title"));
        }
        let title = upload.title.clone().filter(|t| !t.trim().is_empty()).unwrap_or_else(|| parse::cut_chars(&source, max_title));
        let job_for = |document_id: &str, version: i32| JobRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: access.tenant_id().to_owned(),
            document_id: document_id.to_owned(),
            version,
            status: JobStatus::Queued,
            attempts: 0,
            run_after_ms: now,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
            kind: JobKind::Index,
            owner: access.principal().user_id().map(|id| format!("user:{id}")),
            max_attempts: self.inner.settings.max_attempts,
            claims: 0,
        };
        let version_for = |document_id: &str, version: i32, parent_version: Option<i32>| VersionRow {
            document_id: document_id.to_owned(),
            version,
            content_hash: stored.as_ref().map(|(_, hash, _)| hash.clone()),
            format: stored.as_ref().map(|(format, _, _)| format.as_str().to_owned()),
            size_bytes: stored.as_ref().map_or(0, |(_, _, bytes)| bytes.len() as i64),
            source_url: source_url.clone(),
            status: DocumentStatus::Queued,
            error: None,
            chunk_count: 0,
            created_at_ms: now,
            summary: None,
            summary_status: None,
            summary_error: None,
            origin: origin.to_owned(),
            connector: collected.map(|c| c.connector.clone()),
            schedule_id: collected.and_then(|c| c.schedule_id.clone()),
            collected_by: collected.and_then(|c| c.run_id.clone()),
            discovered_from: collected.and_then(|c| c.discovered_from.clone()),
            fetched_at_ms: collected.map(|c| c.fetched_at_ms),
            parent_version,
            quality_check: None,
        };
        let (document_id, job) = match &upload.document_id {
            Some(id) => {
                let existing = self.visible_document(access, id, &self.reader_principals(access).await?).await?;
                if existing.collection_id != collection.id {
                    return Err(Error::NotFound(format!("document '{id}' in collection '{}'", collection.id)));
                }
                // A URL is fetched again every time: its bytes are not known yet.
                if let Some((_, hash, _)) = &stored {
                    let versions = self.inner.db.versions_of_document(id).await?;
                    // An excluded latest version is tried again once the collection's checks changed after it.
                    let settled = |v: &VersionRow| v.status != DocumentStatus::Excluded || v.created_at_ms >= collection.updated_at_ms;
                    if versions.last().is_some_and(|v| v.content_hash.as_ref() == Some(hash) && settled(v)) {
                        return Ok(Accepted { document: existing, job_id: None, unchanged: true });
                    }
                }
                let version = existing.latest_version + 1;
                let job = job_for(id, version);
                let new = NewVersion { version: &version_for(id, version, existing.current_version), content: stored.as_ref().map(|(_, _, bytes)| *bytes), job: &job };
                self.inner.db.add_version(access.tenant_id(), new, &title, named_source.as_deref(), now).await?;
                (id.clone(), job)
            }
            None => {
                self.check_acl(access, &upload.acl).await?;
                let id = uuid::Uuid::now_v7().to_string();
                let row = DocumentRow {
                    id: id.clone(),
                    tenant_id: access.tenant_id().to_owned(),
                    collection_id: collection.id.clone(),
                    title,
                    source,
                    metadata: serde_json::Value::Object(upload.metadata.clone()).to_string(),
                    acl: serde_json::to_string(&upload.acl).unwrap_or_else(|_| "{}".into()),
                    current_version: None,
                    latest_version: 1,
                    status: DocumentStatus::Queued,
                    error: None,
                    created_by: access.principal().user_id().map(str::to_owned),
                    created_at_ms: now,
                    updated_at_ms: now,
                    summary: None,
                };
                let job = job_for(&id, 1);
                let new = NewVersion { version: &version_for(&id, 1, None), content: stored.as_ref().map(|(_, _, bytes)| *bytes), job: &job };
                self.inner.db.insert_document(&row, new).await?;
                (id, job)
            }
        };
        self.inner.wake.notify_one();
        // The uploader is answered even when the ACL leaves them out: never a 404 after a write.
        let stored = self.inner.db.document(access.tenant_id(), &document_id).await?.map(DocumentView::of);
        let document = stored.ok_or_else(|| Error::NotFound(format!("document '{document_id}'")))?;
        Ok(Accepted { document, job_id: Some(job.id), unchanged: false })
    }

    async fn visible_document(&self, access: &TenantAccess, id: &str, principals: &[String]) -> Result<DocumentView, Error> {
        let row = self.inner.db.document(access.tenant_id(), id).await?.map(DocumentView::of);
        row.filter(|d| d.visible_to(principals)).ok_or_else(|| Error::NotFound(format!("document '{id}'")))
    }

    pub async fn document(&self, access: &TenantAccess, id: &str) -> Result<DocumentView, Error> {
        require(access, Permission::ReadDocuments)?;
        self.visible_document(access, id, &self.reader_principals(access).await?).await
    }

    /// The documents of a collection the caller may read, oldest first, a
    /// page at a time. Documents the caller may not read are skipped in the
    /// store's pages until this one is full (at most [`MAX_SCANNED_PAGES`]
    /// of them; the cursor then points past what was scanned).
    pub async fn documents(&self, access: &TenantAccess, collection_id: &str, page: &PageRequest) -> Result<Page<DocumentView>, Error> {
        let collection = self.collection(access, collection_id).await?;
        let principals = self.reader_principals(access).await?;
        let mut visible = Vec::new();
        let mut after = page.after.clone();
        for _ in 0..MAX_SCANNED_PAGES {
            let key = after.as_ref().map(Cursor::key);
            let rows = self.inner.db.documents_of_collection(access.tenant_id(), &collection.id, key, page.fetch()).await?;
            let exhausted = rows.len() < page.fetch() as usize;
            after = rows.last().map(|row| Cursor::new(row.created_at_ms, &row.id));
            visible.extend(rows.into_iter().map(DocumentView::of).filter(|d| d.visible_to(&principals)));
            if exhausted || visible.len() > page.limit as usize {
                return Ok(page.page(visible, |d| Cursor::new(d.created_at_ms, &d.id), |d| d));
            }
        }
        // Scanned as far as one request may: a short page whose cursor goes on.
        let mut page_of = page.page(visible, |d| Cursor::new(d.created_at_ms, &d.id), |d| d);
        page_of.next_cursor = after.map(|c| c.encode());
        Ok(page_of)
    }

    pub async fn versions(&self, access: &TenantAccess, id: &str) -> Result<Vec<DocumentVersion>, Error> {
        let document = self.document(access, id).await?;
        Ok(self.inner.db.versions_of_document(&document.id).await?.into_iter().map(DocumentVersion::from).collect())
    }

    /// The stored bytes of one version, with what to serve them as.
    pub async fn version_content(&self, access: &TenantAccess, id: &str, version: i32) -> Result<VersionFile, Error> {
        let document = self.document(access, id).await?;
        match self.inner.db.version_content(&document.id, version).await? {
            Some(VersionContent::Stored { format, bytes }) => Ok(VersionFile::of(&format, bytes)),
            Some(VersionContent::Pending { url }) => Err(Error::Conflict(format!("version {version} of document '{id}' has no content: {url} has not been fetched (yet)"))),
            None => Err(Error::NotFound(format!("version {version} of document '{id}'"))),
        }
    }

    /// Make an earlier version current again: its bytes become a new version
    /// (ingested like an upload; its chunks' embeddings are reused, not recomputed).
    pub async fn restore(&self, access: &TenantAccess, id: &str, version: i32) -> Result<Accepted, Error> {
        require(access, Permission::UploadDocuments)?;
        let document = self.document(access, id).await?;
        let bytes = self.version_content(access, id, version).await?.bytes;
        let upload = Upload {
            content: Content::Bytes { bytes, file_name: Some(document.source.clone()), content_type: None },
            // Titles stored before the length limit are cut, not refused.
            title: Some(parse::cut_chars(document.title.trim(), self.inner.settings.parse_limits.max_title_chars)),
            metadata: serde_json::Map::new(),
            acl: document.acl.clone(),
            document_id: Some(document.id.clone()),
            collected: None,
        };
        self.upload(access, &document.collection_id, upload).await
    }

    /// One version's row (found only once the caller may see the document).
    async fn stored_version(&self, document_id: &str, version: i32) -> Result<VersionRow, Error> {
        let stored = self.inner.db.versions_of_document(document_id).await?.into_iter().find(|v| v.version == version);
        stored.ok_or_else(|| Error::NotFound(format!("version {version} of document '{document_id}'")))
    }

    /// Delete an earlier version (its bytes, chunks and summary). The
    /// current version, the latest one and one still being ingested stay:
    /// restore or upload another version first, or delete the document.
    pub async fn delete_version(&self, access: &TenantAccess, id: &str, version: i32) -> Result<(), Error> {
        require(access, Permission::DeleteDocuments)?;
        let document = self.document(access, id).await?;
        let stored = self.stored_version(&document.id, version).await?;
        let kept = if document.current_version == Some(version) {
            Some("it is the current version")
        } else if document.latest_version == version {
            Some("it is the latest version")
        } else if matches!(stored.status, DocumentStatus::Queued | DocumentStatus::Processing) {
            Some("it is being ingested")
        } else {
            None
        };
        if let Some(reason) = kept {
            return Err(Error::Conflict(format!("version {version} of document '{id}' cannot be deleted: {reason}")));
        }
        let chunk_ids = self.inner.db.delete_version(&document.id, version).await?.ok_or_else(|| Error::NotFound(format!("version {version} of document '{id}'")))?;
        self.unindex(access.tenant_id(), chunk_ids).await
    }

    pub async fn job(&self, access: &TenantAccess, id: &str) -> Result<IngestJob, Error> {
        require(access, Permission::ReadDocuments)?;
        let job = self.inner.db.ingest_job(access.tenant_id(), id).await?.ok_or_else(|| Error::NotFound(format!("job '{id}'")))?;
        // A job of a document the reader cannot see does not exist for them.
        self.visible_document(access, &job.document_id, &self.reader_principals(access).await?).await?;
        Ok(job.into())
    }

    pub async fn delete_document(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        require(access, Permission::DeleteDocuments)?;
        let document = self.visible_document(access, id, &self.reader_principals(access).await?).await?;
        let chunk_ids = self.inner.db.delete_document(access.tenant_id(), id).await?.ok_or_else(|| Error::NotFound(format!("document '{id}'")))?;
        self.inner.cache.invalidate(access.tenant_id(), &document.collection_id).await;
        self.unindex(access.tenant_id(), chunk_ids).await
    }

    /// Remove chunks from the index (a no-op for none).
    async fn unindex(&self, tenant: &str, chunk_ids: Vec<i64>) -> Result<(), Error> {
        if chunk_ids.is_empty() {
            return Ok(());
        }
        let index = self.index(tenant).await?;
        index.remove(chunk_ids.into_iter().map(|id| id as u64).collect()).await?;
        Ok(())
    }
}

/// Quality checks decide what every member's documents may be found by:
/// setting any takes `manage_integrations` as well, and they must be valid.
fn check_quality_change(access: &TenantAccess, checks: &quality::QualityChecks) -> Result<(), Error> {
    if *checks != quality::QualityChecks::default() {
        require(access, Permission::ManageIntegrations)?;
    }
    checks.validate()
}

/// [`TenantAccess::require`] in this service's error.
fn require(access: &TenantAccess, permission: Permission) -> Result<(), Error> {
    access.require(permission).map_err(|e| Error::Forbidden(e.to_string()))
}
