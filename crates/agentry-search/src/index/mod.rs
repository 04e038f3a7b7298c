//! Search indexes over chunks: what a chunk carries into an index, the
//! filter every query must name (tenant first), the hits that come back, and
//! [`Index`], the one handle services hold whichever backend keeps the chunks.
//! [`embedded`] keeps them on disk next to the SQLite file (tantivy BM25 +
//! an HNSW graph); [`postgres`] keeps them in a table of the PostgreSQL
//! database (full-text search + pgvector).
//!
//! Must not: decide who may read what (callers pass the reader's ACL
//! principals), embed text (callers pass vectors) or touch the application's
//! tables (the PostgreSQL backend owns only its own index table).

pub mod analyzer;
mod change_log;
pub mod embedded;
pub mod postgres;
pub mod scan;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use self::embedded::EmbeddedIndex;
use self::postgres::PostgresIndex;

/// Why an index operation failed; one type for both backends so callers
/// handle [`Index`] errors alike.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("keyword index: {0}")]
    Keyword(#[from] tantivy::TantivyError),
    #[error("keyword index folder: {0}")]
    Folder(#[from] tantivy::directory::error::OpenDirectoryError),
    #[error("vector index: {0}")]
    Vector(String),
    #[error("index files: {0}")]
    Io(#[from] std::io::Error),
    #[error("index metadata: {0}")]
    Metadata(#[from] serde_json::Error),
    #[error("vector has {got} dimensions, the index {expected}")]
    Dimensions { expected: usize, got: usize },
    #[error("database index: {0}")]
    Database(String),
    #[error("index task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A chunk as an index stores it. `key` is the chunk's id in the database.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedChunk {
    pub key: u64,
    pub tenant: String,
    pub collection: String,
    pub document: String,
    pub title: String,
    pub text: String,
    /// Who may read it: `*` for everyone in the tenant, else `user:<id>`, `role:<name>`, `group:<id>`.
    pub acl: Vec<String>,
    /// The document's metadata (flat: scalar values only are filterable).
    pub metadata: serde_json::Map<String, Value>,
    pub vector: Vec<f32>,
}

/// A condition on one metadata key.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum MetadataCondition {
    /// Numeric range; any bound may be left out.
    Range {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gt: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gte: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lt: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lte: Option<f64>,
    },
    /// Equality with a scalar.
    Equals(Value),
}

impl MetadataCondition {
    pub fn matches(&self, value: Option<&Value>) -> bool {
        match self {
            Self::Equals(expected) => value == Some(expected),
            Self::Range { gt, gte, lt, lte } => {
                let Some(v) = value.and_then(Value::as_f64) else { return false };
                gt.is_none_or(|b| v > b) && gte.is_none_or(|b| v >= b) && lt.is_none_or(|b| v < b) && lte.is_none_or(|b| v <= b)
            }
        }
    }
}

/// What a query may see. Applied inside each engine's search (pre-filtering),
/// so `top_k` results come back whenever that many visible chunks match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant: String,
    /// Empty: every collection of the tenant.
    pub collections: Vec<String>,
    /// `None`: every document.
    pub documents: Option<Vec<String>>,
    /// The reader's principals; a chunk is visible when its ACL shares one. Always include `*`.
    pub principals: Vec<String>,
    pub metadata: HashMap<String, MetadataCondition>,
}

impl Filter {
    fn allows(&self, entry: &Entry) -> bool {
        entry.tenant == self.tenant
            && self.documents.as_ref().is_none_or(|d| d.contains(&entry.document))
            && entry.acl.iter().any(|a| self.principals.contains(a))
            && self.admits(&entry.collection, &entry.metadata)
    }

    /// Whether a document of `collection` with `metadata` passes the
    /// collection and metadata conditions (tenant, document ids and ACL aside).
    pub fn admits(&self, collection: &str, metadata: &serde_json::Map<String, Value>) -> bool {
        (self.collections.is_empty() || self.collections.iter().any(|c| c == collection)) && self.metadata.iter().all(|(key, condition)| condition.matches(metadata.get(key)))
    }
}

/// What the vector side keeps per chunk to apply a [`Filter`] during graph search.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Entry {
    tenant: String,
    collection: String,
    document: String,
    acl: Vec<String>,
    metadata: serde_json::Map<String, Value>,
}

impl From<&IndexedChunk> for Entry {
    fn from(chunk: &IndexedChunk) -> Self {
        Self { tenant: chunk.tenant.clone(), collection: chunk.collection.clone(), document: chunk.document.clone(), acl: chunk.acl.clone(), metadata: chunk.metadata.clone() }
    }
}

/// A ranked chunk key with its engine's score (BM25, or cosine similarity).
pub type Ranked = (u64, f32);

/// One index, whichever backend keeps it; what services hold and clone per
/// request (an `Arc` or a pool handle, so cloning is cheap).
///
/// Both backends make a write durable and visible when `add`/`remove`
/// returns: the embedded one commits each call (so batch chunks per call),
/// PostgreSQL commits its statement. Embedded work runs on tokio's blocking
/// pool, since tantivy and usearch do file I/O and CPU-bound search.
#[derive(Clone)]
pub enum Index {
    Embedded(Arc<EmbeddedIndex>),
    Postgres(PostgresIndex),
}

impl Index {
    /// Add chunks, replacing any with the same key.
    pub async fn add(&self, chunks: Vec<IndexedChunk>) -> Result<(), IndexError> {
        match self {
            Self::Embedded(index) => {
                let index = Arc::clone(index);
                blocking(move || {
                    index.add(&chunks)?;
                    index.commit()
                })
                .await
            }
            Self::Postgres(index) => index.add(&chunks).await,
        }
    }

    /// Remove chunks by key; unknown keys are ignored.
    pub async fn remove(&self, keys: Vec<u64>) -> Result<(), IndexError> {
        match self {
            Self::Embedded(index) => {
                let index = Arc::clone(index);
                blocking(move || {
                    index.remove(&keys)?;
                    index.commit()
                })
                .await
            }
            Self::Postgres(index) => index.remove(&keys).await,
        }
    }

    /// Keyword search, best first: BM25 (embedded) or `ts_rank` (PostgreSQL).
    /// Scores are comparable within one backend only; fuse by rank.
    pub async fn keyword_search(&self, query: &str, filter: &Filter, top_k: usize) -> Result<Vec<Ranked>, IndexError> {
        match self {
            Self::Embedded(index) => {
                let (index, query, filter) = (Arc::clone(index), query.to_owned(), filter.clone());
                blocking(move || index.keyword_search(&query, &filter, top_k)).await
            }
            Self::Postgres(index) => index.keyword_search(query, filter, top_k).await,
        }
    }

    /// Nearest chunks, best first, scored by cosine similarity on both backends.
    pub async fn vector_search(&self, query: &[f32], filter: &Filter, top_k: usize) -> Result<Vec<Ranked>, IndexError> {
        match self {
            Self::Embedded(index) => {
                let (index, query, filter) = (Arc::clone(index), query.to_vec(), filter.clone());
                blocking(move || index.vector_search(&query, &filter, top_k)).await
            }
            Self::Postgres(index) => index.vector_search(query, filter, top_k).await,
        }
    }

    /// Chunks stored, across tenants.
    pub async fn count(&self) -> Result<usize, IndexError> {
        match self {
            Self::Embedded(index) => Ok(index.len()),
            Self::Postgres(index) => index.count().await,
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, IndexError> + Send + 'static) -> Result<T, IndexError> {
    tokio::task::spawn_blocking(work).await?
}
