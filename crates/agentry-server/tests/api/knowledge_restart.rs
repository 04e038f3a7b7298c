//! Restart safety of ingestion and the eval command, through the `agentry`
//! binary: a server killed with SIGKILL in the middle of ingesting documents
//! finishes them after a restart, each indexed exactly once (no half-visible
//! document, no duplicate chunks); `agentry eval retrieval --json` scores a
//! small BEIR-layout dataset through a throwaway server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, free_port, test_models_dir};

const BIN: &str = env!("CARGO_BIN_EXE_agentry");
const EMAIL: &str = "admin@example.com";
const MASTER_KEY: &str = "restart-test-master-key-0123456789";

/// The `agentry` binary serving `data_dir` on `port`, with short job leases (a killed worker's job is taken over within seconds).
pub(crate) fn serve(data_dir: &Path, port: u16) -> Child {
    serve_with(data_dir, port, None)
}

/// [`serve`], reading the configuration file `config` when given.
pub(crate) fn serve_with(data_dir: &Path, port: u16, config: Option<&Path>) -> Child {
    let mut command = Command::new(BIN);
    if let Some(config) = config {
        command.args(["--config", config.to_str().unwrap()]);
    }
    command
        .args(["--data-dir", data_dir.to_str().unwrap(), "serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("AGENTRY_LOCAL__MODELS_DIR", test_models_dir())
        .env("AGENTRY_KNOWLEDGE__LEASE_SECS", "2")
        .env("AGENTRY_JOBS__LEASE_SECS", "2")
        .env("AGENTRY_MASTER_KEY", MASTER_KEY)
        .env("AGENTRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// `agentry admin bootstrap` of tenant `acme` and its admin in `data_dir`.
pub(crate) fn bootstrap(data_dir: &Path) {
    let bootstrap = Command::new(BIN)
        .args(["--data-dir", data_dir.to_str().unwrap(), "admin", "bootstrap", "--tenant", "acme", "--email", EMAIL])
        .env("AGENTRY_BOOTSTRAP_PASSWORD", PASSWORD)
        // The server's master key: the signing key bootstrap creates is sealed under it.
        .env("AGENTRY_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
}

/// A data dir bootstrapped for the `agentry` binary with the configuration
/// file `config`, the port it listens on, and a client for it: the setup
/// of every kill-and-restart test.
pub(crate) struct Configured {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    port: u16,
    pub base: String,
    pub client: reqwest::Client,
}

impl Configured {
    pub(crate) fn new(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentry.toml");
        std::fs::write(&path, config).unwrap();
        bootstrap(dir.path());
        let port = free_port();
        Self { base: format!("http://127.0.0.1:{port}"), client: reqwest::Client::new(), dir, config: path, port }
    }

    /// Start the server, wait until it is ready, and sign its admin in.
    pub(crate) async fn start(&self) -> (Child, String) {
        let server = serve_with(self.dir.path(), self.port, Some(&self.config));
        wait_ready(&self.client, &self.base).await;
        (server, login(&self.client, &self.base).await)
    }
}

/// The bootstrapped admin's access token.
pub(crate) async fn login(client: &reqwest::Client, base: &str) -> String {
    let login = client.post(format!("{base}/api/v1/auth/login")).json(&json!({ "email": EMAIL, "password": PASSWORD })).send().await.unwrap();
    login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if client.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server at {base} did not become ready");
}

pub(crate) async fn call(client: &reqwest::Client, base: &str, token: &str, method: Method, path: &str, body: Option<Value>) -> Value {
    let mut request = client.request(method, format!("{base}{path}")).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// A document of several chunks; every paragraph names its marker word.
fn document_text(marker: &str) -> String {
    (0..6)
        .map(|p| {
            format!(
                "Paragraph {p} of {marker}. The turbine blade cooling study measured heat transfer across {p} stations, \
                 comparing laminar and turbulent boundary layers under varying pressure gradients and surface roughness. \
                 Results for {marker} show the film cooling effectiveness rising with blowing ratio until separation, \
                 after which mixing with the mainstream reduces protection of the wall downstream of the injection holes. \
                 Further measurements in {marker} repeat the survey with a heated wall and a cold jet at several angles."
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test]
async fn ingestion_survives_a_kill_9_and_indexes_each_document_once() {
    let dir = tempfile::tempdir().unwrap();
    bootstrap(dir.path());

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut server = serve(dir.path(), port);
    wait_ready(&client, &base).await;
    let token = login(&client, &base).await;
    let collection = call(&client, &base, &token, Method::POST, "/api/v1/collections", Some(json!({ "name": "reports" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();
    let documents_path = format!("/api/v1/collections/{collection}/documents");

    let count = 40;
    let mut ids = Vec::new();
    for i in 0..count {
        let body = json!({ "text": document_text(&format!("marker{i}")), "title": format!("Report {i}") });
        let accepted = call(&client, &base, &token, Method::POST, &documents_path, Some(body)).await;
        ids.push(accepted["document"]["id"].as_str().unwrap().to_owned());
    }

    // Kill the server once some documents are in and others are not.
    let statuses = |listed: &Value| -> Vec<String> { listed["data"].as_array().unwrap().iter().map(|d| d["status"].as_str().unwrap().to_owned()).collect() };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = call(&client, &base, &token, Method::GET, &documents_path, None).await;
        let done = statuses(&listed).iter().filter(|s| *s == "succeeded").count();
        if done >= 2 {
            assert!(done < count, "every document was ingested before the kill: the test needs more or larger documents");
            break;
        }
        assert!(Instant::now() < deadline, "no document was ingested");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let mut server = serve(dir.path(), port);
    wait_ready(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let listed = call(&client, &base, &token, Method::GET, &documents_path, None).await;
        let statuses = statuses(&listed);
        assert!(!statuses.iter().any(|s| s == "failed"), "{listed}");
        if statuses.iter().all(|s| s == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "ingestion did not finish after the restart: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for (i, id) in ids.iter().enumerate() {
        let versions = call(&client, &base, &token, Method::GET, &format!("/api/v1/documents/{id}/versions"), None).await;
        let chunk_count = versions["data"][0]["chunk_count"].as_u64().unwrap() as usize;
        assert!(chunk_count >= 2, "{versions}");
        let query = json!({ "query": format!("marker{i}"), "mode": "keyword", "top_k": 100 });
        let found = call(&client, &base, &token, Method::POST, "/api/v1/search", Some(query)).await;
        let results = found["results"].as_array().unwrap();
        assert!(results.iter().all(|r| r["document_id"] == id.as_str()), "another document matched marker{i}");
        let mut texts: Vec<&str> = results.iter().map(|r| r["text"].as_str().unwrap()).collect();
        assert_eq!(texts.len(), chunk_count, "document {i}: every chunk indexed once");
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), chunk_count, "document {i}: no duplicate chunks");
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn eval_retrieval_scores_a_beir_dataset_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = dir.path().join("tiny");
    std::fs::create_dir_all(dataset.join("qrels")).unwrap();
    let corpus = [
        ("d1", "Password resets", "To reset a forgotten password, open the sign-in page and follow the reset link sent by email."),
        ("d2", "Travel policy", "Business flights are booked in economy class unless the journey lasts longer than eight hours."),
        ("d3", "Cafeteria", "The cafeteria serves lunch from noon until two in the afternoon on weekdays."),
        ("d4", "Parking", "Employees may park in the north garage; visitors use the marked spaces near the entrance."),
    ];
    let lines: Vec<String> = corpus.iter().map(|(id, title, text)| json!({ "_id": id, "title": title, "text": text }).to_string()).collect();
    std::fs::write(dataset.join("corpus.jsonl"), lines.join("\n")).unwrap();
    let queries = [("q1", "how do I reset my password"), ("q2", "which class for long flights"), ("q3", "when is lunch served")];
    let lines: Vec<String> = queries.iter().map(|(id, text)| json!({ "_id": id, "text": text }).to_string()).collect();
    std::fs::write(dataset.join("queries.jsonl"), lines.join("\n")).unwrap();
    std::fs::write(dataset.join("qrels/test.tsv"), "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq3\td3\t1\n").unwrap();

    let output = Command::new(BIN)
        .args(["--data-dir", dir.path().join("data").to_str().unwrap(), "eval", "retrieval", "--dataset", dataset.to_str().unwrap(), "--json"])
        .env("AGENTRY_LOCAL__MODELS_DIR", test_models_dir())
        .env("AGENTRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let scores: Value = serde_json::from_slice(&output.stdout).unwrap();
    for mode in ["keyword", "vector", "hybrid"] {
        for metric in ["ndcg@10", "recall@100", "mrr@10"] {
            let value = scores[mode][metric].as_f64().unwrap_or_else(|| panic!("{mode} {metric} in {scores}"));
            assert!((0.0..=1.0).contains(&value), "{mode} {metric} = {value}");
        }
        // Each query names its document plainly: every mode finds all three at the top.
        assert_eq!(scores[mode]["mrr@10"].as_f64(), Some(1.0), "{mode}: {scores}");
        assert_eq!(scores[mode]["recall@100"].as_f64(), Some(1.0), "{mode}: {scores}");
    }
}
