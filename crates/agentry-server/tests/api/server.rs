//! Probes, request ids, metrics, configuration errors, graceful shutdown, PostgreSQL.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestOptions, spawn_app, spawn_app_with, user_message};

#[tokio::test]
async fn health_and_ready_answer_without_auth() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"], "ok");
}

#[tokio::test]
async fn request_id_is_generated_or_echoed() {
    let app = spawn_app().await;
    let generated = app.client.get(app.url("/health")).send().await.unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("req_"), "{id}");
    let echoed = app.client.get(app.url("/health")).header("x-request-id", "client-chosen-id").send().await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "client-chosen-id");
}

#[tokio::test]
async fn metrics_use_route_templates_and_count_model_calls() {
    let app = spawn_app().await;
    app.get("/v1/models/gpt-ok").send().await.unwrap();
    app.get("/v1/models/does-not-exist").send().await.unwrap();
    app.client.get(app.url("/no/such/path/12345")).send().await.unwrap();
    let response = app.chat(json!({ "model": "gpt-ok", "messages": user_message("hi") })).await;
    assert_eq!(response.status(), 200);
    let unauthenticated = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let text = app.metrics().await;
    assert!(text.contains(r#"endpoint="/v1/models/{id}""#), "{text}");
    assert!(!text.contains("does-not-exist"), "raw paths must not become labels");
    assert!(!text.contains("12345"), "raw paths must not become labels");
    assert!(text.contains(r#"endpoint="unmatched""#));
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"model_requests_total{model="gpt-ok",provider="openai_compat",status="success"}"#), "{text}");
    assert!(text.contains(r#"token_usage_total{model="gpt-ok",type="input"}"#), "{text}");
    assert!(text.contains("model_request_duration_seconds"));
    assert!(text.contains(r#"circuit_breaker_state{upstream="healthy"}"#), "{text}");
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let app = spawn_app_with(TestOptions { router_timeout_secs: 5.0, ..TestOptions::default() }).await;
    let in_flight = {
        let request = app.post("/v1/chat/completions").json(&json!({ "model": "slow", "messages": user_message("hi") }));
        tokio::spawn(async move { request.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown.cancel();
    let response = in_flight.await.unwrap().expect("in-flight request completes");
    assert_eq!(response.status(), 200);
    tokio::time::timeout(Duration::from_secs(10), app.server).await.expect("server stops").unwrap().unwrap();
    assert!(app.client.get(format!("{}/health", app.address)).send().await.is_err(), "no new connections after shutdown");
}

#[tokio::test]
async fn grace_period_bounds_shutdown() {
    let app = spawn_app_with(TestOptions { router_timeout_secs: 60.0, grace_secs: 1, ..TestOptions::default() }).await;
    let response = app.chat(json!({ "model": "stream-hang", "messages": user_message("hi"), "stream": true })).await;
    assert_eq!(response.status(), 200);
    app.shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), app.server).await;
    assert!(stopped.is_ok(), "server must stop once the grace period is over, even with a hung stream");
}

#[tokio::test]
async fn gateway_runs_on_postgres_and_logs_calls() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let app = spawn_app_with(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await;
    let response = app.chat(json!({ "model": "gpt-ok", "messages": user_message("hi") })).await;
    assert_eq!(response.status(), 200);
    let calls = app.model_calls(1).await;
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].model, "gpt-ok");
    assert_eq!(calls[0].input_tokens, 5);
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
}

#[test]
fn settings_errors_name_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentry.toml");
    std::fs::write(&path, "lsten = \"127.0.0.1:1\"\n").unwrap();
    let error = agentry_server::Settings::load(Some(&path)).unwrap_err().to_string();
    assert!(error.contains("lsten"), "{error}");
    std::fs::write(&path, "listen = \"not an address\"\n").unwrap();
    let error = agentry_server::Settings::load(Some(&path)).unwrap_err().to_string();
    assert!(error.contains("listen"), "{error}");
    std::fs::write(&path, "[router]\ntimeout_secs = -1\n").unwrap();
    let error = agentry_server::Settings::load(Some(&path)).unwrap_err().to_string();
    assert!(error.contains("router.timeout_secs"), "{error}");
    let error = agentry_server::Settings::load(Some(&dir.path().join("missing.toml"))).unwrap_err().to_string();
    assert!(error.contains("does not exist"), "{error}");
}

#[tokio::test]
async fn generated_master_key_is_stored_with_0600_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = agentry_server::master_key::resolve(None, dir.path()).unwrap();
    assert!(matches!(first, agentry_server::master_key::MasterKey::Generated(_)));
    let path = dir.path().join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let second = agentry_server::master_key::resolve(None, dir.path()).unwrap();
    assert!(matches!(second, agentry_server::master_key::MasterKey::Stored(_)));
    use secrecy::ExposeSecret;
    assert_eq!(first.secret().expose_secret(), second.secret().expose_secret());
}
