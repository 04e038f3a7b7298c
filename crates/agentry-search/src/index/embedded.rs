//! The embedded index: one folder holding a tantivy index (BM25 over title
//! and text with English stop words and stemming; tenant, collection, document and ACL as
//! exact terms) and a usearch HNSW graph (cosine), plus the per-chunk filter
//! attributes the graph search consults. Reopening loads both from disk;
//! nothing is rebuilt or re-embedded. A commit makes the graph's changes
//! durable by appending them to a change log ([`super::change_log`]), not
//! by rewriting the graph, so committing stays as cheap at a million chunks
//! as at a thousand.
//!
//! Filters are part of each query: tantivy intersects the text query with
//! term sets, and usearch evaluates the same [`Filter`] on every candidate
//! during graph traversal. When the graph search finds fewer than `top_k`
//! visible chunks (a very selective filter), an exact scan over the visible
//! chunks answers instead, so a filter never shrinks the result.
//!
//! Why usearch for the graph: it removes vectors (documents change and are
//! deleted; hnsw_rs 0.3 has no removal), searches with a predicate during
//! traversal, and saves to and loads from one file. `bench/search` measures
//! it beside hnswlib (the reference; C++ with a Python binding) with the same
//! M and ef: recall@10 0.987 at 100k chunks (hnswlib 0.967), but hnswlib
//! answers 3.3x more unfiltered queries per second on 50k vectors; likely
//! causes are the cosine metric recomputing norms per distance and the
//! per-candidate filter callback (bench/results/search.md).
//!
//! Must not: embed text (callers pass vectors) or know about jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery, TermSetQuery};
use tantivy::schema::{Field, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Term, doc};
use usearch::{IndexOptions, MetricKind, ScalarKind};

pub use super::IndexError;
use super::change_log::{Change, ChangeLog};
use super::{Entry, Filter, IndexedChunk, Ranked, analyzer};

/// English words, lower-cased, stop words dropped, Snowball-stemmed.
const TOKENIZER: &str = "en_stem_stop";
const WRITER_HEAP_BYTES: usize = 50_000_000;
/// Weight of a title match against a text match. Every chunk of a document
/// repeats its title, and a short field's BM25 weight is high: at full
/// weight the title drowns the passage's own words (Cranfield nDCG@10
/// 0.372 at 1.0, 0.378 at 0.5, 0.358 without titles).
pub(super) const TITLE_BOOST: f32 = 0.5;
/// The HNSW graph's shape (public so benchmarks can give a baseline the same one).
pub struct GraphParameters {
    /// Links per node (hnswlib's `M`).
    pub connectivity: usize,
    /// Candidates explored while inserting (hnswlib's `ef_construction`).
    pub expansion_add: usize,
    /// Candidates explored per query (hnswlib's `ef`).
    pub expansion_search: usize,
}

pub const GRAPH: GraphParameters = GraphParameters { connectivity: 16, expansion_add: 128, expansion_search: 128 };

fn vector_error(error: impl std::fmt::Display) -> IndexError {
    IndexError::Vector(error.to_string())
}

#[derive(Clone, Copy)]
struct Fields {
    key: Field,
    tenant: Field,
    collection: Field,
    document: Field,
    acl: Field,
    title: Field,
    text: Field,
}

impl Fields {
    fn schema() -> (Schema, Self) {
        let mut builder = Schema::builder();
        let text_options =
            TextOptions::default().set_indexing_options(TextFieldIndexing::default().set_tokenizer(TOKENIZER).set_index_option(IndexRecordOption::WithFreqsAndPositions));
        let fields = Self {
            key: builder.add_u64_field("key", tantivy::schema::INDEXED | tantivy::schema::FAST),
            tenant: builder.add_text_field("tenant", STRING),
            collection: builder.add_text_field("collection", STRING),
            document: builder.add_text_field("document", STRING),
            acl: builder.add_text_field("acl", STRING),
            title: builder.add_text_field("title", text_options.clone()),
            text: builder.add_text_field("text", text_options),
        };
        (builder.build(), fields)
    }
}

/// Keyword and vector index in one folder. Cheap to share behind an `Arc`.
pub struct EmbeddedIndex {
    dir: PathBuf,
    dimensions: usize,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    vectors: RwLock<usearch::Index>,
    entries: RwLock<HashMap<u64, Entry>>,
    /// Vector-side changes since the last commit, for the change log.
    pending: Mutex<Vec<Change>>,
    log: Mutex<ChangeLog>,
}

/// Apply one change to the graph and the filter attributes.
fn apply(vectors: &usearch::Index, entries: &mut HashMap<u64, Entry>, change: &Change) -> Result<(), IndexError> {
    match change {
        Change::Add { key, entry, vector } => {
            if vectors.size() + 1 > vectors.capacity() {
                vectors.reserve((vectors.capacity() * 2).max(1024)).map_err(vector_error)?;
            }
            if entries.contains_key(key) {
                vectors.remove(*key).map_err(vector_error)?;
            }
            vectors.add(*key, vector).map_err(vector_error)?;
            entries.insert(*key, entry.clone());
        }
        Change::Remove { keys } => {
            for key in keys {
                if entries.remove(key).is_some() {
                    vectors.remove(*key).map_err(vector_error)?;
                }
            }
        }
    }
    Ok(())
}

impl EmbeddedIndex {
    /// Open the index in `dir`, creating it if missing.
    pub fn open(dir: &Path, dimensions: usize) -> Result<Self, IndexError> {
        let keyword_dir = dir.join("keyword");
        std::fs::create_dir_all(&keyword_dir)?;
        let (schema, fields) = Fields::schema();
        let directory = tantivy::directory::MmapDirectory::open(&keyword_dir)?;
        let keyword = Index::open_or_create(directory, schema)?;
        keyword.tokenizers().register(TOKENIZER, analyzer::english());
        let reader = keyword.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer = keyword.writer(WRITER_HEAP_BYTES)?;
        let options = IndexOptions {
            dimensions,
            metric: MetricKind::Cos,
            quantization: ScalarKind::F32,
            connectivity: GRAPH.connectivity,
            expansion_add: GRAPH.expansion_add,
            expansion_search: GRAPH.expansion_search,
            multi: false,
        };
        let vectors = usearch::Index::new(&options).map_err(vector_error)?;
        let vectors_path = dir.join("vectors.usearch");
        if vectors_path.exists() {
            vectors.load(path_str(&vectors_path)?).map_err(vector_error)?;
        }
        let entries_path = dir.join("entries.json");
        let mut entries = if entries_path.exists() { serde_json::from_slice(&std::fs::read(&entries_path)?)? } else { HashMap::new() };
        let (log, replay) = ChangeLog::open(dir)?;
        for change in &replay {
            apply(&vectors, &mut entries, change)?;
        }
        Ok(Self {
            dir: dir.to_owned(),
            dimensions,
            reader,
            writer: Mutex::new(writer),
            fields,
            vectors: RwLock::new(vectors),
            entries: RwLock::new(entries),
            pending: Mutex::new(Vec::new()),
            log: Mutex::new(log),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Add chunks (replacing any with the same key). Visible after [`Self::commit`].
    pub fn add(&self, chunks: &[IndexedChunk]) -> Result<(), IndexError> {
        if let Some(chunk) = chunks.iter().find(|c| c.vector.len() != self.dimensions) {
            return Err(IndexError::Dimensions { expected: self.dimensions, got: chunk.vector.len() });
        }
        let writer = self.writer.lock();
        let f = self.fields;
        for chunk in chunks {
            writer.delete_term(Term::from_field_u64(f.key, chunk.key));
            let mut document = doc!(
                f.key => chunk.key,
                f.tenant => chunk.tenant.as_str(),
                f.collection => chunk.collection.as_str(),
                f.document => chunk.document.as_str(),
                f.title => chunk.title.as_str(),
                f.text => chunk.text.as_str(),
            );
            for principal in &chunk.acl {
                document.add_text(f.acl, principal);
            }
            writer.add_document(document)?;
        }
        let changes: Vec<Change> = chunks.iter().map(|c| Change::Add { key: c.key, entry: Entry::from(c), vector: c.vector.clone() }).collect();
        self.change_vectors(changes)
    }

    /// Apply vector-side changes now and keep them for the next commit's log append.
    fn change_vectors(&self, changes: Vec<Change>) -> Result<(), IndexError> {
        let vectors = self.vectors.write();
        let mut entries = self.entries.write();
        let mut pending = self.pending.lock();
        for change in changes {
            apply(&vectors, &mut entries, &change)?;
            pending.push(change);
        }
        Ok(())
    }

    /// Remove chunks by key. Takes effect after [`Self::commit`] for keyword search, at once for vectors.
    pub fn remove(&self, keys: &[u64]) -> Result<(), IndexError> {
        let writer = self.writer.lock();
        for &key in keys {
            writer.delete_term(Term::from_field_u64(self.fields.key, key));
        }
        self.change_vectors(vec![Change::Remove { keys: keys.to_vec() }])
    }

    /// Make writes durable and visible: commit tantivy, then append the
    /// vector-side changes to the change log (synced); every
    /// [`super::change_log::CHECKPOINT_RECORDS`] changes, write the graph and the
    /// filter attributes out whole and empty the log.
    pub fn commit(&self) -> Result<(), IndexError> {
        let mut writer = self.writer.lock();
        writer.commit()?;
        self.reader.reload()?;
        let changes = std::mem::take(&mut *self.pending.lock());
        let mut log = self.log.lock();
        log.append(&changes)?;
        if log.wants_checkpoint() {
            self.checkpoint()?;
            log.clear()?;
        }
        Ok(())
    }

    /// Write the graph and the filter attributes to temporary files and rename them into place.
    fn checkpoint(&self) -> Result<(), IndexError> {
        let vectors = self.vectors.read();
        let entries = self.entries.read();
        let vectors_tmp = self.dir.join("vectors.usearch.tmp");
        vectors.save(path_str(&vectors_tmp)?).map_err(vector_error)?;
        let entries_tmp = self.dir.join("entries.json.tmp");
        std::fs::write(&entries_tmp, serde_json::to_vec(&*entries)?)?;
        std::fs::rename(&vectors_tmp, self.dir.join("vectors.usearch"))?;
        std::fs::rename(&entries_tmp, self.dir.join("entries.json"))?;
        Ok(())
    }

    /// BM25 over title and text, best first, restricted by `filter`.
    pub fn keyword_search(&self, query: &str, filter: &Filter, top_k: usize) -> Result<Vec<Ranked>, IndexError> {
        // Bag of words, as BM25 means it: every analysed query word is an
        // optional term in title and text. (tantivy's QueryParser would read
        // user text as query syntax: "non-equilibrium" becomes a phrase,
        // "-x" an exclusion.) Without a searchable word, nothing matches.
        let words = analyzer::words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let f = self.fields;
        let mut terms: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(words.len() * 2);
        for word in &words {
            terms.push((Occur::Should, Box::new(TermQuery::new(Term::from_field_text(f.text, word), IndexRecordOption::WithFreqs))));
            let title = TermQuery::new(Term::from_field_text(f.title, word), IndexRecordOption::WithFreqs);
            terms.push((Occur::Should, Box::new(BoostQuery::new(Box::new(title), TITLE_BOOST))));
        }
        let query = BooleanQuery::new(vec![(Occur::Must, Box::new(BooleanQuery::new(terms))), (Occur::Must, Box::new(ConstScoreQuery::new(self.filter_query(filter), 0.0)))]);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(top_k.max(1)).order_by_score())?;
        // Keys come from the fast-field column: no stored document is read.
        let mut columns = HashMap::new();
        let mut ranked = Vec::with_capacity(top.len());
        for (score, address) in top {
            let column = match columns.entry(address.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(searcher.segment_reader(address.segment_ord).fast_fields().u64("key")?),
            };
            if let Some(key) = column.first(address.doc_id) {
                ranked.push((key, score));
            }
        }
        ranked.truncate(top_k);
        Ok(ranked)
    }

    fn filter_query(&self, filter: &Filter) -> Box<dyn Query> {
        let f = self.fields;
        let terms = |field: Field, values: &[String]| -> Box<dyn Query> { Box::new(TermSetQuery::new(values.iter().map(|v| Term::from_field_text(field, v)))) };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(TermQuery::new(Term::from_field_text(f.tenant, &filter.tenant), IndexRecordOption::Basic)))];
        if !filter.collections.is_empty() {
            clauses.push((Occur::Must, terms(f.collection, &filter.collections)));
        }
        if let Some(documents) = &filter.documents {
            clauses.push((Occur::Must, terms(f.document, documents)));
        }
        clauses.push((Occur::Must, terms(f.acl, &filter.principals)));
        if !filter.metadata.is_empty() {
            // Metadata conditions (ranges included) are evaluated on the same
            // attributes the vector side uses, then applied as a key set.
            let keys: Vec<Term> = self.entries.read().iter().filter(|(_, e)| filter.allows(e)).map(|(k, _)| Term::from_field_u64(f.key, *k)).collect();
            clauses.push((Occur::Must, Box::new(TermSetQuery::new(keys))));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Nearest chunks by cosine similarity, best first, restricted by `filter`.
    pub fn vector_search(&self, query: &[f32], filter: &Filter, top_k: usize) -> Result<Vec<Ranked>, IndexError> {
        if query.len() != self.dimensions {
            return Err(IndexError::Dimensions { expected: self.dimensions, got: query.len() });
        }
        let vectors = self.vectors.read();
        let entries = self.entries.read();
        let matches = vectors.filtered_search(query, top_k, |key| entries.get(&key).is_some_and(|e| filter.allows(e))).map_err(vector_error)?;
        if matches.keys.len() >= top_k || matches.keys.len() >= entries.len() {
            return Ok(matches.keys.into_iter().zip(matches.distances).map(|(k, d)| (k, 1.0 - d)).collect());
        }
        // The graph ran out of visible neighbours: scan the visible chunks exactly.
        let mut buffer = vec![0f32; self.dimensions];
        let mut scored = Vec::new();
        for (&key, _) in entries.iter().filter(|(_, e)| filter.allows(e)) {
            if vectors.get(key, &mut buffer).map_err(vector_error)? > 0 {
                scored.push((key, super::scan::cosine(query, &buffer)));
            }
        }
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.truncate(top_k);
        Ok(scored)
    }
}

fn path_str(path: &Path) -> Result<&str, IndexError> {
    path.to_str().ok_or_else(|| IndexError::Vector(format!("index path is not UTF-8: {}", path.display())))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::index::MetadataCondition;

    fn chunk(key: u64, tenant: &str, document: &str, text: &str, acl: &[&str], vector: [f32; 3]) -> IndexedChunk {
        IndexedChunk {
            key,
            tenant: tenant.into(),
            collection: "docs".into(),
            document: document.into(),
            title: String::new(),
            text: text.into(),
            acl: acl.iter().map(|a| a.to_string()).collect(),
            metadata: serde_json::Map::new(),
            vector: vector.to_vec(),
        }
    }

    fn filter(tenant: &str, principals: &[&str]) -> Filter {
        Filter { tenant: tenant.into(), principals: principals.iter().map(|p| p.to_string()).collect(), ..Filter::default() }
    }

    fn keys(ranked: &[Ranked]) -> Vec<u64> {
        ranked.iter().map(|r| r.0).collect()
    }

    fn open(dir: &Path) -> EmbeddedIndex {
        EmbeddedIndex::open(dir, 3).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sample(index: &EmbeddedIndex) {
        let chunks = [
            chunk(1, "t1", "d1", "Wings generate lift in a slipstream", &["*"], [1.0, 0.0, 0.0]),
            chunk(2, "t1", "d2", "Private notes about lifting wings", &["user:alice"], [0.9, 0.1, 0.0]),
            chunk(3, "t2", "d3", "Another tenant writes about wings", &["*"], [1.0, 0.0, 0.1]),
            chunk(4, "t1", "d4", "Boundary layers and heat transfer", &["*"], [0.0, 1.0, 0.0]),
        ];
        index.add(&chunks).unwrap_or_else(|e| panic!("{e}"));
        index.commit().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn tenants_and_acls_are_applied_inside_both_searches() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let index = open(dir.path());
        sample(&index);
        let everyone = filter("t1", &["*"]);
        // Stemming: "lift" finds "lifting" too, but only where the reader may look.
        assert_eq!(keys(&index.keyword_search("lift", &everyone, 10).unwrap_or_default()), [1]);
        let alice = filter("t1", &["*", "user:alice"]);
        let mut found = keys(&index.keyword_search("lift wings", &alice, 10).unwrap_or_default());
        found.sort_unstable();
        assert_eq!(found, [1, 2]);
        let near = index.vector_search(&[1.0, 0.0, 0.0], &everyone, 10).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&near), [1, 4], "only t1's visible chunks, best first");
        assert!((near[0].1 - 1.0).abs() < 1e-5);
        assert_eq!(keys(&index.vector_search(&[1.0, 0.0, 0.0], &alice, 2).unwrap_or_default()), [1, 2]);
    }

    #[test]
    fn collection_document_and_metadata_filters() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let index = open(dir.path());
        let mut chunks = Vec::new();
        for key in 1..=20_u64 {
            let mut c = chunk(key, "t", &format!("d{key}"), "wing flutter analysis", &["*"], [1.0, key as f32 / 20.0, 0.0]);
            c.metadata.insert("year".into(), json!(2000 + key));
            c.metadata.insert("kind".into(), json!(if key % 2 == 0 { "report" } else { "note" }));
            c.collection = if key <= 10 { "a".into() } else { "b".into() };
            chunks.push(c);
        }
        index.add(&chunks).unwrap_or_else(|e| panic!("{e}"));
        index.commit().unwrap_or_else(|e| panic!("{e}"));
        let mut f = filter("t", &["*"]);
        f.collections = vec!["b".into()];
        f.metadata.insert("year".into(), MetadataCondition::Range { gt: None, gte: Some(2015.0), lt: None, lte: Some(2017.0) });
        f.metadata.insert("kind".into(), MetadataCondition::Equals(json!("note")));
        let mut kw = keys(&index.keyword_search("wing", &f, 10).unwrap_or_default());
        kw.sort_unstable();
        assert_eq!(kw, [15, 17]);
        let mut vec = keys(&index.vector_search(&[1.0, 0.5, 0.0], &f, 10).unwrap_or_default());
        vec.sort_unstable();
        assert_eq!(vec, [15, 17], "a selective filter still yields every visible chunk");
        let mut by_document = filter("t", &["*"]);
        by_document.documents = Some(vec!["d3".into()]);
        assert_eq!(keys(&index.keyword_search("wing", &by_document, 10).unwrap_or_default()), [3]);
        assert_eq!(keys(&index.vector_search(&[1.0, 0.0, 0.0], &by_document, 5).unwrap_or_default()), [3]);
    }

    #[test]
    fn reopens_from_disk_and_removes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let index = open(dir.path());
            sample(&index);
        }
        let index = open(dir.path());
        assert_eq!(index.len(), 4);
        let everyone = filter("t1", &["*"]);
        assert_eq!(keys(&index.keyword_search("heat", &everyone, 10).unwrap_or_default()), [4]);
        assert_eq!(keys(&index.vector_search(&[0.0, 1.0, 0.0], &everyone, 1).unwrap_or_default()), [4]);
        index.remove(&[4]).unwrap_or_else(|e| panic!("{e}"));
        index.commit().unwrap_or_else(|e| panic!("{e}"));
        assert!(index.keyword_search("heat", &everyone, 10).unwrap_or_default().is_empty());
        assert_eq!(keys(&index.vector_search(&[0.0, 1.0, 0.0], &everyone, 5).unwrap_or_default()), [1]);
        // Re-adding a key replaces it rather than duplicating it.
        index.add(&[chunk(1, "t1", "d1", "replaced text about heat", &["*"], [0.0, 1.0, 0.0])]).unwrap_or_else(|e| panic!("{e}"));
        index.commit().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&index.keyword_search("heat", &everyone, 10).unwrap_or_default()), [1]);
        assert!(index.keyword_search("slipstream", &everyone, 10).unwrap_or_default().is_empty());
        assert_eq!(index.len(), 3);
    }

    #[test]
    fn a_checkpoint_writes_the_graph_whole_and_later_commits_replay_over_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let many = crate::index::change_log::CHECKPOINT_RECORDS as u64 + 10;
        {
            let index = open(dir.path());
            let chunks: Vec<IndexedChunk> = (0..many).map(|k| chunk(k, "t1", "d1", "bulk", &["*"], [1.0, k as f32, 0.5])).collect();
            index.add(&chunks).unwrap_or_else(|e| panic!("{e}"));
            index.commit().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(std::fs::metadata(dir.path().join("changes.jsonl")).map(|m| m.len()).unwrap_or(0), 0, "the checkpoint emptied the log");
            index.remove(&[0, 1]).unwrap_or_else(|e| panic!("{e}"));
            index.add(&[chunk(many, "t1", "d2", "late", &["*"], [0.0, 0.0, 1.0])]).unwrap_or_else(|e| panic!("{e}"));
            index.commit().unwrap_or_else(|e| panic!("{e}"));
        }
        let index = open(dir.path());
        assert_eq!(index.len(), many as usize - 1);
        let everyone = filter("t1", &["*"]);
        assert_eq!(keys(&index.vector_search(&[0.0, 0.0, 1.0], &everyone, 1).unwrap_or_default()), [many]);
        let documents = Filter { documents: Some(vec!["d1".into()]), ..everyone };
        assert!(index.vector_search(&[1.0, 0.0, 0.5], &documents, 3).unwrap_or_default().iter().all(|(k, _)| *k > 1), "removed after the checkpoint");
    }

    #[test]
    fn highlights_and_bad_input() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let index = open(dir.path());
        let text = "Lifting wings: the wing lifts.";
        let ranges = analyzer::Highlighter::new("lift").ranges(text);
        assert_eq!(ranges.iter().map(|&(a, b)| &text[a..b]).collect::<Vec<_>>(), ["Lifting", "lifts"]);
        let error = index.add(&[chunk(9, "t", "d", "x", &["*"], [1.0, 0.0, 0.0]).clone()].map(|mut c| {
            c.vector.push(0.0);
            c
        }));
        assert!(matches!(error, Err(IndexError::Dimensions { expected: 3, got: 4 })));
        // Query syntax in user text is not an error.
        assert!(index.keyword_search("wings AND (\"unclosed", &filter("t", &["*"]), 5).is_ok());
    }
}
