//! Ingestion workers: claim a queued job (or one whose worker died, once its
//! lease runs out; a live worker renews its lease while it works), fetch the
//! bytes of a version uploaded by URL first ([`super::fetch`]; stored in the
//! version, so a re-run does not fetch again), parse and chunk the version's
//! bytes, reuse the embeddings of chunks whose content hash the document
//! already had, embed the rest in batches, store the chunks, index them, and flip the
//! document's current version in one transaction; then unindex the previous
//! version. A crash at any step leaves the old version visible and the job
//! claimable again; a re-run replaces what the crashed attempt stored. With
//! a summary model configured, finishing queues the version's summary job
//! ([`super::summaries`]) in the same transaction; workers run both kinds.
//!
//! A document that cannot be fetched for a reason of its own (a refused
//! address, a 404), cannot be parsed, or is over its parse budget
//! (`knowledge.parse`: text, decompressed data, sections, chunks; the
//! parsers stop at the limit) fails at once with the reason; other
//! failures (the network, the embedding model, the index) are retried with
//! exponential backoff and jitter ([`crate::jobs::backoff_ms`]) up to
//! `max_attempts`, then the job is dead (its last error kept; it can be
//! retried through the job API). A job whose attempts are used up is never
//! claimed again: one whose worker died on its last attempt (a crash, a
//! kill) is made dead by the next claim instead, so a document that brings
//! the process down cannot do so after every restart.
//!
//! Must not: decide permissions (the upload already did).

use agentry_types::{EventType, JobKind, JobStatus, Permission};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentry_db::knowledge::{DocumentRow, IngestRetry, JobRow, NewChunk, VersionContent};
use agentry_search::chunk::{Chunk, ChunkConfig, Chunker};
use agentry_search::index::IndexedChunk;
use agentry_search::parse::{self, Format};
use tokio_util::sync::CancellationToken;

use crate::events::Audience;

use super::quality::{self, QualityCheck, QualityChecks, Rejection};
use super::{AccessList, Error, Knowledge};
use crate::identity::now_ms;

/// Texts per embedding call.
const EMBED_BATCH: usize = 32;
/// How long an idle worker sleeps when nothing wakes it.
const IDLE_POLL: Duration = Duration::from_secs(1);

pub(super) enum Failure {
    /// The document itself is at fault: fail now, with this reason.
    Permanent(String),
    /// The version failed one of its collection's quality checks: keep it out of search.
    Excluded(Rejection),
    /// Something around it failed: try again later.
    Retry(String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Retry(error.to_string())
    }
}

impl From<agentry_db::DbError> for Failure {
    fn from(error: agentry_db::DbError) -> Self {
        Failure::Retry(error.to_string())
    }
}

impl From<agentry_search::index::IndexError> for Failure {
    fn from(error: agentry_search::index::IndexError) -> Self {
        Failure::Retry(error.to_string())
    }
}

impl QualityChecks {
    /// A version without text: excluded where the collection has checks,
    /// failed (its previous version stays searchable) where it has none.
    fn empty(&self, reason: String) -> Failure {
        if *self == QualityChecks::default() { Failure::Permanent(reason) } else { Failure::Excluded(Rejection { check: QualityCheck::EmptyText, reason }) }
    }
}

/// Start `settings.workers` workers; they stop when `stop` is cancelled.
pub fn spawn_workers(knowledge: &Knowledge, stop: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    (0..knowledge.inner.settings.workers.max(1)).map(|_| tokio::spawn(work(knowledge.clone(), stop.clone()))).collect()
}

async fn work(knowledge: Knowledge, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let settings = &knowledge.inner.settings;
        let claimed = knowledge.inner.db.claim_ingest_job(now_ms(), settings.lease_ms, settings.max_attempts).await;
        match claimed {
            Ok(Some(job)) => knowledge.process(job).await,
            Ok(None) => {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = knowledge.inner.wake.notified() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot claim an ingestion job");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
}

/// What the embedding model reads for a chunk: the document's title and
/// the chunk's heading path give a passage the context its text may lack.
/// `title` is the chunk title ([`Knowledge::chunk_title`]): cut to the limit.
pub(super) fn embedding_input(title: &str, chunk: &Chunk) -> String {
    let heading = chunk.heading_path.join(" > ");
    [title, heading.as_str(), chunk.text.as_str()].into_iter().filter(|part| !part.trim().is_empty()).collect::<Vec<_>>().join("\n")
}

/// The stored chunk hash: its content hash together with the title it was embedded with.
fn embedding_key(title: &str, chunk: &Chunk) -> String {
    super::hex_sha256(format!("{title}\n{}", chunk.content_hash).as_bytes())
}

/// Index entries for stored chunks (id, row) of `document`: each carries
/// the document's ACL principals and metadata, and its title cut to
/// `max_title_chars` (the configured limit, as [`Knowledge::chunk_title`]
/// cuts the title that is embedded).
pub(super) fn indexed_chunks<'a>(tenant: &str, document: &DocumentRow, max_title_chars: usize, stored: impl Iterator<Item = (i64, &'a NewChunk)>) -> Vec<IndexedChunk> {
    let title = parse::cut_chars(&document.title, max_title_chars);
    let acl = AccessList::stored(&document.acl, &document.id).principals();
    let metadata = match serde_json::from_str(&document.metadata) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    stored
        .map(|(id, row)| IndexedChunk {
            key: id as u64,
            tenant: tenant.to_owned(),
            collection: document.collection_id.clone(),
            document: document.id.clone(),
            title: title.clone(),
            text: row.text.clone(),
            acl: acl.clone(),
            metadata: metadata.clone(),
            vector: from_bytes(&row.embedding),
        })
        .collect()
}

pub(super) fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

impl Knowledge {
    async fn process(&self, job: JobRow) {
        let started = std::time::Instant::now();
        let work = async {
            match job.kind {
                JobKind::Summary => self.summarize(&job).await,
                JobKind::Index => self.ingest(&job).await,
                other => Err(Failure::Permanent(format!("'{other}' is not an ingestion job"))),
            }
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            () = self.hold_lease(&job) => {
                tracing::warn!(document = %job.document_id, job = %job.id, "lost the job's lease to another worker; leaving it to them");
                return;
            }
        };
        let now = now_ms();
        let outcomes = if job.kind == JobKind::Summary { "documents_summarized_total" } else { "documents_ingested_total" };
        let recorded = match &outcome {
            Err(Failure::Excluded(rejection)) => {
                metrics::counter!(outcomes, "status" => "excluded").increment(1);
                quality::record(Some(rejection.check));
                tracing::info!(document = %job.document_id, version = job.version, check = rejection.check.as_str(), reason = %rejection.reason, "document version excluded");
                self.exclude(&job, rejection, now).await
            }
            Ok(chunks) => {
                metrics::counter!(outcomes, "status" => "succeeded").increment(1);
                tracing::info!(document = %job.document_id, version = job.version, kind = %job.kind, chunks, elapsed_ms = started.elapsed().as_millis() as u64, "document job done");
                Ok(())
            }
            Err(Failure::Permanent(reason)) => {
                metrics::counter!(outcomes, "status" => "failed").increment(1);
                self.inner.db.fail_ingest(&job, reason, IngestRetry::Never, now).await
            }
            Err(Failure::Retry(reason)) if job.attempts >= self.inner.settings.max_attempts => {
                metrics::counter!(outcomes, "status" => "failed").increment(1);
                self.inner.db.fail_ingest(&job, &format!("gave up after {} attempts: {reason}", job.attempts), IngestRetry::GaveUp, now).await
            }
            Err(Failure::Retry(reason)) => {
                let backoff_ms = crate::jobs::backoff_ms(job.attempts);
                tracing::warn!(document = %job.document_id, kind = %job.kind, attempt = job.attempts, %reason, "document job failed; will retry");
                self.inner.db.fail_ingest(&job, reason, IngestRetry::At(now + backoff_ms), now).await
            }
        };
        match recorded {
            Ok(()) => self.publish_outcome(&job, &outcome).await,
            Err(error) => tracing::error!(%error, job = %job.id, "cannot record the ingestion outcome; the job's lease will expire and it will run again"),
        }
    }

    /// `document.ingested` when a version is indexed, `document.failed` when it will not be.
    async fn publish_outcome(&self, job: &JobRow, outcome: &Result<usize, Failure>) {
        if job.kind != JobKind::Index {
            return;
        }
        let (event_type, data) = match outcome {
            Ok(chunks) => (EventType::DocumentIngested, serde_json::json!({ "document_id": job.document_id, "version": job.version, "chunks": chunks })),
            Err(Failure::Permanent(reason)) => (EventType::DocumentFailed, serde_json::json!({ "document_id": job.document_id, "version": job.version, "error": reason })),
            Err(Failure::Excluded(Rejection { check, reason })) => {
                (EventType::DocumentFailed, serde_json::json!({ "document_id": job.document_id, "version": job.version, "error": reason, "quality_check": check.as_str() }))
            }
            Err(Failure::Retry(reason)) if job.attempts >= self.inner.settings.max_attempts => {
                (EventType::DocumentFailed, serde_json::json!({ "document_id": job.document_id, "version": job.version, "error": reason }))
            }
            Err(Failure::Retry(_)) => return,
        };
        // A document may be restricted to some readers: only its uploader (and manage_tenant) hears of it.
        let audience = Audience::owner(Some(job.owner.clone().unwrap_or_else(|| "master".into())), &[Permission::ReadDocuments, Permission::UploadDocuments]);
        self.inner.events.publish(&job.tenant_id, event_type, audience, data).await;
    }

    /// Record an excluded version; its document's previous version leaves search with it.
    async fn exclude(&self, job: &JobRow, rejection: &Rejection, now: i64) -> Result<(), agentry_db::DbError> {
        let db = &self.inner.db;
        let previous = db.exclude_version(job, rejection.check.as_str(), &rejection.reason, now).await?;
        if let Some(previous) = previous {
            let unindexed = match db.chunk_ids(&job.document_id, Some(previous)).await {
                Ok(ids) => self.unindex(&job.tenant_id, ids).await,
                Err(error) => Err(error.into()),
            };
            if let Err(error) = unindexed {
                tracing::error!(%error, document = %job.document_id, version = previous, "an excluded document's previous version is still indexed (search skips it)");
            }
        }
        if let Ok(Some(document)) = db.document(&job.tenant_id, &job.document_id).await {
            self.inner.cache.invalidate(&job.tenant_id, &document.collection_id).await;
        }
        Ok(())
    }

    /// Renew the job's lease every third of its length; returns only when
    /// another worker has taken the job over (a failed renewal is retried).
    async fn hold_lease(&self, job: &JobRow) {
        let lease_ms = self.inner.settings.lease_ms;
        let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1).max(1));
        loop {
            tokio::time::sleep(every).await;
            match self.inner.db.renew_ingest_lease(job, now_ms(), lease_ms).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(error) => tracing::warn!(%error, job = %job.id, "cannot renew an ingestion lease"),
            }
        }
    }

    /// The title repeated with each chunk (embedded with it, indexed with
    /// it): cut to the title limit, whatever an older upload stored.
    pub(super) fn chunk_title(&self, title: &str) -> String {
        parse::cut_chars(title, self.inner.settings.parse_limits.max_title_chars)
    }

    /// The chunker for a collection's chunk sizes, built once per size and
    /// shared (building one clones the tokenizer).
    async fn chunker(&self, config: ChunkConfig) -> Result<Arc<Chunker>, Failure> {
        let tokenizer = self
            .inner
            .tokenizer
            .get_or_try_init(|| async {
                let path = self
                    .inner
                    .settings
                    .tokenizer
                    .clone()
                    .ok_or_else(|| Error::Unavailable("no tokenizer for chunking: enable the local models or set knowledge.tokenizer".into()))?;
                tokenizers::Tokenizer::from_file(&path).map_err(|e| Error::Unavailable(format!("cannot load the tokenizer {}: {e}", path.display())))
            })
            .await?;
        let mut chunkers = self.inner.chunkers.lock();
        if let Some(chunker) = chunkers.get(&config) {
            return Ok(Arc::clone(chunker));
        }
        let chunker = Arc::new(Chunker::new(tokenizer.clone(), config).map_err(|e| Failure::Permanent(e.to_string()))?);
        chunkers.insert(config, Arc::clone(&chunker));
        Ok(chunker)
    }

    /// One attempt at a job; the number of chunks indexed.
    async fn ingest(&self, job: &JobRow) -> Result<usize, Failure> {
        let db = &self.inner.db;
        let Some(document) = db.document(&job.tenant_id, &job.document_id).await? else { return Ok(0) };
        let Some(collection) = db.collection(&job.tenant_id, &document.collection_id).await? else { return Ok(0) };
        let (format, bytes) = match db.version_content(&job.document_id, job.version).await? {
            Some(VersionContent::Stored { format, bytes }) => (format, bytes),
            Some(VersionContent::Pending { url }) => self.fetch_version(job, &url).await?,
            None => return Ok(0),
        };
        let format: Format = serde_json::from_value(serde_json::Value::String(format.clone())).map_err(|_| Failure::Permanent(format!("unknown stored format '{format}'")))?;
        let config = ChunkConfig { max_tokens: collection.chunk_max_tokens as usize, overlap_tokens: collection.chunk_overlap_tokens as usize };
        let chunker = self.chunker(config).await?;
        let limits = self.inner.settings.parse_limits;
        // Over a budget is as deterministic as a parse error: fail now, never retry.
        let checks = QualityChecks::stored(&collection.quality, &collection.id);
        let hash = super::hex_sha256(&bytes);
        let parsed = self.inner.settings.parser.parse(bytes, format, limits).await.map_err(|e| match e {
            parse::ParseFailure::Document(e @ parse::ParseError::Empty) => checks.empty(e.to_string()),
            parse::ParseFailure::Document(e) => Failure::Permanent(e.to_string()),
            worker @ parse::ParseFailure::Worker(_) => Failure::Retry(worker.to_string()),
        })?;
        let text = parsed.sections.iter().map(|section| section.text.as_str()).collect::<Vec<_>>().join("\n");
        checks.check_text(&text).map_err(|rejection| match rejection.check {
            QualityCheck::EmptyText => checks.empty(rejection.reason),
            _ => Failure::Excluded(rejection),
        })?;
        drop(text);
        // The first of several documents with the same bytes is kept, whichever is ingested first.
        if checks.exclude_duplicates && db.earlier_duplicate(&document, &hash).await?.is_some() {
            let reason = "an earlier document of the collection has the same bytes".to_owned();
            return Err(Failure::Excluded(Rejection { check: QualityCheck::Duplicate, reason }));
        }
        let chunks = tokio::task::spawn_blocking(move || chunker.chunk(&parsed, limits.max_chunks).map_err(|e| Failure::Permanent(e.to_string())))
            .await
            .map_err(|e| Failure::Retry(format!("chunking task: {e}")))??;
        if chunks.is_empty() {
            return Err(checks.empty("the document has no extractable text".into()));
        }

        // Chunks are embedded with their document's title and heading path, so
        // the reuse key covers the title as well as the chunk's own hash.
        let title = self.chunk_title(&document.title);
        let keys: Vec<String> = chunks.iter().map(|c| embedding_key(&title, c)).collect();
        let known: HashMap<String, Vec<u8>> = db.embeddings_by_hash(&job.document_id).await?.into_iter().collect();
        let missing: Vec<usize> = (0..chunks.len()).filter(|&i| !known.contains_key(&keys[i])).collect();
        let mut embedded: HashMap<String, Vec<u8>> = HashMap::new();
        for batch in missing.chunks(EMBED_BATCH) {
            let texts = batch.iter().map(|&i| embedding_input(&title, &chunks[i])).collect();
            let vectors = self.embed(&job.tenant_id, document.created_by.as_deref(), texts).await?;
            if vectors.len() != batch.len() {
                return Err(Failure::Retry(format!("the embedding model returned {} vectors for {} texts", vectors.len(), batch.len())));
            }
            for (&i, vector) in batch.iter().zip(vectors) {
                embedded.insert(keys[i].clone(), to_bytes(&vector));
            }
        }
        metrics::counter!("chunks_embedded_total").increment(missing.len() as u64);
        metrics::counter!("chunks_reused_total").increment((chunks.len() - missing.len()) as u64);
        let rows: Vec<NewChunk> = chunks
            .iter()
            .zip(keys)
            .map(|(c, key)| NewChunk {
                ordinal: c.ordinal as i32,
                text: c.text.clone(),
                heading_path: serde_json::to_string(&c.heading_path).unwrap_or_else(|_| "[]".into()),
                page: c.page.map(|p| p as i32),
                token_count: c.token_count as i32,
                embedding: known.get(&key).or_else(|| embedded.get(&key)).cloned().unwrap_or_default(),
                content_hash: key,
            })
            .collect();

        let index = self.index(&job.tenant_id).await?;
        let stale = db.chunk_ids(&job.document_id, Some(job.version)).await?;
        let ids = db.store_chunks(job, &rows).await?;
        let indexed = indexed_chunks(&job.tenant_id, &document, self.inner.settings.parse_limits.max_title_chars, ids.iter().copied().zip(&rows));
        let count = indexed.len();
        self.unindex(&job.tenant_id, stale).await?;
        index.add(indexed).await?;

        let now = now_ms();
        let summary_job = self.inner.settings.summary_model.as_ref().map(|_| JobRow {
            id: uuid::Uuid::now_v7().to_string(),
            status: JobStatus::Queued,
            attempts: 0,
            run_after_ms: now,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
            kind: JobKind::Summary,
            ..job.clone()
        });
        let previous = db.finish_ingest(job, count as i32, summary_job.as_ref(), now).await?;
        if summary_job.is_some() {
            self.inner.wake.notify_one();
        }
        self.inner.cache.invalidate(&job.tenant_id, &document.collection_id).await;
        if let Some(previous) = previous {
            self.unindex(&job.tenant_id, db.chunk_ids(&job.document_id, Some(previous)).await?).await?;
        }
        quality::record(None);
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_types::DocumentStatus;

    /// The index keeps the title cut to the configured limit, as the
    /// embedding input does, not to the default one.
    #[test]
    fn indexed_titles_are_cut_to_the_configured_limit() {
        let document = DocumentRow {
            id: "doc".into(),
            tenant_id: "t".into(),
            collection_id: "c".into(),
            title: "t".repeat(500),
            source: "upload".into(),
            metadata: "{}".into(),
            acl: "[]".into(),
            current_version: Some(1),
            latest_version: 1,
            status: DocumentStatus::Succeeded,
            error: None,
            created_by: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            summary: None,
        };
        let row = NewChunk { ordinal: 0, content_hash: "h".into(), text: "text".into(), heading_path: "[]".into(), page: None, token_count: 1, embedding: Vec::new() };
        for limit in [1000, 40] {
            let indexed = indexed_chunks("t", &document, limit, std::iter::once((1, &row)));
            let expected = parse::cut_chars(&document.title, limit);
            assert_eq!(indexed.iter().map(|c| c.title.as_str()).collect::<Vec<_>>(), [expected.as_str()]);
        }
        assert_eq!(indexed_chunks("t", &document, 1000, std::iter::once((1, &row)))[0].title.chars().count(), 500);
    }
}
