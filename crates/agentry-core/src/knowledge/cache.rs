//! The knowledge base's semantic answer cache: answers to questions, found
//! again when a new question's embedding is close enough (cosine at least
//! [`CacheSettings::threshold`]) to one already answered in the same
//! [`CacheScope`] — tenant, collections, the reader's ACL fingerprint and
//! the model. Entries live in this process (a bounded list per scope, with a
//! TTL); the question of whether an entry is still true lives in [`Coord`].
//!
//! Why generation counters: every replica keeps its own entries, but a
//! document change must retire them everywhere. Broadcasting deletes would
//! lose the ones sent while a replica is disconnected; instead, one counter
//! per (tenant, collection) and one per tenant (for "every collection"
//! scopes) are bumped by [`SemanticCache::invalidate`], each entry records
//! the counters it was answered under, and a lookup serves an entry only
//! while they are all unchanged — one Coord round trip per lookup. The
//! counters are read at lookup, before the answer is computed, and travel
//! in the [`Ticket`] to [`SemanticCache::store`], so an invalidation racing
//! with the computation leaves a stale entry, never a wrongly current one.
//! A counter is created holding the wall clock in milliseconds, not 0: one
//! that expires and is created again starts above every value it held, so
//! an old entry cannot match it again, and 0 can mean "absent".
//!
//! While Redis is unreachable, invalidations reach only this replica: lookups
//! bypass the cache, and an invalidation drops every entry kept here. Other
//! replicas may serve what they stored before the outage for up to the TTL.
//!
//! Must not: embed, search or generate (the caller does, then calls
//! [`SemanticCache::store`]); decide who may read a document beyond
//! [`AccessList::principals`]; serve an entry outside the scope it was stored in.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_db::{Db, DbError};
use moka::ops::compute::Op;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::AccessList;
use crate::coord::Coord;
use crate::identity::now_ms;

/// Lifetime of a generation counter; far beyond any entry's TTL, so expiry
/// (which retires every entry recorded under it) is rare.
const GENERATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// moka refuses idle times beyond 1000 years; no TTL needs more than one.
const MAX_IDLE: Duration = Duration::from_secs(365 * 24 * 3600);
const GENERATION_PREFIX: &str = "agentry:semcache:gen:";

/// Operator settings of the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    pub enabled: bool,
    /// Least cosine similarity between two questions for one's answer to serve the other.
    pub threshold: f32,
    /// How long an answer is served at most, even when no document changes.
    pub ttl: Duration,
    /// Entries kept per scope; the oldest goes first.
    pub max_entries_per_scope: usize,
    /// Memory budget of all entries (vectors, answers, citations); least recently used scopes go first.
    pub max_bytes: u64,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self { enabled: true, threshold: 0.95, ttl: Duration::from_secs(3600), max_entries_per_scope: 512, max_bytes: 64 << 20 }
    }
}

/// Who asked what of which documents: answers are shared only within one scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheScope {
    key: String,
    generation_keys: Vec<String>,
}

impl CacheScope {
    /// `collections` in any order, duplicates allowed; empty means every
    /// collection of the tenant. `acl_fingerprint` comes from [`acl_fingerprint`].
    pub fn new(tenant: &str, collections: &[String], acl_fingerprint: &str, model: &str, context: &str) -> Self {
        let collections: Vec<&String> = collections.iter().collect::<BTreeSet<_>>().into_iter().collect();
        let parts = serde_json::json!([tenant, collections, acl_fingerprint, model, context]).to_string();
        let generation_keys = if collections.is_empty() { vec![tenant_generation(tenant)] } else { collections.iter().map(|c| collection_generation(tenant, c)).collect() };
        Self { key: hex::encode(Sha256::digest(parts)), generation_keys }
    }

    /// sha256 hex of the scope's parts.
    pub fn key(&self) -> &str {
        &self.key
    }
}

fn tenant_generation(tenant: &str) -> String {
    format!("{GENERATION_PREFIX}{}", serde_json::json!([tenant]))
}

fn collection_generation(tenant: &str, collection: &str) -> String {
    format!("{GENERATION_PREFIX}{}", serde_json::json!([tenant, collection]))
}

/// A stored answer, as computed for the first question that asked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CachedAnswer {
    pub answer: String,
    /// As stored with the answer (an array, empty when none were given).
    #[schema(value_type = Vec<Object>)]
    pub citations: serde_json::Value,
    pub model: String,
    /// When the answer was computed (Unix ms), so callers can show its age.
    pub created_at_ms: i64,
}

/// What a miss hands to [`SemanticCache::store`]: the scope, the question's
/// vector, and the generations read before the answer was computed. Empty
/// (store does nothing) when the cache is disabled, degraded, or the vector is zero.
#[derive(Debug)]
#[must_use = "pass it to SemanticCache::store with the computed answer"]
pub struct Ticket {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    scope_key: String,
    vector: Vec<f32>,
    generations: Vec<i64>,
}

impl Ticket {
    fn empty() -> Self {
        Self { pending: None }
    }
}

/// The result of [`SemanticCache::lookup`].
#[derive(Debug)]
pub enum Lookup {
    Hit(CachedAnswer),
    Miss(Ticket),
}

struct Entry {
    /// Unit length, so cosine is a dot product.
    vector: Vec<f32>,
    answer: CachedAnswer,
    /// Values of the scope's generation keys when the answer was computed.
    generations: Vec<i64>,
    expires: Instant,
    /// Approximate memory, for the cache's weigher.
    bytes: u32,
}

impl Entry {
    /// Expired, or recorded under a generation that has moved on (counters only grow).
    fn dead(&self, generations: &[i64], now: Instant) -> bool {
        self.expires <= now || self.generations.iter().zip(generations).any(|(recorded, current)| recorded < current)
    }
}

/// A scope's entries, oldest first; replaced whole on every change.
type Entries = Arc<Vec<Arc<Entry>>>;

/// The cache. Cheap to clone; clones share entries.
#[derive(Clone)]
pub struct SemanticCache {
    coord: Coord,
    settings: CacheSettings,
    scopes: moka::sync::Cache<String, Entries>,
}

impl SemanticCache {
    pub fn new(coord: Coord, settings: CacheSettings) -> Self {
        let scopes = moka::sync::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|_: &String, entries: &Entries| entries.iter().fold(0u32, |sum, e| sum.saturating_add(e.bytes)))
            // A scope idle for a TTL holds only expired entries.
            .time_to_idle(settings.ttl.clamp(Duration::from_millis(1), MAX_IDLE))
            .build();
        Self { coord, settings, scopes }
    }

    pub fn settings(&self) -> &CacheSettings {
        &self.settings
    }

    /// The answer stored in `scope` whose question is most similar to
    /// `vector`, if at least the threshold, unexpired and still current; else
    /// a ticket to [`Self::store`] the answer the caller computes.
    pub async fn lookup(&self, scope: &CacheScope, vector: &[f32]) -> Lookup {
        if !self.settings.enabled {
            return Lookup::Miss(Ticket::empty());
        }
        let outcome = self.find(scope, vector).await;
        let result = if matches!(outcome, Lookup::Hit(_)) { "hit" } else { "miss" };
        metrics::counter!("cache_requests_total", "cache" => "answer", "result" => result).increment(1);
        outcome
    }

    async fn find(&self, scope: &CacheScope, vector: &[f32]) -> Lookup {
        let Some(vector) = unit(vector) else { return Lookup::Miss(Ticket::empty()) };
        if self.coord.degraded() {
            return Lookup::Miss(Ticket::empty());
        }
        let Some(generations) = self.generations(&scope.generation_keys).await else { return Lookup::Miss(Ticket::empty()) };
        let now = Instant::now();
        if let Some(entries) = self.scopes.get(&scope.key) {
            let best = entries
                .iter()
                .filter(|e| e.expires > now && e.generations == generations)
                .map(|e| (cosine(&e.vector, &vector), e))
                .filter(|(similarity, _)| *similarity >= self.settings.threshold)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, entry)) = best {
                return Lookup::Hit(entry.answer.clone());
            }
            if entries.iter().any(|e| e.dead(&generations, now)) {
                self.update(&scope.key, |entries| entries.retain(|e| !e.dead(&generations, now)));
            }
        }
        Lookup::Miss(Ticket { pending: Some(Pending { scope_key: scope.key.clone(), vector, generations }) })
    }

    /// Keep `answer` for the question of a missed lookup.
    pub fn store(&self, ticket: Ticket, answer: CachedAnswer) {
        let Some(pending) = ticket.pending else { return };
        let max = self.settings.max_entries_per_scope;
        if max == 0 {
            return;
        }
        let bytes = 128 + 4 * pending.vector.len() + answer.answer.len() + answer.model.len() + answer.citations.to_string().len();
        let entry = Arc::new(Entry {
            vector: pending.vector,
            answer,
            generations: pending.generations,
            expires: Instant::now() + self.settings.ttl,
            bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        });
        self.update(&pending.scope_key, |entries| {
            let now = Instant::now();
            entries.retain(|e| !e.dead(&entry.generations, now));
            entries.push(entry);
            let excess = entries.len().saturating_sub(max);
            entries.drain(..excess);
        });
    }

    /// Replace a scope's entries with `change` applied, atomically for that scope.
    fn update(&self, scope_key: &str, change: impl FnOnce(&mut Vec<Arc<Entry>>)) {
        self.scopes.entry_by_ref(scope_key).and_compute_with(|current| {
            let mut entries = current.map(|c| c.into_value().as_ref().clone()).unwrap_or_default();
            change(&mut entries);
            if entries.is_empty() { Op::Remove } else { Op::Put(Arc::new(entries)) }
        });
    }

    /// A document of `collection` changed (added, new version, deleted, or
    /// the collection itself deleted): retire every answer that could have used it,
    /// on every replica. Done even when disabled here, for replicas where it is not.
    pub async fn invalidate(&self, tenant: &str, collection: &str) {
        metrics::counter!("semantic_cache_invalidations_total").increment(1);
        let keys = [collection_generation(tenant, collection), tenant_generation(tenant)];
        let after = self.coord.adjust(&keys, 1).await;
        let absent = absent(&keys, &after);
        if !absent.is_empty() {
            // Created after the bump missed them: bump again, or a lookup that
            // created them meanwhile would stay current.
            self.create(&absent).await;
            self.coord.adjust(&absent, 1).await;
        }
        if self.coord.degraded() {
            self.scopes.invalidate_all();
        }
    }

    /// Current values of `keys`, creating absent ones; `None` when one cannot be read.
    async fn generations(&self, keys: &[String]) -> Option<Vec<i64>> {
        let mut values = self.coord.adjust(keys, 0).await;
        let absent = absent(keys, &values);
        if !absent.is_empty() {
            self.create(&absent).await;
            values = self.coord.adjust(keys, 0).await;
        }
        values.iter().all(|v| *v > 0).then_some(values)
    }

    async fn create(&self, keys: &[String]) {
        let now = now_ms();
        for key in keys {
            self.coord.seed(key, now, GENERATION_TTL).await;
        }
    }
}

/// The keys whose counter read 0 (absent).
fn absent(keys: &[String], values: &[i64]) -> Vec<String> {
    keys.iter().zip(values).filter(|(_, v)| **v == 0).map(|(k, _)| k.clone()).collect()
}

/// `vector` scaled to unit length; `None` for a zero or non-finite vector.
fn unit(vector: &[f32]) -> Option<Vec<f32>> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    (norm.is_finite() && norm > 0.0).then(|| vector.iter().map(|x| x / norm).collect())
}

/// Cosine of two unit vectors; never similar when their dimensions differ.
fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::NEG_INFINITY;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Identifies what a reader may see in `collections` (every collection of
/// the tenant when empty): sha256 hex of the reader's principals that occur
/// in those documents' ACLs (plus `*`). Readers who see exactly the same
/// documents share it; readers who see different ones do not.
pub async fn acl_fingerprint(db: &Db, tenant: &str, collections: &[String], reader_principals: &[String]) -> Result<String, DbError> {
    let mut granted: BTreeSet<String> = BTreeSet::from(["*".to_owned()]);
    for acl in db.distinct_document_acls(tenant, collections).await? {
        // As when documents are shown: an unreadable ACL grants no one.
        granted.extend(AccessList::stored(&acl, "(fingerprint)").principals());
    }
    let shared: BTreeSet<&String> = reader_principals.iter().filter(|p| granted.contains(*p)).collect();
    Ok(hex::encode(Sha256::digest(serde_json::json!(shared).to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_stored_acl_grants_no_one() {
        assert!(AccessList::stored("{\"users\": 42", "d1").principals().is_empty());
        assert_eq!(AccessList::stored("{}", "d1").principals(), vec!["*".to_owned()]);
        assert_eq!(AccessList::stored("{\"users\": [\"u1\"]}", "d1").principals(), vec!["user:u1".to_owned()]);
    }
    use agentry_db::identity::TenantRow;
    use agentry_db::knowledge::{CollectionRow, DocumentRow, JobRow, NewVersion, VersionRow};
    use agentry_types::{DocumentStatus, JobKind, JobStatus};

    const MODEL: &str = "mock-chat";

    fn cache(ttl: Duration) -> SemanticCache {
        SemanticCache::new(Coord::local(), CacheSettings { ttl, ..CacheSettings::default() })
    }

    fn scope(tenant: &str, collections: &[&str], fingerprint: &str, model: &str) -> CacheScope {
        let collections: Vec<String> = collections.iter().map(|c| (*c).to_owned()).collect();
        CacheScope::new(tenant, &collections, fingerprint, model, "")
    }

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer { answer: text.into(), citations: serde_json::json!([{ "document_id": "d1" }]), model: MODEL.into(), created_at_ms: now_ms() }
    }

    /// Miss, then store `text` as the answer.
    async fn fill(cache: &SemanticCache, scope: &CacheScope, vector: &[f32], text: &str) {
        match cache.lookup(scope, vector).await {
            Lookup::Miss(ticket) => cache.store(ticket, answer(text)),
            Lookup::Hit(hit) => panic!("expected a miss, got {hit:?}"),
        }
    }

    async fn ask(cache: &SemanticCache, scope: &CacheScope, vector: &[f32]) -> Option<String> {
        match cache.lookup(scope, vector).await {
            Lookup::Hit(hit) => Some(hit.answer),
            Lookup::Miss(_) => None,
        }
    }

    #[tokio::test]
    async fn serves_the_most_similar_answer_above_the_threshold() {
        let cache = cache(Duration::from_secs(60));
        let s = scope("t1", &["c1"], "fp", MODEL);
        fill(&cache, &s, &[1.0, 0.0, 0.0], "x").await;
        fill(&cache, &s, &[0.0, 2.0, 0.0], "y").await;
        // cos ≈ 0.995 and 0.999: hits, whatever the vectors' lengths.
        assert_eq!(ask(&cache, &s, &[3.0, 0.3, 0.0]).await.as_deref(), Some("x"));
        assert_eq!(ask(&cache, &s, &[0.05, 1.0, 0.0]).await.as_deref(), Some("y"));
        // cos ≈ 0.89: below 0.95.
        assert_eq!(ask(&cache, &s, &[1.0, 0.5, 0.0]).await, None);
        assert_eq!(ask(&cache, &s, &[0.0, 0.0, 0.0]).await, None);
        assert_eq!(ask(&cache, &s, &[1.0, 0.0]).await, None, "other dimensions never match");
    }

    #[tokio::test]
    async fn answers_stay_within_their_scope() {
        let cache = cache(Duration::from_secs(60));
        let v = [0.0, 1.0];
        fill(&cache, &scope("t1", &["c1", "c2"], "fp", MODEL), &v, "x").await;
        assert_eq!(ask(&cache, &scope("t1", &["c2", "c1", "c2"], "fp", MODEL), &v).await.as_deref(), Some("x"), "order and duplicates do not matter");
        for other in [
            scope("t2", &["c1", "c2"], "fp", MODEL),
            scope("t1", &["c1"], "fp", MODEL),
            scope("t1", &[], "fp", MODEL),
            scope("t1", &["c1", "c2"], "other-fp", MODEL),
            scope("t1", &["c1", "c2"], "fp", "other-model"),
        ] {
            assert_eq!(ask(&cache, &other, &v).await, None, "{other:?}");
        }
    }

    #[tokio::test]
    async fn invalidating_a_collection_retires_the_answers_that_used_it() {
        let cache = cache(Duration::from_secs(60));
        let v = [1.0, 1.0];
        let (one, two, both, all) = (scope("t1", &["c1"], "fp", MODEL), scope("t1", &["c2"], "fp", MODEL), scope("t1", &["c1", "c2"], "fp", MODEL), scope("t1", &[], "fp", MODEL));
        let other_tenant = scope("t2", &["c1"], "fp", MODEL);
        for s in [&one, &two, &both, &all, &other_tenant] {
            fill(&cache, s, &v, "x").await;
        }
        cache.invalidate("t1", "c1").await;
        for s in [&one, &both, &all] {
            assert_eq!(ask(&cache, s, &v).await, None, "{s:?}");
        }
        assert_eq!(ask(&cache, &two, &v).await.as_deref(), Some("x"));
        assert_eq!(ask(&cache, &other_tenant, &v).await.as_deref(), Some("x"));
        // Answers computed after the change are served again.
        fill(&cache, &one, &v, "y").await;
        assert_eq!(ask(&cache, &one, &v).await.as_deref(), Some("y"));
    }

    #[tokio::test]
    async fn an_invalidation_during_the_computation_leaves_the_answer_stale() {
        let cache = cache(Duration::from_secs(60));
        let s = scope("t1", &["c1"], "fp", MODEL);
        let Lookup::Miss(ticket) = cache.lookup(&s, &[1.0]).await else { panic!("expected a miss") };
        cache.invalidate("t1", "c1").await;
        cache.store(ticket, answer("computed from the old documents"));
        assert_eq!(ask(&cache, &s, &[1.0]).await, None);
    }

    #[tokio::test]
    async fn answers_expire_after_the_ttl() {
        let cache = cache(Duration::from_millis(100));
        let s = scope("t1", &["c1"], "fp", MODEL);
        fill(&cache, &s, &[1.0], "x").await;
        assert_eq!(ask(&cache, &s, &[1.0]).await.as_deref(), Some("x"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(ask(&cache, &s, &[1.0]).await, None);
    }

    #[tokio::test]
    async fn keeps_the_newest_entries_of_a_scope() {
        let settings = CacheSettings { max_entries_per_scope: 2, ..CacheSettings::default() };
        let cache = SemanticCache::new(Coord::local(), settings);
        let s = scope("t1", &["c1"], "fp", MODEL);
        for (vector, text) in [([1.0, 0.0, 0.0], "x"), ([0.0, 1.0, 0.0], "y"), ([0.0, 0.0, 1.0], "z")] {
            fill(&cache, &s, &vector, text).await;
        }
        assert_eq!(ask(&cache, &s, &[1.0, 0.0, 0.0]).await, None);
        assert_eq!(ask(&cache, &s, &[0.0, 1.0, 0.0]).await.as_deref(), Some("y"));
        assert_eq!(ask(&cache, &s, &[0.0, 0.0, 1.0]).await.as_deref(), Some("z"));
    }

    #[tokio::test]
    async fn a_disabled_cache_stores_nothing() {
        let cache = SemanticCache::new(Coord::local(), CacheSettings { enabled: false, ..CacheSettings::default() });
        let s = scope("t1", &["c1"], "fp", MODEL);
        let Lookup::Miss(ticket) = cache.lookup(&s, &[1.0]).await else { panic!("expected a miss") };
        cache.store(ticket, answer("x"));
        assert_eq!(ask(&cache, &s, &[1.0]).await, None);
    }

    fn redis_url() -> Option<String> {
        match std::env::var("TEST_AGENTRY_REDIS_URL") {
            Ok(url) => Some(url),
            Err(_) => {
                assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_REDIS_URL must be set in CI (scripts/test sets it)");
                eprintln!("TEST_AGENTRY_REDIS_URL is not set: skipping the Redis test (run scripts/test)");
                None
            }
        }
    }

    async fn connected(url: &str) -> Coord {
        let coord = Coord::redis(url, Duration::from_secs(2)).unwrap();
        for _ in 0..100 {
            if coord.mode() == "redis" {
                return coord;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("cannot reach Redis at {url}");
    }

    #[tokio::test]
    async fn an_invalidation_on_one_replica_reaches_the_others_through_redis() {
        let Some(url) = redis_url() else { return };
        let first = SemanticCache::new(connected(&url).await, CacheSettings::default());
        let second = SemanticCache::new(connected(&url).await, CacheSettings::default());
        let tenant = uuid::Uuid::new_v4().to_string();
        let (one, two) = (scope(&tenant, &["c1"], "fp", MODEL), scope(&tenant, &["c2"], "fp", MODEL));
        for (cache, s) in [(&first, &one), (&second, &one), (&second, &two)] {
            fill(cache, s, &[1.0], "x").await;
        }
        assert_eq!(ask(&second, &one, &[1.0]).await.as_deref(), Some("x"));
        first.invalidate(&tenant, "c1").await;
        assert_eq!(ask(&second, &one, &[1.0]).await, None);
        assert_eq!(ask(&first, &one, &[1.0]).await, None);
        assert_eq!(ask(&second, &two, &[1.0]).await.as_deref(), Some("x"));
    }

    async fn add_document(db: &Db, tenant: &str, collection: &str, acl: &str) {
        let id = uuid::Uuid::now_v7().to_string();
        let document = DocumentRow {
            id: id.clone(),
            tenant_id: tenant.into(),
            collection_id: collection.into(),
            title: "t".into(),
            source: "t.txt".into(),
            metadata: "{}".into(),
            acl: acl.into(),
            current_version: None,
            latest_version: 1,
            status: DocumentStatus::Queued,
            error: None,
            created_by: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            summary: None,
        };
        let version = VersionRow {
            document_id: id.clone(),
            version: 1,
            content_hash: Some("h".into()),
            format: Some("txt".into()),
            size_bytes: 1,
            source_url: None,
            status: DocumentStatus::Queued,
            error: None,
            chunk_count: 0,
            created_at_ms: 1,
            summary: None,
            summary_status: None,
            summary_error: None,
            origin: "upload".into(),
            connector: None,
            schedule_id: None,
            collected_by: None,
            discovered_from: None,
            fetched_at_ms: None,
            parent_version: None,
            quality_check: None,
        };
        let job = JobRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.into(),
            document_id: id,
            version: 1,
            status: JobStatus::Queued,
            attempts: 0,
            run_after_ms: 1,
            error: None,
            created_at_ms: 1,
            updated_at_ms: 1,
            kind: JobKind::Index,
            owner: None,
            max_attempts: 5,
            claims: 0,
        };
        db.insert_document(&document, NewVersion { version: &version, content: Some(b"x"), job: &job }).await.unwrap();
    }

    #[tokio::test]
    async fn readers_who_see_the_same_documents_share_a_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        for db in agentry_db::test_support::test_databases(dir.path()).await {
            db.migrate().await.unwrap();
            db.insert_tenant(&TenantRow { id: "t1".into(), slug: "t1".into(), name: "T1".into(), mfa_required: false, created_at_ms: 1 }).await.unwrap();
            for c in ["c1", "c2", "c3"] {
                let row = CollectionRow {
                    id: c.into(),
                    tenant_id: "t1".into(),
                    name: c.into(),
                    description: String::new(),
                    chunk_max_tokens: 256,
                    chunk_overlap_tokens: 0,
                    created_at_ms: 1,
                    updated_at_ms: 1,
                    quality: "{}".into(),
                };
                db.insert_collection(&row).await.unwrap();
            }
            add_document(&db, "t1", "c1", "{}").await;
            add_document(&db, "t1", "c1", r#"{"users":["alice"]}"#).await;
            add_document(&db, "t1", "c2", r#"{"roles":["finance"]}"#).await;
            let reader = |user: &str, role: &str| vec!["*".to_owned(), format!("user:{user}"), format!("role:{role}")];
            let (alice, bob, carol, dave) = (reader("alice", "user"), reader("bob", "user"), reader("carol", "user"), reader("dave", "finance"));
            let fingerprint = async |collections: &[&str], principals: &[String]| {
                let collections: Vec<String> = collections.iter().map(|c| (*c).to_owned()).collect();
                acl_fingerprint(&db, "t1", &collections, principals).await.unwrap()
            };
            let backend = db.backend();
            assert_eq!(fingerprint(&["c1"], &bob).await, fingerprint(&["c1"], &carol).await, "{backend:?}");
            assert_eq!(fingerprint(&["c1"], &bob).await, fingerprint(&["c1"], &dave).await, "finance documents are not in c1");
            assert_ne!(fingerprint(&["c1"], &alice).await, fingerprint(&["c1"], &bob).await);
            assert_ne!(fingerprint(&["c2"], &dave).await, fingerprint(&["c2"], &bob).await);
            assert_eq!(fingerprint(&["c3"], &alice).await, fingerprint(&["c3"], &dave).await, "an empty collection is public to all");
            assert_eq!(fingerprint(&[], &bob).await, fingerprint(&[], &carol).await);
            assert_ne!(fingerprint(&[], &alice).await, fingerprint(&[], &dave).await);
            assert_eq!(fingerprint(&[], &alice).await, fingerprint(&["c1", "c2", "c3"], &alice).await, "no collections means all of them");
        }
    }
}
