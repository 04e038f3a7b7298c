//! Search indexes over chunks: what a chunk carries into an index, the
//! filter every query must name (tenant first), and the hits that come back.
//! [`embedded`] keeps them on disk next to the SQLite file (tantivy BM25 +
//! an HNSW graph).
//!
//! Must not: decide who may read what (callers pass the reader's ACL
//! principals) or talk to the database.

pub mod embedded;

use std::collections::HashMap;

use serde_json::Value;

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
            && (self.collections.is_empty() || self.collections.contains(&entry.collection))
            && self.documents.as_ref().is_none_or(|d| d.contains(&entry.document))
            && entry.acl.iter().any(|a| self.principals.contains(a))
            && self.metadata.iter().all(|(key, condition)| condition.matches(entry.metadata.get(key)))
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
        Self {
            tenant: chunk.tenant.clone(),
            collection: chunk.collection.clone(),
            document: chunk.document.clone(),
            acl: chunk.acl.clone(),
            metadata: chunk.metadata.clone(),
        }
    }
}

/// A ranked chunk key with its engine's score (BM25, or cosine similarity).
pub type Ranked = (u64, f32);
