//! What operators watch: `/metrics` after a server has served chat,
//! embeddings, an agent run and a search passes `promtool check metrics`
//! with no finding, every family is in the catalogue and in
//! `docs/operations.md`, the scrape token reads metrics and nothing else,
//! and every metric the shipped dashboards and alert rules query is one the
//! server exposes (`deploy/check-observability`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::Method;
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::helpers::{MASTER_KEY, TestApp, mock_knowledge, send, spawn_app_with, wait_ingested};

const SCRAPE_TOKEN: &str = "prometheus-scrape-token-0123";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `promtool`: `TEST_AGENTRY_PROMTOOL`, else on PATH; required in CI.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("TEST_AGENTRY_PROMTOOL")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("promtool")).find(|path| path.is_file())));
    if found.is_none() {
        assert!(std::env::var("CI").is_err(), "promtool must be installed in CI (scripts/test installs the Debian prometheus package)");
        eprintln!("promtool not found: skipping the promtool checks (run scripts/test)");
    }
    found
}

/// A server that has served each kind of work the dashboards show.
async fn busy_app() -> (TestApp, String) {
    let mut options = mock_knowledge();
    options.metrics.bearer_token = Some(SecretString::from(SCRAPE_TOKEN));
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let token = app.token(crate::helpers::ADMIN_EMAIL).await;
    let chat = app.chat(json!({ "model": "mock-echo", "messages": [{ "role": "user", "content": "hello" }] })).await;
    assert_eq!(chat.status(), 200);
    app.embeddings(json!({ "model": "mock-embed", "input": ["hello"] })).await;
    let (status, run) = send(&app, &token, Method::POST, "/api/v1/runs", Some(json!({ "agent": "general", "input": "hello there" }))).await;
    assert_eq!(status, 200, "{run}");
    let (_, collection) = send(&app, &token, Method::POST, "/api/v1/collections", Some(json!({ "name": "docs" }))).await;
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"Refunds take five days.".to_vec()).file_name("refunds.txt"));
    let accepted: Value = app
        .with(Method::POST, &format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap()), &token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    wait_ingested(&app, &token, &accepted).await;
    let (status, found) = send(&app, &token, Method::POST, "/api/v1/search", Some(json!({ "query": "refunds", "mode": "keyword" }))).await;
    assert_eq!(status, 200, "{found}");
    let (status, rag) = send(&app, &token, Method::POST, "/api/v1/runs", Some(json!({ "agent": "rag", "input": "How long do refunds take?" }))).await;
    assert_eq!(status, 200, "{rag}");
    (app, token)
}

/// The families a scrape exposes (histogram series folded into their family).
fn families(scrape: &str) -> std::collections::BTreeSet<String> {
    scrape.lines().filter_map(|line| line.strip_prefix("# TYPE ")).filter_map(|rest| rest.split_whitespace().next()).map(str::to_owned).collect()
}

#[tokio::test]
async fn metrics_pass_promtool_and_match_the_catalogue_the_docs_and_the_dashboards() {
    let (app, token) = busy_app().await;
    let scrape = app.metrics_with("agent_requests_total{agent_type=\"rag\"").await;
    let exposed = families(&scrape);
    let catalogue: Vec<&str> = agentry_server::telemetry::catalog::FAMILIES.iter().map(|f| f.name).collect();
    for family in &exposed {
        assert!(catalogue.contains(&family.as_str()), "{family} is exposed but not in the catalogue");
        assert!(scrape.contains(&format!("# HELP {family} ")), "{family} has no help text");
    }
    for expected in [
        "http_requests_total",
        "http_request_duration_seconds",
        "model_requests_total",
        "model_request_duration_seconds",
        "token_usage_total",
        "agent_requests_total",
        "agent_run_duration_seconds",
        "agent_quality_score",
        "tool_calls_total",
        "chunks_embedded_total",
        "documents_ingested_total",
        "cache_requests_total",
        "agentry_build_info",
        "active_sessions",
        "job_queue_depth",
        "audit_write_failures_total",
        "model_call_log_dropped_total",
    ] {
        assert!(exposed.contains(expected), "{expected} is exposed after this work: {exposed:?}");
    }
    assert!(scrape.contains("http_request_duration_seconds_bucket{method=\"POST\",endpoint=\"/v1/chat/completions\",le=\"0.0001\"}"), "sub-millisecond buckets");
    assert!(scrape.contains("active_sessions{tenant=\"acme\"} 1"), "{}", scrape.lines().filter(|l| l.starts_with("active_sessions")).collect::<Vec<_>>().join("\n"));

    let operations = std::fs::read_to_string(repo_root().join("docs/operations.md")).unwrap();
    for family in agentry_server::telemetry::catalog::FAMILIES {
        assert!(operations.contains(&format!("`{}`", family.name)), "docs/operations.md lists {}", family.name);
    }

    if let Some(promtool) = promtool() {
        let mut child = Command::new(promtool).args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(scrape.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let findings = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success() && findings.trim().is_empty(), "promtool check metrics: {findings}");

        // The families this scrape exposes, and those whose series appear at
        // their first event (a budget alert, a webhook delivery…): the
        // catalogue, which a unit test ties to the code that records each.
        let names = tempfile::NamedTempFile::new().unwrap();
        let known: std::collections::BTreeSet<&str> = exposed.iter().map(String::as_str).chain(catalogue.iter().copied()).collect();
        std::fs::write(names.path(), known.iter().map(|name| format!("{name}\n")).collect::<String>()).unwrap();
        let checked = Command::new("bash")
            .arg(repo_root().join("deploy/check-observability"))
            .args(["dashboards", "--metric-names"])
            .arg(names.path())
            .current_dir(repo_root())
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "dashboards and rules query only exposed metrics:\n{}{}",
            String::from_utf8_lossy(&checked.stdout),
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    drop(token);
}

#[tokio::test]
async fn the_scrape_token_reads_metrics_and_nothing_else() {
    let (app, token) = busy_app().await;
    assert_eq!(app.client.get(app.url("/metrics")).send().await.unwrap().status(), 401);
    assert_eq!(app.with(Method::GET, "/metrics", "not-the-scrape-token-000").send().await.unwrap().status(), 401);
    assert_eq!(app.with(Method::GET, "/metrics", SCRAPE_TOKEN).send().await.unwrap().status(), 200);
    assert_eq!(app.with(Method::GET, "/metrics", MASTER_KEY).send().await.unwrap().status(), 200);
    // A tenant's admin key is not a platform credential.
    let (status, key) = send(&app, &token, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "ops" }))).await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(app.with(Method::GET, "/metrics", key["key"].as_str().unwrap()).send().await.unwrap().status(), 403);
    // The scrape token opens nothing else.
    for path in ["/api/v1/tenants", "/api/v1/admin/audit", "/v1/models", "/api/v1/collections"] {
        let status = app.with(Method::GET, path, SCRAPE_TOKEN).send().await.unwrap().status();
        assert_eq!(status, 401, "{path} with the scrape token");
    }
}
