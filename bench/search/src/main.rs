//! Retrieval quality and vector-index speed, on a BEIR-layout dataset
//! (Cranfield by default) with the default local embedding model.
//!
//! 1. Quality: every document is embedded and indexed in the embedded index
//!    (tantivy BM25 + usearch HNSW); each query runs keyword, vector (HNSW),
//!    exact vector (brute force) and hybrid (weighted RRF) search; nDCG@10,
//!    Recall@100 and MRR@10 per mode, with per-query latency. With
//!    `--python` pointing at an interpreter that has `bm25s`, the same files
//!    are also ranked by bm25s (a standard BM25) as the keyword baseline.
//! 2. The HNSW graph at scale: `--vectors` synthetic vectors around the
//!    corpus embeddings (each a document vector plus Gaussian noise), split
//!    over two tenants; queries are the dataset's query vectors plus noise,
//!    run with a tenant filter. Recall@10 against an exact scan of the same
//!    tenant, and queries per second of both, one thread.
//!
//! Prints a table and appends it to `bench/results/search.md`.
//! Usage: `cargo run --release -p bench-search [-- --vectors 100000]`

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use agentry_llm::Embedder;
use agentry_llm::local::LocalEmbedder;
use agentry_llm::model_files::{PullOptions, ensure_default_models};
use agentry_search::eval::{self, Dataset, Metrics};
use agentry_search::hybrid::{self, Fusion};
use agentry_search::index::embedded::EmbeddedIndex;
use agentry_search::index::{Filter, IndexedChunk, Ranked};
use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Retrieval quality (nDCG, recall, MRR) and HNSW recall/QPS")]
struct Args {
    /// BEIR-layout dataset folder.
    #[arg(long, default_value_os_t = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/cranfield"))]
    dataset: PathBuf,
    /// Where the default models are (pulled there if missing).
    #[arg(long, default_value_os_t = home().join(".cache/agentry-test-data/models"))]
    models_dir: PathBuf,
    /// Synthetic vectors for the HNSW measurement.
    #[arg(long, default_value_t = 100_000)]
    vectors: usize,
    /// A Python with `bm25s` installed, for the BM25 baseline (skipped when absent).
    #[arg(long, env = "AGENTRY_BENCH_PYTHON", default_value_os_t = home().join(".cache/agentry-bench-venv/bin/python"))]
    python: PathBuf,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

const TOP: usize = 100;
const TENANT: &str = "bench";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dataset = Dataset::load(&args.dataset, "test").with_context(|| format!("dataset {}", args.dataset.display()))?;
    let paths = ensure_default_models(&args.models_dir, &PullOptions { offline: false, show_progress: true }).await?;
    let embedder = LocalEmbedder::load(&paths.embed_dir)?;
    let dimensions = embedder.dimensions();

    let started = Instant::now();
    let texts: Vec<String> = dataset.corpus.iter().map(|d| d.text.clone()).collect();
    let doc_vectors = embed_all(&embedder, &texts).await?;
    let embed_seconds = started.elapsed().as_secs_f64();
    let queries: Vec<String> = dataset.queries.iter().map(|q| q.text.clone()).collect();
    let query_vectors = embed_all(&embedder, &queries).await?;

    let dir = tempfile::tempdir()?;
    let index = EmbeddedIndex::open(dir.path(), dimensions)?;
    let started = Instant::now();
    let chunks: Vec<IndexedChunk> = dataset.corpus.iter().zip(&doc_vectors).enumerate().map(|(i, (d, v))| chunk(i as u64, d, v.clone())).collect();
    index.add(&chunks)?;
    index.commit()?;
    let index_seconds = started.elapsed().as_secs_f64();

    let filter = Filter { tenant: TENANT.into(), principals: vec!["*".into()], ..Filter::default() };
    let id_of = |key: u64| dataset.corpus[key as usize].id.clone();
    let mut runs: HashMap<&str, HashMap<String, Vec<String>>> = HashMap::new();
    let mut latency: HashMap<&str, Vec<f64>> = HashMap::new();
    for (query, vector) in dataset.queries.iter().zip(&query_vectors) {
        let timed = |f: &mut dyn FnMut() -> anyhow::Result<Vec<Ranked>>| -> anyhow::Result<(Vec<Ranked>, f64)> {
            let t = Instant::now();
            let ranked = f()?;
            Ok((ranked, t.elapsed().as_secs_f64() * 1e6))
        };
        let (keyword, keyword_us) = timed(&mut || Ok(index.keyword_search(&query.text, &filter, TOP)?))?;
        let (vector_hits, vector_us) = timed(&mut || Ok(index.vector_search(vector, &filter, TOP)?))?;
        let (exact, exact_us) = timed(&mut || Ok(exact_search(&doc_vectors, vector, TOP)))?;
        let t = Instant::now();
        let fused: Vec<Ranked> = hybrid::fuse(&keyword, &vector_hits, &Fusion::default(), TOP).into_iter().map(|f| (f.key, f.score)).collect();
        let hybrid_us = keyword_us + vector_us + t.elapsed().as_secs_f64() * 1e6;
        for (mode, ranked, micros) in [("keyword (BM25)", &keyword, keyword_us), ("vector (HNSW)", &vector_hits, vector_us), ("vector (exact)", &exact, exact_us), ("hybrid (RRF k=60)", &fused, hybrid_us)] {
            runs.entry(mode).or_default().insert(query.id.clone(), ranked.iter().map(|r| id_of(r.0)).collect());
            latency.entry(mode).or_default().push(micros);
        }
    }
    let mut quality: Vec<(String, Metrics, Option<f64>)> = Vec::new();
    for mode in ["keyword (BM25)", "vector (HNSW)", "vector (exact)", "hybrid (RRF k=60)"] {
        quality.push((mode.to_owned(), eval::evaluate(&dataset, &runs[mode]), Some(median(&mut latency.get_mut(mode).map(std::mem::take).unwrap_or_default()))));
    }
    match bm25s_baseline(&args.python, &args.dataset) {
        Ok(rankings) => quality.insert(0, ("baseline: bm25s (Python)".to_owned(), eval::evaluate(&dataset, &rankings), None)),
        Err(error) => eprintln!("bm25s baseline skipped: {error:#}"),
    }

    let scale = hnsw_at_scale(dimensions, &doc_vectors, &query_vectors, args.vectors)?;
    let table = report(&args, &dataset, &quality, embed_seconds, index_seconds, &scale);
    eprintln!("{table}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/search.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(results)?;
    let when = Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let commit = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(file, "\n## {when} (commit {commit})\n\n{table}")?;
    Ok(())
}

fn chunk(key: u64, document: &eval::Document, vector: Vec<f32>) -> IndexedChunk {
    IndexedChunk {
        key,
        tenant: TENANT.into(),
        collection: "corpus".into(),
        document: document.id.clone(),
        title: document.title.clone(),
        text: document.text.clone(),
        acl: vec!["*".into()],
        metadata: serde_json::Map::new(),
        vector,
    }
}

async fn embed_all(embedder: &LocalEmbedder, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut vectors = Vec::with_capacity(texts.len());
    for batch in texts.chunks(32) {
        vectors.extend(embedder.embed("local-embed", batch).await?.vectors);
    }
    Ok(vectors)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Brute force over unit vectors (cosine = dot product).
fn exact_search(vectors: &[Vec<f32>], query: &[f32], top: usize) -> Vec<Ranked> {
    let mut scored: Vec<Ranked> = vectors.iter().enumerate().map(|(i, v)| (i as u64, dot(v, query))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(top);
    scored
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Rank the same files with bm25s (English stemming and stop words) for a keyword baseline.
fn bm25s_baseline(python: &Path, dataset: &Path) -> anyhow::Result<HashMap<String, Vec<String>>> {
    anyhow::ensure!(python.exists(), "{} not found (set AGENTRY_BENCH_PYTHON to a Python with bm25s and PyStemmer)", python.display());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bm25s_baseline.py");
    let output = Command::new(python).arg(script).arg(dataset).arg(TOP.to_string()).output()?;
    anyhow::ensure!(output.status.success(), "bm25s failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(serde_json::from_slice(&output.stdout)?)
}

struct Scale {
    vectors: usize,
    build_seconds: f64,
    recall_at_10: f64,
    hnsw_qps: f64,
    exact_qps: f64,
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

fn hnsw_at_scale(dimensions: usize, doc_vectors: &[Vec<f32>], query_vectors: &[Vec<f32>], count: usize) -> anyhow::Result<Scale> {
    let sigma = 0.5 / (dimensions as f32).sqrt();
    let vectors: Vec<Vec<f32>> = (0..count).map(|i| noisy(&doc_vectors[i % doc_vectors.len()], sigma)).collect();
    let tenant_of = |i: usize| if i.is_multiple_of(2) { "a" } else { "b" };
    let dir = tempfile::tempdir()?;
    let index = EmbeddedIndex::open(dir.path(), dimensions)?;
    let started = Instant::now();
    for (start, batch) in vectors.chunks(10_000).enumerate().map(|(b, batch)| (b * 10_000, batch)) {
        let chunks: Vec<IndexedChunk> = batch
            .iter()
            .enumerate()
            .map(|(j, v)| IndexedChunk {
                key: (start + j) as u64,
                tenant: tenant_of(start + j).into(),
                collection: "c".into(),
                document: format!("d{}", start + j),
                title: String::new(),
                text: String::new(),
                acl: vec!["*".into()],
                metadata: serde_json::Map::new(),
                vector: v.clone(),
            })
            .collect();
        index.add(&chunks)?;
    }
    index.commit()?;
    let build_seconds = started.elapsed().as_secs_f64();
    let tenant_a: Vec<(u64, &Vec<f32>)> = vectors.iter().enumerate().filter(|(i, _)| tenant_of(*i) == "a").map(|(i, v)| (i as u64, v)).collect();
    let queries: Vec<Vec<f32>> = (0..1000).map(|i| noisy(&query_vectors[i % query_vectors.len()], sigma)).collect();
    let filter = Filter { tenant: "a".into(), principals: vec!["*".into()], ..Filter::default() };
    let started = Instant::now();
    let mut approximate = Vec::with_capacity(queries.len());
    for query in &queries {
        approximate.push(index.vector_search(query, &filter, 10)?);
    }
    let hnsw_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut found = 0usize;
    for (query, approximate) in queries.iter().zip(&approximate) {
        let mut scored: Vec<(u64, f32)> = tenant_a.iter().map(|(k, v)| (*k, dot(v, query))).collect();
        scored.select_nth_unstable_by(9, |a, b| b.1.total_cmp(&a.1));
        let truth: Vec<u64> = scored[..10].iter().map(|s| s.0).collect();
        found += approximate.iter().filter(|(k, _)| truth.contains(k)).count();
    }
    let exact_qps = queries.len() as f64 / started.elapsed().as_secs_f64();
    Ok(Scale { vectors: count, build_seconds, recall_at_10: found as f64 / (queries.len() * 10) as f64, hnsw_qps, exact_qps })
}

fn report(args: &Args, dataset: &Dataset, quality: &[(String, Metrics, Option<f64>)], embed_seconds: f64, index_seconds: f64, scale: &Scale) -> String {
    let mut table = format!(
        "dataset {} ({} documents, {} judged queries); local-embed (MiniLM-L6, 384 dims); embedding {:.1} s ({:.0} docs/s), indexing {:.2} s\n\n\
         | mode | nDCG@10 | Recall@100 | MRR@10 | median query µs |\n|---|---|---|---|---|\n",
        args.dataset.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        dataset.corpus.len(),
        dataset.queries.len(),
        embed_seconds,
        dataset.corpus.len() as f64 / embed_seconds,
        index_seconds,
    );
    for (mode, m, micros) in quality {
        let micros = micros.map_or("—".to_owned(), |us| format!("{us:.0}"));
        table.push_str(&format!("| {mode} | {:.4} | {:.4} | {:.4} | {micros} |\n", m.ndcg_at_10, m.recall_at_100, m.mrr_at_10));
    }
    table.push_str(&format!(
        "\nHNSW (usearch, M=16, ef_search=128) on {} synthetic vectors (corpus vectors + noise) in two tenants, 1000 queries filtered to one tenant, one thread; built in {:.1} s:\n\n\
         | search | recall@10 | queries/s |\n|---|---|---|\n| HNSW, tenant filter in the traversal | {:.4} | {:.0} |\n| exact scan of the tenant | 1.0000 | {:.0} |\n",
        scale.vectors, scale.build_seconds, scale.recall_at_10, scale.hnsw_qps, scale.exact_qps
    ));
    table
}
