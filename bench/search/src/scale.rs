//! The embedded index at scale: `count` synthetic chunks (each the text of
//! a corpus document and its vector plus Gaussian noise) split over two
//! tenants. Measures, one thread, queries filtered to one tenant:
//! - HNSW recall@10 against an exact scan of the tenant, and both speeds;
//! - hybrid search latency (keyword + vector + fusion, as the search API
//!   runs them) at p50 and p99, and the query-embedding latency that the API
//!   adds in front of it;
//! - hnswlib (PyPI) as the baseline, same graph parameters, one thread, on
//!   the tenant's vectors and the same probes (`hnswlib_baseline.py`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use agentry_llm::Embedder;
use agentry_llm::local::LocalEmbedder;
use agentry_search::eval::Dataset;
use agentry_search::hybrid::{self, Fusion};
use agentry_search::index::embedded::{EmbeddedIndex, GRAPH};
use agentry_search::index::{Filter, IndexedChunk};

pub struct Scale {
    pub vectors: usize,
    pub build_seconds: f64,
    pub recall_at_10: f64,
    pub hnsw_qps: f64,
    pub exact_qps: f64,
    /// Milliseconds per hybrid search in the index (p50, p99).
    pub hybrid_ms: (f64, f64),
    /// Milliseconds to embed one query (p50, p99).
    pub embed_ms: (f64, f64),
    /// Seconds to reopen the index from disk.
    pub reopen_seconds: f64,
    /// Resident memory the reopened index adds once searched (MiB).
    pub index_rss_mib: f64,
    /// Our HNSW queries/s on an index of the tenant's vectors alone.
    pub unfiltered_qps: f64,
    /// hnswlib on the tenant's vectors, or why it did not run.
    pub hnswlib: Result<Hnswlib, String>,
}

/// What `hnswlib_baseline.py` reports.
pub struct Hnswlib {
    pub build_seconds: f64,
    pub qps: f64,
    pub recall_at_10: f64,
}

fn write_f32_rows<'a>(path: &Path, rows: impl Iterator<Item = &'a Vec<f32>>) -> anyhow::Result<()> {
    let bytes: Vec<u8> = rows.flat_map(|row| row.iter().flat_map(|x| x.to_le_bytes())).collect();
    Ok(std::fs::write(path, bytes)?)
}

fn hnswlib_baseline(python: &Path, vectors: &[&Vec<f32>], probes: &[&Vec<f32>], dimensions: usize) -> anyhow::Result<Hnswlib> {
    anyhow::ensure!(python.exists(), "{} not found (bench/local/setup.sh installs hnswlib)", python.display());
    let dir = tempfile::tempdir()?;
    let (vectors_path, probes_path) = (dir.path().join("vectors.f32"), dir.path().join("probes.f32"));
    write_f32_rows(&vectors_path, vectors.iter().copied())?;
    write_f32_rows(&probes_path, probes.iter().copied())?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("hnswlib_baseline.py");
    let output = Command::new(python)
        .arg(script)
        .args([&vectors_path, &probes_path])
        .args([dimensions, GRAPH.connectivity, GRAPH.expansion_add, GRAPH.expansion_search].map(|n| n.to_string()))
        .output()?;
    anyhow::ensure!(output.status.success(), "hnswlib failed: {}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let field = |name: &str| report[name].as_f64().ok_or_else(|| anyhow::anyhow!("hnswlib report without {name}: {report}"));
    Ok(Hnswlib { build_seconds: field("build_seconds")?, qps: field("qps")?, recall_at_10: field("recall_at_10")? })
}

/// This process's resident set, in MiB.
fn rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/self/status"))?;
    Ok(kib / 1024.0)
}

/// Results the API's hybrid search fetches per engine for `top_k` 10.
const FETCH: usize = 30;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Normal noise by Box-Muller; enough for synthetic neighbours.
fn gaussian() -> f32 {
    let u1: f32 = rand::random::<f32>().max(f32::MIN_POSITIVE);
    let u2: f32 = rand::random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

fn noisy(base: &[f32], sigma: f32) -> Vec<f32> {
    let mut v: Vec<f32> = base.iter().map(|x| x + sigma * gaussian()).collect();
    let norm = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// `q` quantile of `values` in milliseconds, sorting them.
fn quantile_ms(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() as f64 * q) as usize).min(values.len() - 1)] * 1000.0
}

/// An embedded index in `dir` of the chunks numbered `which`: chunk `i` has
/// vector `vectors[i]` and the text of corpus document `i` (cycling).
fn build(dir: &Path, dataset: &Dataset, vectors: &[Vec<f32>], which: &[usize], tenant_of: impl Fn(usize) -> &'static str) -> anyhow::Result<EmbeddedIndex> {
    let index = EmbeddedIndex::open(dir, vectors[0].len())?;
    for batch in which.chunks(10_000) {
        let chunks: Vec<IndexedChunk> = batch
            .iter()
            .map(|&i| {
                let document = &dataset.corpus[i % dataset.corpus.len()];
                IndexedChunk {
                    key: i as u64,
                    tenant: tenant_of(i).into(),
                    collection: "c".into(),
                    document: format!("d{i}"),
                    title: document.title.clone(),
                    text: document.text.clone(),
                    acl: vec!["*".into()],
                    metadata: serde_json::Map::new(),
                    vector: vectors[i].clone(),
                }
            })
            .collect();
        index.add(&chunks)?;
    }
    index.commit()?;
    Ok(index)
}

pub async fn measure(embedder: &LocalEmbedder, dataset: &Dataset, doc_vectors: &[Vec<f32>], count: usize, python: &Path) -> anyhow::Result<Scale> {
    let dimensions = doc_vectors[0].len();
    let queries: Vec<String> = dataset.queries.iter().map(|q| q.text.clone()).collect();
    let mut embed_seconds = Vec::with_capacity(queries.len());
    let mut query_vectors = Vec::with_capacity(queries.len());
    for query in &queries {
        let started = Instant::now();
        query_vectors.extend(embedder.embed("local-embed", std::slice::from_ref(query)).await?.vectors);
        embed_seconds.push(started.elapsed().as_secs_f64());
    }

    let sigma = 0.5 / (dimensions as f32).sqrt();
    let vectors: Vec<Vec<f32>> = (0..count).map(|i| noisy(&doc_vectors[i % doc_vectors.len()], sigma)).collect();
    let tenant_of = |i: usize| if i.is_multiple_of(2) { "a" } else { "b" };
    let dir = tempfile::tempdir()?;
    let started = Instant::now();
    let everyone: Vec<usize> = (0..count).collect();
    let index = build(dir.path(), dataset, &vectors, &everyone, tenant_of)?;
    let build_seconds = started.elapsed().as_secs_f64();

    let tenant_a: Vec<(u64, &Vec<f32>)> = vectors.iter().enumerate().filter(|(i, _)| tenant_of(*i) == "a").map(|(i, v)| (i as u64, v)).collect();
    let probes: Vec<(String, Vec<f32>)> = (0..1000).map(|i| (queries[i % queries.len()].clone(), noisy(&query_vectors[i % query_vectors.len()], sigma))).collect();
    let filter = Filter { tenant: "a".into(), principals: vec!["*".into()], ..Filter::default() };
    let started = Instant::now();
    let mut approximate = Vec::with_capacity(probes.len());
    for (_, vector) in &probes {
        approximate.push(index.vector_search(vector, &filter, 10)?);
    }
    let hnsw_qps = probes.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut found = 0usize;
    for ((_, vector), approximate) in probes.iter().zip(&approximate) {
        let mut scored: Vec<(u64, f32)> = tenant_a.iter().map(|(k, v)| (*k, dot(v, vector))).collect();
        scored.select_nth_unstable_by(9, |a, b| b.1.total_cmp(&a.1));
        let truth: Vec<u64> = scored[..10].iter().map(|s| s.0).collect();
        found += approximate.iter().filter(|(k, _)| truth.contains(k)).count();
    }
    let exact_qps = probes.len() as f64 / started.elapsed().as_secs_f64();
    let tenant_vectors: Vec<&Vec<f32>> = tenant_a.iter().map(|(_, v)| *v).collect();
    let probe_vectors: Vec<&Vec<f32>> = probes.iter().map(|(_, v)| v).collect();
    let hnswlib = hnswlib_baseline(python, &tenant_vectors, &probe_vectors, dimensions).map_err(|e| format!("{e:#}"));
    // The same comparison for our index: the tenant's vectors alone, so the filter excludes nothing.
    let alone_dir = tempfile::tempdir()?;
    let tenant_only: Vec<usize> = (0..count).filter(|&i| tenant_of(i) == "a").collect();
    let alone = build(alone_dir.path(), dataset, &vectors, &tenant_only, tenant_of)?;
    let started = Instant::now();
    for (_, vector) in &probes {
        alone.vector_search(vector, &filter, 10)?;
    }
    let unfiltered_qps = probes.len() as f64 / started.elapsed().as_secs_f64();
    drop(alone);

    let mut hybrid_seconds = Vec::with_capacity(probes.len());
    for (text, vector) in &probes {
        let started = Instant::now();
        let keyword = index.keyword_search(text, &filter, FETCH)?;
        let nearest = index.vector_search(vector, &filter, FETCH)?;
        let fused = hybrid::fuse(&keyword, &nearest, &Fusion::default(), 10);
        hybrid_seconds.push(started.elapsed().as_secs_f64());
        anyhow::ensure!(!fused.is_empty(), "hybrid search found nothing for {text:?}");
    }

    // What a restarted server holds for this index: reopen it from disk and search it.
    drop(index);
    let before = rss_mib()?;
    let started = Instant::now();
    let index = EmbeddedIndex::open(dir.path(), dimensions)?;
    let reopen_seconds = started.elapsed().as_secs_f64();
    for (text, vector) in &probes {
        index.keyword_search(text, &filter, FETCH)?;
        index.vector_search(vector, &filter, FETCH)?;
    }
    let index_rss_mib = rss_mib()? - before;
    Ok(Scale {
        hnswlib,
        unfiltered_qps,
        reopen_seconds,
        index_rss_mib,
        vectors: count,
        build_seconds,
        recall_at_10: found as f64 / (probes.len() * 10) as f64,
        hnsw_qps,
        exact_qps,
        hybrid_ms: (quantile_ms(&mut hybrid_seconds, 0.5), quantile_ms(&mut hybrid_seconds, 0.99)),
        embed_ms: (quantile_ms(&mut embed_seconds, 0.5), quantile_ms(&mut embed_seconds, 0.99)),
    })
}
