//! `agentry eval retrieval`: the retrieval quality of this build on a
//! BEIR-layout dataset, measured through the path users take. It starts the
//! server in process on a fresh data dir (SQLite unless a database URL is
//! configured, the configured embedding model), bootstraps a tenant, creates
//! a collection, uploads every corpus document through the documents API,
//! waits for ingestion, asks the search API each judged query in keyword,
//! vector and hybrid mode (one result per document), and scores the
//! rankings with [`agentry_search::eval`].
//!
//! Must not: reach into the index or the database directly: that would
//! measure a side path instead of the product.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agentry_search::eval::{self, Dataset, Metrics};
use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Application, Settings};

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct RetrievalOptions {
    pub dataset: PathBuf,
    /// Which `qrels/<split>.tsv` judges the queries.
    pub split: String,
    /// Uploads in flight at once.
    pub concurrency: usize,
}

/// One search mode's scores and latency through the API.
#[derive(Debug, Clone)]
pub struct ModeReport {
    pub mode: &'static str,
    pub metrics: Metrics,
    pub median_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone)]
pub struct RetrievalReport {
    pub dataset: String,
    pub documents: usize,
    pub failed_documents: usize,
    /// Corpus entries with neither title nor text.
    pub skipped_documents: usize,
    pub queries: usize,
    pub ingest_seconds: f64,
    pub modes: Vec<ModeReport>,
}

impl RetrievalReport {
    /// `{"keyword": {"ndcg@10": …, "recall@100": …, "mrr@10": …}, "vector": {…}, "hybrid": {…}}`.
    pub fn json(&self) -> Value {
        let modes = self
            .modes
            .iter()
            .filter(|m| m.mode != HYBRID_RRF)
            .map(|m| (m.mode.to_owned(), json!({ "ndcg@10": m.metrics.ndcg_at_10, "recall@100": m.metrics.recall_at_100, "mrr@10": m.metrics.mrr_at_10 })));
        Value::Object(modes.collect())
    }

    /// A Markdown table for people.
    pub fn table(&self) -> String {
        let mut out = format!(
            "dataset {} ({} documents ingested through the API in {:.1} s, {:.1} docs/s, {} failed, {} without text; {} judged queries, one at a time)\n\n\
             | mode | nDCG@10 | Recall@100 | MRR@10 | median ms | p99 ms |\n|---|---|---|---|---|---|\n",
            self.dataset,
            self.documents,
            self.ingest_seconds,
            self.documents as f64 / self.ingest_seconds.max(f64::EPSILON),
            self.failed_documents,
            self.skipped_documents,
            self.queries
        );
        for m in &self.modes {
            out.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} | {:.1} | {:.1} |\n",
                m.mode, m.metrics.ndcg_at_10, m.metrics.recall_at_100, m.metrics.mrr_at_10, m.median_ms, m.p99_ms
            ));
        }
        out
    }
}

/// The table's extra row: hybrid search with reciprocal-rank fusion.
const HYBRID_RRF: &str = "hybrid (RRF, k=60)";

/// How many results each query asks for (Recall@100 needs 100 documents).
const TOP_K: usize = 100;

/// Run the evaluation on a throwaway server built from `settings`.
pub async fn retrieval(settings: Settings, options: &RetrievalOptions) -> anyhow::Result<RetrievalReport> {
    let dataset = Dataset::load(&options.dataset, &options.split).with_context(|| format!("dataset {}", options.dataset.display()))?;
    anyhow::ensure!(!dataset.queries.is_empty(), "the dataset has no judged queries in qrels/{}.tsv", options.split);
    let harness = Harness::start(settings).await?;
    let outcome = evaluate(&harness, &dataset, options).await;
    harness.stop().await?;
    let (ingested, modes) = outcome?;
    Ok(RetrievalReport {
        dataset: options.dataset.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        documents: ingested.succeeded,
        failed_documents: ingested.failed,
        skipped_documents: dataset.corpus.len() - ingested.uploaded,
        queries: dataset.queries.len(),
        ingest_seconds: ingested.seconds,
        modes,
    })
}

async fn evaluate(harness: &Harness, dataset: &Dataset, options: &RetrievalOptions) -> anyhow::Result<(Ingested, Vec<ModeReport>)> {
    // A document without text is indexed by its title; one with neither is skipped.
    let documents = dataset.corpus.iter().filter_map(|d| {
        let text = if d.text.trim().is_empty() { &d.title } else { &d.text };
        (!text.trim().is_empty()).then(|| NewDocument { title: d.title.clone(), text: text.clone(), corpus_id: d.id.clone() })
    });
    let (corpus_of, ingested) = harness.ingest(documents.collect(), options.concurrency).await?;
    let mut modes = Vec::new();
    // The default hybrid fusion (relative score), and reciprocal-rank fusion for comparison (table only).
    let runs = [("keyword", "keyword", None), ("vector", "vector", None), ("hybrid", "hybrid", None), (HYBRID_RRF, "hybrid", Some(json!({ "method": "rrf", "k": 60 })))];
    for (label, mode, fusion) in runs {
        // One query at a time, so the latencies are those of a quiet server.
        let mut rankings = HashMap::new();
        let mut latencies = Vec::new();
        for query in &dataset.queries {
            let started = Instant::now();
            let mut request = json!({ "query": query.text, "mode": mode, "top_k": TOP_K, "group_by_document": true });
            if let Some(fusion) = &fusion {
                request["fusion"] = fusion.clone();
            }
            let found = harness.search(request).await?;
            latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            let ranking: Vec<String> = found.iter().filter_map(|r| r["document_id"].as_str()).filter_map(|id| corpus_of.get(id).cloned()).collect();
            rankings.insert(query.id.clone(), ranking);
        }
        modes.push(ModeReport { mode: label, metrics: eval::evaluate(dataset, &rankings), median_ms: percentile(&mut latencies, 0.5), p99_ms: percentile(&mut latencies, 0.99) });
    }
    Ok((ingested, modes))
}

/// The `q` quantile (0..=1) of `values` (sorted in place); NaN when empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return f64::NAN;
    }
    values[((values.len() as f64 * q) as usize).min(values.len() - 1)]
}

/// A document to upload as JSON text.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub title: String,
    pub text: String,
    /// The caller's id for it (kept in the document's metadata as `corpus_id`).
    pub corpus_id: String,
}

/// What an ingestion run did.
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    pub uploaded: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// From the first upload until no document was queued or processing.
    pub seconds: f64,
    pub chunks: usize,
}

/// A throwaway server (fresh temporary data dir, port 0) with a bootstrapped
/// tenant, a signed-in admin and one collection, driven through its HTTP API.
pub struct Harness {
    api: Api,
    collection: String,
    shutdown: tokio_util::sync::CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _data_dir: tempfile::TempDir,
}

impl Harness {
    /// Start the server from `settings` (its models folder is kept; data dir and listen address are replaced).
    pub async fn start(mut settings: Settings) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("a temporary data dir")?;
        settings.local.models_dir = Some(settings.models_dir());
        settings.data_dir = data_dir.path().to_path_buf();
        settings.listen = ([127, 0, 0, 1], 0).into();
        let app = Application::build(settings.clone()).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());

        let slug = format!("eval-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let email = format!("{slug}@example.com");
        let password = uuid::Uuid::new_v4().to_string();
        crate::startup::bootstrap(&settings, &slug, None, &email, &password).await?;
        let api = Api { client: reqwest::Client::new(), base, token: String::new() };
        let login = api.call(reqwest::Method::POST, "/api/v1/auth/login", Some(json!({ "email": email, "password": password }))).await?;
        let api = Api { token: login["access_token"].as_str().context("login returned no access token")?.to_owned(), ..api };
        // An API key, not the session's access token: a long run outlives the token.
        let key = json!({ "name": "eval", "scopes": ["read_documents", "upload_documents", "use_models", "use_general_agent", "manage_agents", "manage_integrations"] });
        let key = api.call(reqwest::Method::POST, &format!("/api/v1/tenants/{slug}/api-keys"), Some(key)).await?;
        let api = Api { token: key["key"].as_str().context("no API key in the answer")?.to_owned(), ..api };
        let collection = api.call(reqwest::Method::POST, "/api/v1/collections", Some(json!({ "name": slug }))).await?;
        let collection = collection["id"].as_str().context("no collection id")?.to_owned();
        Ok(Self { api, collection, shutdown, server, _data_dir: data_dir })
    }

    /// The server's base URL (`http://127.0.0.1:<port>`).
    pub fn base(&self) -> &str {
        &self.api.base
    }

    /// The tenant's API key.
    pub fn api_key(&self) -> &str {
        &self.api.token
    }

    /// Call the API with the key; the JSON answer of a 2xx, or an error naming the call.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        self.api.call(method, path, body).await
    }

    /// Upload every document (`concurrency` at a time) and wait until all
    /// are ingested; returns document id → corpus id and the run's numbers.
    pub async fn ingest(&self, documents: Vec<NewDocument>, concurrency: usize) -> anyhow::Result<(HashMap<String, String>, Ingested)> {
        let path = format!("/api/v1/collections/{}/documents", self.collection);
        let started = Instant::now();
        let uploads = documents.into_iter().map(|document| {
            let body = json!({ "text": document.text, "title": document.title, "metadata": { "corpus_id": document.corpus_id } });
            let path = &path;
            async move {
                let accepted = self.api.call(reqwest::Method::POST, path, Some(body)).await?;
                let id = accepted["document"]["id"].as_str().context("upload returned no document id")?.to_owned();
                anyhow::Ok((id, document.corpus_id))
            }
        });
        let uploaded: Vec<anyhow::Result<(String, String)>> = futures::stream::iter(uploads).buffer_unordered(concurrency.max(1)).collect().await;
        let corpus_of = uploaded.into_iter().collect::<anyhow::Result<HashMap<_, _>>>()?;
        let mut reported = Instant::now();
        loop {
            let listed = self.api.call(reqwest::Method::GET, &path, None).await?;
            let documents = listed["data"].as_array().cloned().unwrap_or_default();
            let done: Vec<&Value> = documents.iter().filter(|d| d["status"] == "succeeded" || d["status"] == "failed").collect();
            let failed = done.iter().filter(|d| d["status"] == "failed").count();
            if done.len() >= corpus_of.len() {
                let chunks = self.chunk_count(&documents).await?;
                let seconds = started.elapsed().as_secs_f64();
                return Ok((corpus_of.clone(), Ingested { uploaded: corpus_of.len(), succeeded: done.len() - failed, failed, seconds, chunks }));
            }
            if reported.elapsed() > Duration::from_secs(10) {
                eprintln!("ingested {} of {} documents ({failed} failed)", done.len(), corpus_of.len());
                reported = Instant::now();
            }
            // Listing thousands of documents is work for the server being measured: poll less as it grows.
            tokio::time::sleep(Duration::from_millis(500).max(Duration::from_micros(500 * corpus_of.len() as u64))).await;
        }
    }

    /// Chunks of the documents' current versions, from their version lists.
    async fn chunk_count(&self, documents: &[Value]) -> anyhow::Result<usize> {
        let mut chunks = 0;
        for document in documents {
            let (Some(id), Some(current)) = (document["id"].as_str(), document["current_version"].as_i64()) else { continue };
            let versions = self.api.call(reqwest::Method::GET, &format!("/api/v1/documents/{id}/versions"), None).await?;
            let current = versions["data"].as_array().into_iter().flatten().find(|v| v["version"].as_i64() == Some(current));
            chunks += current.and_then(|v| v["chunk_count"].as_u64()).unwrap_or(0) as usize;
        }
        Ok(chunks)
    }

    /// `POST /api/v1/search` in the harness's collection; the results.
    pub async fn search(&self, mut request: Value) -> anyhow::Result<Vec<Value>> {
        request["collections"] = json!([self.collection]);
        let found = self.api.call(reqwest::Method::POST, "/api/v1/search", Some(request)).await?;
        Ok(found["results"].as_array().cloned().unwrap_or_default())
    }

    /// Stop the server and wait for it to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.server.await.context("the server task")?
    }
}

/// The platform API as a signed-in user.
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| format!("{method} {path}: the answer is not JSON"))?;
        anyhow::ensure!(status.is_success(), "{method} {path}: {status}: {body}");
        Ok(body)
    }
}
