//! The knowledge engine's benchmark, on a BEIR-layout dataset (Cranfield by
//! default) with the default local embedding model:
//!
//! 1. Quality through the product: `agentry_server::eval::retrieval`, the
//!    code behind `agentry eval retrieval`, ingests the corpus and runs every
//!    judged query through a throwaway server's API (keyword, vector,
//!    hybrid); in the same run bm25s (a standard BM25 from PyPI, English
//!    stemmer and stop words) ranks the same files as the baseline.
//! 2. Ingestion throughput: `--ingest-docs` generated documents of ~2 KB
//!    (Cranfield sentences recombined) uploaded through the API of another
//!    throwaway server; documents/s and chunks/s from the first upload until
//!    the last is indexed; then hybrid search latency through the API at
//!    that size.
//! 3. The embedded index at `--vectors` chunks (see `scale`): HNSW recall
//!    and speed against an exact scan, and hybrid search latency.
//!
//! Prints a table and appends it to `bench/results/search.md`.
//! Usage: `cargo run --release -p bench-search [-- --ingest-docs 10000 --vectors 100000 --skip-quality]`
//! (`--ingest-docs 0` / `--vectors 0` / `--skip-quality` leave a part out).

mod scale;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use agentry_llm::Embedder;
use agentry_llm::local::LocalEmbedder;
use agentry_llm::model_files::{PullOptions, ensure_default_models};
use agentry_search::eval::{self, Dataset, Metrics};
use agentry_server::Settings;
use agentry_server::eval::{Harness, Ingested, NewDocument, RetrievalOptions, RetrievalReport, percentile};
use anyhow::Context;
use clap::Parser;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Retrieval quality, ingestion throughput and search latency of the knowledge engine")]
struct Args {
    /// BEIR-layout dataset folder.
    #[arg(long, default_value_os_t = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/cranfield"))]
    dataset: PathBuf,
    /// Where the default models are (pulled there if missing).
    #[arg(long, default_value_os_t = home().join(".cache/agentry-test-data/models"))]
    models_dir: PathBuf,
    /// Generated documents for the ingestion measurement (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    ingest_docs: usize,
    /// Synthetic chunks for the index-at-scale measurement (0 skips it).
    #[arg(long, default_value_t = 100_000)]
    vectors: usize,
    /// Skip the quality measurement (Cranfield through the API and the bm25s baseline).
    #[arg(long)]
    skip_quality: bool,
    /// A Python with `bm25s` and `PyStemmer` for the BM25 baseline, and
    /// `hnswlib` for the vector-index baseline (each skipped when absent).
    #[arg(long, env = "BENCH_PYTHON", default_value_os_t = home().join(".cache/agentry-bench-venv/bin/python"))]
    python: PathBuf,
}

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// Documents the baseline ranks per query, as the eval asks of the API.
const TOP: usize = 100;
/// Uploads in flight during the ingestion measurement.
const UPLOAD_CONCURRENCY: usize = 16;
/// Generated document size.
const DOCUMENT_BYTES: usize = 2048;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let dataset = Dataset::load(&args.dataset, "test").with_context(|| format!("dataset {}", args.dataset.display()))?;
    let paths = ensure_default_models(&args.models_dir, &PullOptions { offline: false, show_progress: true }).await?;
    let settings = Settings { local: agentry_server::configuration::LocalSettings { models_dir: Some(args.models_dir.clone()), ..Default::default() }, ..Settings::default() };

    let (quality, baseline) = if args.skip_quality {
        (None, None)
    } else {
        eprintln!("quality: ingesting and searching {} through the API", args.dataset.display());
        let options = RetrievalOptions { dataset: args.dataset.clone(), split: "test".into(), concurrency: UPLOAD_CONCURRENCY };
        let quality = agentry_server::eval::retrieval(settings.clone(), &options).await?;
        let baseline = match bm25s_baseline(&args.python, &args.dataset) {
            Ok(rankings) => Some(eval::evaluate(&dataset, &rankings)),
            Err(error) => {
                eprintln!("bm25s baseline skipped: {error:#}");
                None
            }
        };
        (Some(quality), baseline)
    };

    let ingestion = if args.ingest_docs > 0 {
        eprintln!("ingestion: {} generated documents of ~{DOCUMENT_BYTES} bytes", args.ingest_docs);
        Some(ingest(settings, &dataset, args.ingest_docs).await?)
    } else {
        None
    };

    let scale = if args.vectors > 0 {
        eprintln!("index at scale: embedding the corpus, then {} chunks", args.vectors);
        let embedder = LocalEmbedder::load(&paths.embed_dir)?;
        let texts: Vec<String> = dataset.corpus.iter().map(|d| format!("{}\n{}", d.title, d.text)).collect();
        let mut doc_vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(32) {
            doc_vectors.extend(embedder.embed("local-embed", batch).await?.vectors);
        }
        Some(scale::measure(&embedder, &dataset, &doc_vectors, args.vectors, &args.python).await?)
    } else {
        None
    };

    let table = report(quality.as_ref(), baseline.as_ref(), ingestion.as_ref(), scale.as_ref());
    eprintln!("{table}");
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/search.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(results)?;
    let when = Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let commit = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(file, "\n## {when} (commit {commit})\n\n{table}")?;
    Ok(())
}

struct Ingestion {
    ingested: Ingested,
    bytes: usize,
    /// Hybrid search through the API at this size, ms (p50, p99).
    search_ms: (f64, f64),
}

/// Documents of ~2 KB made of corpus texts, each a different combination.
fn generated(dataset: &Dataset, count: usize) -> Vec<NewDocument> {
    let corpus = &dataset.corpus;
    (0..count)
        .map(|i| {
            let mut text = String::new();
            let mut j = i;
            while text.len() < DOCUMENT_BYTES {
                text.push_str(&corpus[j % corpus.len()].text);
                text.push_str("\n\n");
                j = j * 7 + 13;
            }
            let cut = text.char_indices().map(|(at, _)| at).take_while(|&at| at <= DOCUMENT_BYTES).last().unwrap_or(0);
            text.truncate(cut);
            NewDocument { title: format!("Report {i}: {}", corpus[i % corpus.len()].title), text, corpus_id: i.to_string() }
        })
        .collect()
}

async fn ingest(settings: Settings, dataset: &Dataset, count: usize) -> anyhow::Result<Ingestion> {
    let documents = generated(dataset, count);
    let bytes = documents.iter().map(|d| d.text.len()).sum();
    let harness = Harness::start(settings).await?;
    let outcome = async {
        let (_, ingested) = harness.ingest(documents, UPLOAD_CONCURRENCY).await?;
        let mut latencies = Vec::new();
        for query in dataset.queries.iter().take(200) {
            let started = Instant::now();
            harness.search(json!({ "query": query.text, "mode": "hybrid", "top_k": 10 })).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::Ok((ingested, (percentile(&mut latencies, 0.5), percentile(&mut latencies, 0.99))))
    }
    .await;
    harness.stop().await?;
    let (ingested, search_ms) = outcome?;
    Ok(Ingestion { ingested, bytes, search_ms })
}

/// Rank the same files with bm25s (English stemming and stop words) for a keyword baseline.
fn bm25s_baseline(python: &Path, dataset: &Path) -> anyhow::Result<HashMap<String, Vec<String>>> {
    anyhow::ensure!(python.exists(), "{} not found (set BENCH_PYTHON to a Python with bm25s and PyStemmer)", python.display());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bm25s_baseline.py");
    let output = Command::new(python).arg(script).arg(dataset).arg(TOP.to_string()).output()?;
    anyhow::ensure!(output.status.success(), "bm25s failed: {}", String::from_utf8_lossy(&output.stderr));
    Ok(serde_json::from_slice(&output.stdout)?)
}

fn report(quality: Option<&RetrievalReport>, baseline: Option<&Metrics>, ingestion: Option<&Ingestion>, scale: Option<&scale::Scale>) -> String {
    let mut table = String::new();
    if let Some(quality) = quality {
        table.push_str("### Quality through the API (`agentry eval retrieval`), nDCG with linear gains\n\n");
        table.push_str(&quality.table());
    }
    if let Some(m) = baseline {
        table.push_str(&format!("| baseline: bm25s (PyPI, same files) | {:.4} | {:.4} | {:.4} | — | — |\n", m.ndcg_at_10, m.recall_at_100, m.mrr_at_10));
    }
    if let Some(i) = ingestion {
        let seconds = i.ingested.seconds.max(f64::EPSILON);
        table.push_str(&format!(
            "\n### Ingestion through the API\n\n{} generated documents ({:.0} bytes each on average), {} uploads in flight, {} chunks, {} failed:\n\n\
             | documents/s | chunks/s | MB/s | seconds | hybrid search p50 ms | p99 ms |\n|---|---|---|---|---|---|\n| {:.1} | {:.1} | {:.3} | {:.0} | {:.1} | {:.1} |\n",
            i.ingested.uploaded,
            i.bytes as f64 / i.ingested.uploaded.max(1) as f64,
            UPLOAD_CONCURRENCY,
            i.ingested.chunks,
            i.ingested.failed,
            i.ingested.succeeded as f64 / seconds,
            i.ingested.chunks as f64 / seconds,
            i.bytes as f64 / 1e6 / seconds,
            seconds,
            i.search_ms.0,
            i.search_ms.1,
        ));
    }
    let Some(scale) = scale else { return table };
    table.push_str(&format!(
        "\n### Embedded index at {} chunks (two tenants, queries filtered to one, one thread; built in {:.1} s)\n\n\
         | measure | value |\n|---|---|\n\
         | HNSW recall@10 vs exact scan of the tenant | {:.4} |\n| HNSW queries/s (top 10) | {:.0} |\n| exact scan queries/s | {:.0} |\n\
         | hybrid search in the index (keyword + vector + fusion), p50 / p99 ms | {:.2} / {:.2} |\n\
         | query embedding (local MiniLM), p50 / p99 ms | {:.2} / {:.2} |\n\
         | reopening the index from disk, s | {:.2} |\n\
         | resident memory of the reopened index after 1000 searches, MiB | {:.0} |\n",
        scale.vectors,
        scale.build_seconds,
        scale.recall_at_10,
        scale.hnsw_qps,
        scale.exact_qps,
        scale.hybrid_ms.0,
        scale.hybrid_ms.1,
        scale.embed_ms.0,
        scale.embed_ms.1,
        scale.reopen_seconds,
        scale.index_rss_mib
    ));
    match &scale.hnswlib {
        Ok(h) => table.push_str(&format!(
            "\nBaseline: hnswlib (PyPI) with the same M, ef_construction and ef on the tenant's {} vectors alone (no filter), \
             the same probes, one thread: recall@10 {:.4}, {:.0} queries/s, built in {:.1} s. \
             Our HNSW on an index of those vectors alone: {:.0} queries/s.\n",
            scale.vectors / 2,
            h.recall_at_10,
            h.qps,
            h.build_seconds,
            scale.unfiltered_qps
        )),
        Err(error) => table.push_str(&format!("\nhnswlib baseline skipped: {error}\n")),
    }
    table
}
