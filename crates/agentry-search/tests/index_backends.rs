//! The same cases against both index backends: the embedded index in a
//! temporary folder and the PostgreSQL index in a fresh database (always in
//! CI; skipped with a notice locally when no server is configured).

use std::sync::Arc;

use agentry_search::index::analyzer::Highlighter;
use agentry_search::index::embedded::EmbeddedIndex;
use agentry_search::index::postgres::PostgresIndex;
use agentry_search::index::{Filter, Index, IndexError, IndexedChunk, MetadataCondition, Ranked};
use serde_json::json;
use sqlx::PgPool;

const DIMS: usize = 8;

enum Store {
    Embedded(tempfile::TempDir),
    Postgres(PgPool),
}

struct Backend {
    label: &'static str,
    store: Store,
}

impl Backend {
    async fn open_with(&self, dimensions: usize) -> Result<Index, IndexError> {
        match &self.store {
            Store::Embedded(dir) => EmbeddedIndex::open(dir.path(), dimensions).map(|i| Index::Embedded(Arc::new(i))),
            Store::Postgres(pool) => PostgresIndex::open(pool.clone(), "Chunks-Test", dimensions).await.map(Index::Postgres),
        }
    }

    async fn open(&self) -> Index {
        self.open_with(DIMS).await.unwrap_or_else(|e| panic!("{}: open: {e}", self.label))
    }
}

/// Embedded always; PostgreSQL when configured (`fresh_postgres_url` insists on it in CI).
async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![Backend { label: "embedded", store: Store::Embedded(dir) }];
    if let Some(url) = agentry_db::test_support::fresh_postgres_url().await {
        let pool = PgPool::connect(&url).await.unwrap_or_else(|e| panic!("postgres: {e}"));
        out.push(Backend { label: "postgres", store: Store::Postgres(pool) });
    }
    out
}

fn unit(raw: &[f32]) -> Vec<f32> {
    let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt();
    raw.iter().map(|x| x / norm).collect()
}

fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIMS];
    v[i] = 1.0;
    v
}

/// A deterministic unit vector close to `axis(around)`.
fn near(around: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    let mut raw: Vec<f32> = (0..DIMS)
        .map(|_| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 0.3
        })
        .collect();
    raw[around] += 1.0;
    unit(&raw)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

fn chunk(key: u64, tenant: &str, text: &str, vector: Vec<f32>) -> IndexedChunk {
    IndexedChunk {
        key,
        tenant: tenant.into(),
        collection: "docs".into(),
        document: format!("d{key}"),
        title: String::new(),
        text: text.into(),
        acl: vec!["*".into()],
        metadata: serde_json::Map::new(),
        vector,
    }
}

fn filter(tenant: &str, principals: &[&str]) -> Filter {
    Filter { tenant: tenant.into(), principals: principals.iter().map(|p| p.to_string()).collect(), ..Filter::default() }
}

fn keys(ranked: &[Ranked]) -> Vec<u64> {
    ranked.iter().map(|r| r.0).collect()
}

fn sorted(ranked: &[Ranked]) -> Vec<u64> {
    let mut keys = keys(ranked);
    keys.sort_unstable();
    keys
}

async fn add(backend: &Backend, index: &Index, chunks: Vec<IndexedChunk>) {
    index.add(chunks).await.unwrap_or_else(|e| panic!("{}: add: {e}", backend.label));
}

async fn keyword(backend: &Backend, index: &Index, query: &str, filter: &Filter, top_k: usize) -> Vec<Ranked> {
    index.keyword_search(query, filter, top_k).await.unwrap_or_else(|e| panic!("{}: keyword search: {e}", backend.label))
}

async fn vector(backend: &Backend, index: &Index, query: &[f32], filter: &Filter, top_k: usize) -> Vec<Ranked> {
    index.vector_search(query, filter, top_k).await.unwrap_or_else(|e| panic!("{}: vector search: {e}", backend.label))
}

#[tokio::test]
async fn keyword_search_stems_and_matches_any_word() {
    for b in backends().await {
        let index = b.open().await;
        add(
            &b,
            &index,
            vec![
                chunk(1, "t", "The engine runs hot after takeoff", axis(0)),
                chunk(2, "t", "Landing gear retracts slowly", axis(1)),
                chunk(3, "t", "Weather radar basics", axis(2)),
            ],
        )
        .await;
        let everyone = filter("t", &["*"]);
        assert_eq!(keys(&keyword(&b, &index, "running", &everyone, 10).await), [1], "{}", b.label);
        let many = keyword(&b, &index, "how is the running of the landing gear checked", &everyone, 10).await;
        assert_eq!(keys(&many), [2, 1], "{}: any word matches, more words rank higher", b.label);
        assert!(many[0].1 > many[1].1 && many[1].1 > 0.0, "{}: {many:?}", b.label);
        let stop = keyword(&b, &index, "the of and", &everyone, 10).await;
        assert!(stop.is_empty(), "{}: stop words only {stop:?}", b.label);
        for syntax in ["wings AND (\"unclosed", "-radar | !weather & <-> 'it''s' \\"] {
            assert!(index.keyword_search(syntax, &everyone, 5).await.is_ok(), "{}: {syntax}", b.label);
        }
        let text = "He runs; she ran. Running!";
        let ranges = Highlighter::new("running").ranges(text);
        assert_eq!(ranges.iter().map(|&(a, z)| &text[a..z]).collect::<Vec<_>>(), ["runs", "Running"], "{}", b.label);
    }
}

#[tokio::test]
async fn vector_search_is_nearest_first_with_cosine_scores() {
    for b in backends().await {
        let index = b.open().await;
        let vectors = [unit(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), unit(&[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]), axis(1), axis(5)];
        add(&b, &index, vectors.iter().enumerate().map(|(i, v)| chunk(i as u64 + 1, "t", "x", v.clone())).collect()).await;
        let query = unit(&[1.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let found = vector(&b, &index, &query, &filter("t", &["*"]), 3).await;
        assert_eq!(keys(&found), [1, 2, 3], "{}", b.label);
        for &(key, score) in &found {
            let expected = cosine(&query, &vectors[key as usize - 1]);
            assert!((score - expected).abs() < 1e-4, "{}: key {key}: {score} vs {expected}", b.label);
        }
        let wrong = index.vector_search(&[1.0, 0.0], &filter("t", &["*"]), 3).await;
        assert!(matches!(wrong, Err(IndexError::Dimensions { expected: DIMS, got: 2 })), "{}", b.label);
        let mut long = chunk(9, "t", "x", axis(0));
        long.vector.push(0.0);
        assert!(matches!(index.add(vec![long]).await, Err(IndexError::Dimensions { expected: DIMS, got: 9 })), "{}", b.label);
    }
}

#[tokio::test]
async fn tenants_are_isolated() {
    for b in backends().await {
        let index = b.open().await;
        let mut chunks = Vec::new();
        for key in 1..=6_u64 {
            let tenant = if key <= 3 { "t1" } else { "t2" };
            chunks.push(chunk(key, tenant, "shared words about wings", near(0, key)));
        }
        add(&b, &index, chunks).await;
        for (tenant, expected) in [("t1", [1, 2, 3]), ("t2", [4, 5, 6])] {
            let f = filter(tenant, &["*"]);
            assert_eq!(sorted(&keyword(&b, &index, "wings", &f, 1000).await), expected, "{}", b.label);
            assert_eq!(sorted(&vector(&b, &index, &axis(0), &f, 1000).await), expected, "{}", b.label);
        }
        let nobody = filter("t3", &["*"]);
        assert!(keyword(&b, &index, "wings", &nobody, 10).await.is_empty(), "{}", b.label);
        assert!(vector(&b, &index, &axis(0), &nobody, 10).await.is_empty(), "{}", b.label);
    }
}

#[tokio::test]
async fn collection_and_document_filters() {
    for b in backends().await {
        let index = b.open().await;
        let chunks = (1..=6_u64)
            .map(|key| {
                let mut c = chunk(key, "t", "flutter analysis", near(key as usize % DIMS, key));
                c.collection = if key % 2 == 0 { "even".into() } else { "odd".into() };
                c
            })
            .collect();
        add(&b, &index, chunks).await;
        let mut f = filter("t", &["*"]);
        f.collections = vec!["even".into()];
        assert_eq!(sorted(&keyword(&b, &index, "flutter", &f, 10).await), [2, 4, 6], "{}", b.label);
        assert_eq!(sorted(&vector(&b, &index, &axis(0), &f, 10).await), [2, 4, 6], "{}", b.label);
        f.collections = vec!["even".into(), "odd".into()];
        f.documents = Some(vec!["d3".into(), "d4".into()]);
        assert_eq!(sorted(&keyword(&b, &index, "flutter", &f, 10).await), [3, 4], "{}", b.label);
        assert_eq!(sorted(&vector(&b, &index, &axis(0), &f, 10).await), [3, 4], "{}", b.label);
        f.documents = Some(Vec::new());
        assert!(keyword(&b, &index, "flutter", &f, 10).await.is_empty(), "{}: no documents allowed", b.label);
        assert!(vector(&b, &index, &axis(0), &f, 10).await.is_empty(), "{}: no documents allowed", b.label);
    }
}

#[tokio::test]
async fn acl_principals_decide_visibility() {
    for b in backends().await {
        let index = b.open().await;
        let mut private = chunk(2, "t", "private wing notes", axis(0));
        private.acl = vec!["user:u1".into()];
        add(&b, &index, vec![chunk(1, "t", "public wing notes", axis(1)), private]).await;
        let everyone = filter("t", &["*"]);
        assert_eq!(keys(&keyword(&b, &index, "wing", &everyone, 10).await), [1], "{}", b.label);
        assert_eq!(keys(&vector(&b, &index, &axis(0), &everyone, 10).await), [1], "{}", b.label);
        let u1 = filter("t", &["*", "user:u1"]);
        assert_eq!(sorted(&keyword(&b, &index, "wing", &u1, 10).await), [1, 2], "{}", b.label);
        assert_eq!(keys(&vector(&b, &index, &axis(0), &u1, 10).await), [2, 1], "{}", b.label);
        assert!(vector(&b, &index, &axis(0), &filter("t", &[]), 10).await.is_empty(), "{}: no principals", b.label);
    }
}

#[tokio::test]
async fn metadata_equality_and_numeric_range() {
    for b in backends().await {
        let index = b.open().await;
        let mut chunks = Vec::new();
        for key in 1..=8_u64 {
            let mut c = chunk(key, "t", "wing report", near(0, key));
            match key {
                7 => c.metadata.insert("year".into(), json!("unknown")),
                8 => None,
                _ => c.metadata.insert("year".into(), json!(2010 + key)),
            };
            c.metadata.insert("kind".into(), json!(if key % 2 == 0 { "report" } else { "note" }));
            c.metadata.insert("draft".into(), json!(key == 3));
            chunks.push(c);
        }
        add(&b, &index, chunks).await;
        let check = |f: Filter, expected: Vec<u64>| {
            let (b, index) = (&b, &index);
            async move {
                assert_eq!(sorted(&keyword(b, index, "wing", &f, 20).await), expected, "{}: keyword {:?}", b.label, f.metadata);
                assert_eq!(sorted(&vector(b, index, &axis(0), &f, 20).await), expected, "{}: vector {:?}", b.label, f.metadata);
            }
        };
        let with = |conditions: Vec<(&str, MetadataCondition)>| {
            let mut f = filter("t", &["*"]);
            f.metadata = conditions.into_iter().map(|(k, c)| (k.to_string(), c)).collect();
            f
        };
        let range = |gt, gte, lt, lte| MetadataCondition::Range { gt, gte, lt, lte };
        check(with(vec![("kind", MetadataCondition::Equals(json!("note")))]), vec![1, 3, 5, 7]).await;
        check(with(vec![("draft", MetadataCondition::Equals(json!(true)))]), vec![3]).await;
        check(with(vec![("year", MetadataCondition::Equals(json!(2012)))]), vec![2]).await;
        check(with(vec![("year", range(None, Some(2012.0), Some(2015.0), None))]), vec![2, 3, 4]).await;
        check(with(vec![("year", range(Some(2012.0), None, None, Some(2015.0)))]), vec![3, 4, 5]).await;
        check(with(vec![("year", range(None, None, None, None))]), vec![1, 2, 3, 4, 5, 6]).await;
        check(with(vec![("year", range(Some(2011.5), None, None, None)), ("kind", MetadataCondition::Equals(json!("report")))]), vec![2, 4, 6]).await;
        check(with(vec![("missing", MetadataCondition::Equals(json!("x")))]), vec![]).await;
    }
}

#[tokio::test]
async fn selective_filters_still_return_every_visible_chunk() {
    for b in backends().await {
        let index = b.open().await;
        // 500 chunks crowd around the query; the visible few lie far away.
        let chunks = (1..=500_u64)
            .map(|key| {
                let mut c = chunk(key, "t", "fuel system inspection", near(0, key));
                if key % 100 == 0 {
                    c.collection = "rare".into();
                    c.vector = near(7, key);
                }
                c
            })
            .collect();
        add(&b, &index, chunks).await;
        let mut rare = filter("t", &["*"]);
        rare.collections = vec!["rare".into()];
        assert_eq!(sorted(&vector(&b, &index, &axis(0), &rare, 5).await), [100, 200, 300, 400, 500], "{}", b.label);
        assert_eq!(sorted(&keyword(&b, &index, "fuel", &rare, 5).await), [100, 200, 300, 400, 500], "{}", b.label);
        let mut needle = filter("t", &["*"]);
        needle.documents = Some(vec!["d300".into()]);
        assert_eq!(keys(&vector(&b, &index, &axis(0), &needle, 5).await), [300], "{}", b.label);
        assert_eq!(keys(&vector(&b, &index, &axis(0), &needle, 1).await), [300], "{}", b.label);
        assert_eq!(vector(&b, &index, &axis(0), &filter("t", &["*"]), 50).await.len(), 50, "{}", b.label);
    }
}

#[tokio::test]
async fn remove_and_upsert() {
    for b in backends().await {
        let index = b.open().await;
        add(&b, &index, vec![chunk(1, "t", "slipstream over wings", axis(0)), chunk(2, "t", "heat transfer", axis(1))]).await;
        let everyone = filter("t", &["*"]);
        index.remove(vec![2, 99]).await.unwrap_or_else(|e| panic!("{}: remove: {e}", b.label));
        assert!(keyword(&b, &index, "heat", &everyone, 10).await.is_empty(), "{}", b.label);
        assert_eq!(keys(&vector(&b, &index, &axis(1), &everyone, 10).await), [1], "{}", b.label);
        // Same key again: replaced, not duplicated (the last of duplicates wins).
        add(&b, &index, vec![chunk(1, "t", "first draft", axis(3)), chunk(1, "t", "replaced text about heat", axis(1))]).await;
        assert_eq!(keys(&keyword(&b, &index, "heat", &everyone, 10).await), [1], "{}", b.label);
        assert!(keyword(&b, &index, "slipstream", &everyone, 10).await.is_empty(), "{}", b.label);
        assert!(keyword(&b, &index, "draft", &everyone, 10).await.is_empty(), "{}", b.label);
        let found = vector(&b, &index, &axis(1), &everyone, 10).await;
        assert_eq!(keys(&found), [1], "{}", b.label);
        assert!((found[0].1 - 1.0).abs() < 1e-5, "{}: the new vector is searched", b.label);
        assert_eq!(index.count().await.unwrap_or_else(|e| panic!("{e}")), 1, "{}", b.label);
    }
}

#[tokio::test]
async fn reopening_keeps_the_data() {
    for b in backends().await {
        {
            let index = b.open().await;
            add(&b, &index, vec![chunk(1, "t", "boundary layers", axis(2)), chunk(2, "t", "lift", axis(3))]).await;
        }
        let index = b.open().await;
        let everyone = filter("t", &["*"]);
        assert_eq!(index.count().await.unwrap_or_else(|e| panic!("{e}")), 2, "{}", b.label);
        assert_eq!(keys(&keyword(&b, &index, "boundary", &everyone, 10).await), [1], "{}", b.label);
        assert_eq!(keys(&vector(&b, &index, &axis(3), &everyone, 1).await), [2], "{}", b.label);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_open_checks_dimensions_names_and_tolerates_concurrency() {
    let Some(b) = backends().await.into_iter().find(|b| matches!(b.store, Store::Postgres(_))) else {
        return;
    };
    let Store::Postgres(pool) = &b.store else {
        return;
    };
    b.open().await;
    let other = b.open_with(16).await;
    assert!(matches!(other, Err(IndexError::Dimensions { expected: DIMS, got: 16 })), "{:?}", other.err());
    let opens: Vec<_> = (0..4).map(|_| tokio::spawn(PostgresIndex::open(pool.clone(), "concurrent", DIMS))).collect();
    for open in opens {
        open.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("concurrent open: {e}"));
    }
    for bad in ["", &"x".repeat(40)] {
        assert!(matches!(PostgresIndex::open(pool.clone(), bad, DIMS).await, Err(IndexError::Database(_))), "{bad:?}");
    }
    let odd = PostgresIndex::open(pool.clone(), "Tenant A; DROP TABLE x", DIMS).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(odd.count().await.unwrap_or_else(|e| panic!("{e}")), 0);
}
