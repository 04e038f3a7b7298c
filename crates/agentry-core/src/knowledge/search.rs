//! Search over the tenant's knowledge: keyword, vector or hybrid (weighted
//! reciprocal-rank fusion), filtered inside the index by tenant,
//! collections, documents, metadata and the reader's ACL principals, then
//! resolved to chunks of each document's current version. Asked for an
//! earlier version of one document, it ranks that version's stored chunks
//! exactly instead (only current versions are indexed).

use std::collections::HashMap;

use agentry_db::knowledge::ChunkHitRow;
use agentry_search::hybrid::{self, Component, Fused, Fusion};
use agentry_search::index::analyzer::Highlighter;
use agentry_search::index::scan::{self, Passage};
use agentry_search::index::{Filter, Index, MetadataCondition, Ranked};
use agentry_types::DocumentStatus;
use agentry_types::Permission;
use serde::{Deserialize, Serialize};

use super::{Error, Knowledge, require};
use crate::identity::TenantAccess;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Hybrid,
    Keyword,
    Vector,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[schema(min_length = 1, max_length = 4000, pattern = r"\S")]
    pub query: String,
    #[serde(default)]
    pub mode: SearchMode,
    /// How many results (1-100, default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub top_k: Option<usize>,
    /// Collection ids; empty searches every collection of the tenant.
    #[serde(default)]
    pub collections: Vec<String>,
    pub document_ids: Option<Vec<String>>,
    /// Metadata key → a scalar (equality) or `{gt, gte, lt, lte}` (numeric range).
    #[serde(default)]
    pub metadata: HashMap<String, serde_json::Value>,
    pub fusion: Option<Fusion>,
    /// One result per document (its best chunk), ranked by fusing document-level ranks.
    #[serde(default)]
    pub group_by_document: bool,
    /// Search this version of the one document in `document_ids` instead of its current one.
    #[schema(minimum = 1)]
    pub version: Option<i32>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub chunk_id: i64,
    pub document_id: String,
    pub collection_id: String,
    pub version: i32,
    pub title: String,
    pub heading_path: Vec<String>,
    pub page: Option<i32>,
    pub text: String,
    pub score: f32,
    pub keyword: Option<Component>,
    pub vector: Option<Component>,
    /// Byte ranges in `text` that match the query's words.
    pub highlights: Vec<[usize; 2]>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResponse {
    pub mode: SearchMode,
    pub results: Vec<SearchHit>,
}

/// Keyword and vector rankings of chunk keys, and the rows of the chunks they may name.
type Candidates = (Vec<Ranked>, Vec<Ranked>, HashMap<u64, ChunkHitRow>);

const MAX_TOP_K: usize = 100;
const MAX_QUERY_CHARS: usize = 4000;

/// A search query or a cached-answer question, trimmed; 1 to [`MAX_QUERY_CHARS`]
/// characters, or an error naming the request's `param`.
pub(super) fn question_text<'a>(raw: &'a str, param: &'static str) -> Result<&'a str, Error> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(format!("'{param}' must be 1 to {MAX_QUERY_CHARS} characters"), param));
    }
    Ok(text)
}

impl Knowledge {
    pub async fn search(&self, access: &TenantAccess, request: SearchRequest) -> Result<SearchResponse, Error> {
        let span = agentry_llm::trace_context::span(|| tracing::info_span!("knowledge search", agentry.mode = ?request.mode, agentry.top_k = ?request.top_k));
        tracing::Instrument::instrument(self.search_unspanned(access, request), span).await
    }

    async fn search_unspanned(&self, access: &TenantAccess, request: SearchRequest) -> Result<SearchResponse, Error> {
        require(access, Permission::ReadDocuments)?;
        let query = question_text(&request.query, "query")?;
        let top_k = request.top_k.unwrap_or(10);
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(Error::invalid(format!("'top_k' must be 1 to {MAX_TOP_K}"), "top_k"));
        }
        let fusion = request.fusion.unwrap_or_default();
        fusion.validate().map_err(|m| Error::invalid(m, "fusion"))?;
        self.require_collections(access, &request.collections).await?;
        let filter = Filter {
            tenant: access.tenant_id().to_owned(),
            collections: request.collections.clone(),
            documents: request.document_ids.clone(),
            principals: self.reader_principals(access).await?,
            metadata: metadata_conditions(&request.metadata)?,
        };
        // Fetch more than asked: chunks of versions being replaced are dropped, and grouping folds chunks into documents.
        let fetch = if request.group_by_document { top_k * 4 + 20 } else { top_k * 2 + 10 };
        let (keyword, nearest, mut rows) = match request.version {
            Some(version) => self.version_candidates(access, &request, &filter, version, query, fetch).await?,
            None => self.current_candidates(access, request.mode, query, &filter, fetch).await?,
        };
        let fused = if request.group_by_document { fuse_documents(&keyword, &nearest, &rows, &fusion, top_k) } else { hybrid::fuse(&keyword, &nearest, &fusion, top_k) };
        let highlighter = Highlighter::new(query);
        let results = fused
            .into_iter()
            .filter_map(|fused| {
                let row = rows.remove(&fused.key)?;
                let highlights = highlighter.ranges(&row.text).into_iter().map(|(a, b)| [a, b]).collect();
                Some(SearchHit {
                    chunk_id: row.id,
                    document_id: row.document_id,
                    collection_id: row.collection_id,
                    version: row.version,
                    title: row.title,
                    heading_path: serde_json::from_str(&row.heading_path).unwrap_or_default(),
                    page: row.page,
                    text: row.text,
                    score: fused.score,
                    keyword: fused.keyword,
                    vector: fused.vector,
                    highlights,
                })
            })
            .collect();
        Ok(SearchResponse { mode: request.mode, results })
    }

    /// Ranked chunks of the documents' current versions, with their rows.
    async fn current_candidates(&self, access: &TenantAccess, mode: SearchMode, query: &str, filter: &Filter, fetch: usize) -> Result<Candidates, Error> {
        let index = self.index(access.tenant_id()).await?;
        let (keyword, nearest) = self.ranked(access, &index, mode, query, filter, fetch).await?;
        let keys: Vec<i64> = keyword.iter().chain(&nearest).map(|(key, _)| *key as i64).collect();
        let rows: HashMap<u64, ChunkHitRow> = self.inner.db.visible_chunks(access.tenant_id(), &keys).await?.into_iter().map(|r| (r.id as u64, r)).collect();
        let keyword = keyword.into_iter().filter(|(key, _)| rows.contains_key(key)).collect();
        let nearest = nearest.into_iter().filter(|(key, _)| rows.contains_key(key)).collect();
        Ok((keyword, nearest, rows))
    }

    /// Ranked chunks of one version of one document, read from the database
    /// (only the current version is indexed) and ranked exactly.
    async fn version_candidates(&self, access: &TenantAccess, request: &SearchRequest, filter: &Filter, version: i32, query: &str, fetch: usize) -> Result<Candidates, Error> {
        let [id] = request.document_ids.as_deref().unwrap_or_default() else {
            return Err(Error::invalid("'version' needs exactly one document id in 'document_ids'", "version"));
        };
        let document = self.visible_document(access, id, &filter.principals).await?;
        let in_scope = filter.admits(&document.collection_id, document.metadata.as_object().unwrap_or(&serde_json::Map::new()));
        let stored = self.stored_version(id, version).await?;
        if stored.status != DocumentStatus::Succeeded {
            return Err(Error::Conflict(format!("version {version} of document '{id}' is not searchable: it is {}", stored.status)));
        }
        if !in_scope {
            return Ok((Vec::new(), Vec::new(), HashMap::new()));
        }
        let chunks = self.inner.db.version_chunks(id, version).await?;
        let vectors: Vec<Vec<f32>> = chunks.iter().map(|c| super::ingest::from_bytes(&c.embedding)).collect();
        let passages: Vec<Passage<'_>> = chunks.iter().zip(&vectors).map(|(c, vector)| Passage { key: c.id as u64, title: &document.title, text: &c.text, vector }).collect();
        let keyword = match request.mode {
            SearchMode::Vector => Vec::new(),
            _ => scan::keyword_ranking(query, &passages, fetch),
        };
        let nearest = match request.mode {
            SearchMode::Keyword => Vec::new(),
            _ => scan::vector_ranking(&self.embed_query(access, query).await?, &passages, fetch),
        };
        let rows = chunks
            .into_iter()
            .map(|c| {
                let row = ChunkHitRow {
                    id: c.id,
                    document_id: document.id.clone(),
                    collection_id: document.collection_id.clone(),
                    version,
                    ordinal: c.ordinal,
                    title: document.title.clone(),
                    text: c.text,
                    heading_path: c.heading_path,
                    page: c.page,
                };
                (c.id as u64, row)
            })
            .collect();
        Ok((keyword, nearest, rows))
    }

    /// The keyword and vector rankings the mode asks for, filtered inside
    /// the index. The keyword search runs while the query is embedded.
    async fn ranked(&self, access: &TenantAccess, index: &Index, mode: SearchMode, query: &str, filter: &Filter, fetch: usize) -> Result<(Vec<Ranked>, Vec<Ranked>), Error> {
        let keyword = async {
            match mode {
                SearchMode::Vector => Ok(Vec::new()),
                _ => Ok(index.keyword_search(query, filter, fetch).await?),
            }
        };
        let nearest = async {
            match mode {
                SearchMode::Keyword => Ok(Vec::new()),
                _ => Ok(index.vector_search(&self.embed_query(access, query).await?, filter, fetch).await?),
            }
        };
        tokio::try_join!(keyword, nearest)
    }
}

/// Fuse document-level rankings (each document at the rank of its best
/// chunk in each engine); each result is the document's chunk from the
/// engine that ranked it higher.
fn fuse_documents(keyword: &[Ranked], nearest: &[Ranked], rows: &HashMap<u64, ChunkHitRow>, fusion: &Fusion, top_k: usize) -> Vec<Fused<u64>> {
    let best_per_document = |ranking: &[Ranked]| -> (Vec<(String, f32)>, HashMap<String, u64>) {
        let mut chunk_of = HashMap::new();
        let mut documents = Vec::new();
        for (key, score) in ranking {
            let document = &rows[key].document_id;
            if !chunk_of.contains_key(document) {
                chunk_of.insert(document.clone(), *key);
                documents.push((document.clone(), *score));
            }
        }
        (documents, chunk_of)
    };
    let (keyword_documents, keyword_chunk) = best_per_document(keyword);
    let (vector_documents, vector_chunk) = best_per_document(nearest);
    hybrid::fuse(&keyword_documents, &vector_documents, fusion, top_k)
        .into_iter()
        .map(|fused| {
            let keyword_first = match (fused.keyword, fused.vector) {
                (Some(k), Some(v)) => k.rank <= v.rank,
                (k, _) => k.is_some(),
            };
            let key = if keyword_first { keyword_chunk[&fused.key] } else { vector_chunk[&fused.key] };
            Fused { key, score: fused.score, keyword: fused.keyword, vector: fused.vector }
        })
        .collect()
}

/// The request's metadata filter as index conditions.
fn metadata_conditions(filter: &HashMap<String, serde_json::Value>) -> Result<HashMap<String, MetadataCondition>, Error> {
    filter
        .iter()
        .map(|(key, value)| {
            serde_json::from_value(value.clone())
                .map(|c| (key.clone(), c))
                .map_err(|_| Error::invalid(format!("metadata filter '{key}' must be a scalar or {{gt, gte, lt, lte}}"), "metadata"))
        })
        .collect()
}
