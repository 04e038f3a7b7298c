//! Webhooks through the server, against a real HTTP receiver: events reach
//! an endpoint that refuses for a while and then recovers (nothing lost),
//! every message verifies with the reference Standard Webhooks library
//! (`standardwebhooks` on PyPI), a rotated secret signs alongside the old
//! one during its overlap, deliveries are logged and can be sent again, an
//! endpoint that only fails is disabled with an audit event and a
//! `webhook.disabled` event, and URLs that reach this machine are refused.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// One request the receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

/// A webhook receiver on a local port: refuses (503) its first `refuse` requests, then accepts.
pub struct Receiver {
    pub url: String,
    pub accepted: Arc<Mutex<Vec<Received>>>,
    pub refused: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(refuse: usize) -> Self {
        let accepted: Arc<Mutex<Vec<Received>>> = Arc::default();
        let refused = Arc::new(AtomicUsize::new(0));
        let (store, count) = (accepted.clone(), refused.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let (store, count) = (store.clone(), count.clone());
                async move {
                    if count.fetch_add(1, Ordering::SeqCst) < refuse {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    count.fetch_sub(1, Ordering::SeqCst);
                    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                    store.lock().push(Received { id: header("webhook-id"), timestamp: header("webhook-timestamp"), signature: header("webhook-signature"), body });
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr().unwrap().port());
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        Self { url, accepted, refused }
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.accepted.lock().clone()
    }
}

/// Webhook settings that reach the local receiver and retry every second.
pub fn local_webhooks(retries: usize) -> agentry_core::webhooks::WebhooksSettings {
    agentry_core::webhooks::WebhooksSettings { allow: serde_json::from_value(json!(["127.0.0.1/32"])).unwrap(), retry_schedule_secs: vec![1; retries], ..Default::default() }
}

/// Whether each message verifies with `secret`, by the reference library.
fn verified_by_reference(secret: &str, messages: &[Received]) -> Vec<bool> {
    let python = std::env::var("TEST_AGENTRY_PYTHON").unwrap_or_else(|_| {
        assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_PYTHON must be set in CI (scripts/test sets it)");
        format!("{}/.cache/agentry-venv/bin/python", std::env::var("HOME").unwrap_or_default())
    });
    let input = json!({
        "secret": secret,
        "messages": messages.iter().map(|m| json!({ "body": m.body, "headers": { "webhook-id": m.id, "webhook-timestamp": m.timestamp, "webhook-signature": m.signature } })).collect::<Vec<_>>(),
    });
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
given = json.load(sys.stdin)
hook = Webhook(given["secret"])
results = []
for message in given["messages"]:
    try:
        hook.verify(message["body"], message["headers"])
        results.append(True)
    except Exception:
        results.append(False)
print(json.dumps(results))
"#;
    let mut child = std::process::Command::new(python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python with standardwebhooks (scripts/test installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the reference verifier ran");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Poll `check` until it yields a value (at most 40 s).
pub async fn wait_for<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Create an agent on the mock model and run it once (a `run.completed` event).
pub async fn run_echo(app: &TestApp, token: &str, tenant: &str, input: &str) -> String {
    let response = app.with(Method::POST, "/api/v1/runs", token).header("x-agentry-tenant", tenant).json(&json!({ "agent": "echo", "input": input })).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["run_id"].as_str().or(body["id"].as_str()).unwrap_or_else(|| panic!("a run id in {body}")).to_owned()
}

pub async fn create_echo_agent(app: &TestApp, token: &str, tenant: &str) {
    let response = app
        .with(Method::POST, "/api/v1/agents", token)
        .header("x-agentry-tenant", tenant)
        .json(&json!({ "name": "echo", "instructions": "Repeat.", "model": "mock-echo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn events_reach_a_recovering_receiver_signed_as_the_standard_says() {
    let mut options = mock_knowledge();
    options.webhooks = local_webhooks(8);
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    create_echo_agent(&app, &admin, "acme").await;
    let receiver = Receiver::start(4).await;

    let (status, created) =
        send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": receiver.url, "events": ["run.completed", "webhook.test"], "description": "ops" }))).await;
    assert_eq!(status, 201, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, shown) = send(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
    assert!(shown.get("secret").is_none(), "the secret is shown once: {shown}");

    // Three runs while the receiver refuses its first four requests: all arrive once it recovers.
    let mut runs = HashSet::new();
    for n in 0..3 {
        runs.insert(run_echo(&app, &admin, "acme", &format!("hello {n}")).await);
    }
    let delivered = wait_for("three deliveries", async || {
        let got = receiver.accepted();
        let ids: HashSet<String> = got.iter().filter_map(|m| serde_json::from_str::<Value>(&m.body).ok()).filter_map(|b| b["data"]["run_id"].as_str().map(str::to_owned)).collect();
        (ids == runs).then_some(got)
    })
    .await;
    assert!(receiver.refused.load(Ordering::SeqCst) >= 4, "the receiver refused first");
    let payload: Value = serde_json::from_str(&delivered[0].body).unwrap();
    assert_eq!(payload["type"], "run.completed", "{payload}");
    assert!(payload["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{payload}");
    assert_eq!(payload["data"]["status"], "succeeded", "{payload}");
    assert!(verified_by_reference(&secret, &delivered).iter().all(|ok| *ok), "every message verifies");
    assert!(verified_by_reference("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &delivered).iter().all(|ok| !ok), "and not with another secret");

    // The log: each delivery with its attempts, answer and latency.
    let log = wait_for("a settled delivery log", async || {
        let (_, log) = send(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}/deliveries"), None).await;
        let rows = log["data"].as_array().cloned().unwrap_or_default();
        (rows.len() == 3 && rows.iter().all(|d| d["status"] == "delivered")).then_some(rows)
    })
    .await;
    assert!(log.iter().any(|d| d["attempts"].as_i64() > Some(1)), "some delivery was retried: {log:?}");
    assert!(log.iter().all(|d| d["response_status"] == 204 && d["latency_ms"].is_i64() && d["payload"]["type"] == "run.completed"), "{log:?}");

    // Rotation: during the overlap both secrets verify the next message.
    let (status, rotated) = send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/rotate-secret"), Some(json!({ "overlap_secs": 3600 }))).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["previous_secret_until_ms"].is_i64(), "{rotated}");
    let (status, test) = send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 202, "{test}");
    let message = wait_for("the test event", async || receiver.accepted().into_iter().find(|m| m.id == test["id"].as_str().unwrap())).await;
    assert_eq!(message.signature.split(' ').count(), 2, "two signatures: {}", message.signature);
    assert_eq!(verified_by_reference(&secret, std::slice::from_ref(&message)), vec![true]);
    assert_eq!(verified_by_reference(&new_secret, std::slice::from_ref(&message)), vec![true]);

    // Redelivery: the same message id and body again.
    let first = &log[0];
    let (status, again) = send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/deliveries/{}/redeliver", first["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 202, "{again}");
    let copies = wait_for("the redelivery", async || {
        let copies: Vec<Received> = receiver.accepted().into_iter().filter(|m| m.id == first["id"].as_str().unwrap()).collect();
        (copies.len() == 2).then_some(copies)
    })
    .await;
    assert_eq!(copies[0].body, copies[1].body);

    // Bad input gets the envelope.
    let (status, bad) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": receiver.url, "events": ["run.finished"] }))).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["param"], "events", "{bad}");
    let (status, bad) = send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/rotate-secret"), Some(json!({ "overlap_secs": 8 * 86_400 }))).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test]
async fn a_webhook_cannot_reach_this_machine_or_its_network() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let receiver = Receiver::start(0).await;
    let port = receiver.url.split(':').nth(2).unwrap().split('/').next().unwrap().to_owned();
    for url in [
        receiver.url.clone(),
        "http://169.254.169.254/latest/meta-data".into(),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://10.0.0.1/hook".into(),
        "file:///etc/passwd".into(),
    ] {
        let (status, body) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": url, "events": ["*"] }))).await;
        assert_eq!((status, body["error"]["param"].as_str()), (400, Some("url")), "{url}: {body}");
    }
    // A name that resolves to loopback is refused when it is delivered (the address checked is the address used).
    let (status, created) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": format!("http://localhost:{port}/hook"), "events": ["*"] }))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (status, test) = send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 202, "{test}");
    let attempt = wait_for("the refused attempt", async || {
        let (_, log) = send(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}/deliveries"), None).await;
        log["data"].as_array().and_then(|rows| rows.first().cloned()).filter(|d| d["attempts"].as_i64() >= Some(1))
    })
    .await;
    assert!(attempt["error"].as_str().is_some_and(|e| e.contains("webhooks.allow")), "{attempt}");
    assert!(attempt["response_status"].is_null(), "{attempt}");
    assert!(receiver.accepted().is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn an_endpoint_that_only_fails_is_disabled_audited_and_announced() {
    let mut options = mock_knowledge();
    options.webhooks = agentry_core::webhooks::WebhooksSettings { disable_after_hours: 2.0 / 3600.0, ..local_webhooks(10) };
    let app = spawn_app_with(options).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let receiver = Receiver::start(usize::MAX).await;
    let (_, failing) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": receiver.url, "events": ["webhook.test"] }))).await;
    let healthy_receiver = Receiver::start(0).await;
    let (_, watcher) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": healthy_receiver.url, "events": ["webhook.disabled"] }))).await;
    let id = failing["id"].as_str().unwrap();
    send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/test"), None).await;

    let disabled = wait_for("the endpoint disabled", async || {
        let (_, hook) = send(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{id}"), None).await;
        (hook["status"] == "disabled").then_some(hook)
    })
    .await;
    assert!(disabled["disabled_reason"].as_str().is_some_and(|r| r.contains("failed")), "{disabled}");
    let announced = wait_for("webhook.disabled delivered", async || healthy_receiver.accepted().into_iter().next()).await;
    let payload: Value = serde_json::from_str(&announced.body).unwrap();
    assert_eq!((payload["type"].as_str(), payload["data"]["webhook_id"].as_str()), (Some("webhook.disabled"), Some(id)), "{payload}");
    assert!(watcher["id"].is_string());
    let (_, audit) = send(&app, &admin, Method::GET, &format!("/api/v1/tenants/{tenant}/audit?action=webhook.disable"), None).await;
    assert!(audit["data"].as_array().is_some_and(|rows| rows.iter().any(|r| r["resource"] == format!("webhook:{id}"))), "{audit}");

    // A disabled endpoint is sent nothing until it is enabled again.
    let (status, refused) = send(&app, &admin, Method::POST, &format!("/api/v1/webhooks/{id}/test"), None).await;
    assert_eq!(status, 409, "{refused}");
    let (status, enabled) = send(&app, &admin, Method::PATCH, &format!("/api/v1/webhooks/{id}"), Some(json!({ "enabled": true }))).await;
    assert_eq!((status, enabled["status"].as_str()), (200, Some("enabled")), "{enabled}");
}

#[tokio::test]
async fn a_webhook_never_carries_events_its_owner_may_not_read() {
    let mut options = mock_knowledge();
    options.webhooks = local_webhooks(2);
    let app = spawn_app_with(options).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    create_echo_agent(&app, &admin, "acme").await;
    let (status, role) = send(
        &app,
        &admin,
        Method::PUT,
        &format!("/api/v1/tenants/{tenant}/roles/integrator"),
        Some(json!({ "description": "hooks only", "permissions": ["manage_integrations"] })),
    )
    .await;
    assert!(status == 200 || status == 201, "{role}");
    app.add_member(&admin, &tenant, "hooks@example.com", "integrator").await;
    let integrator = app.token("hooks@example.com").await;

    // A member who may manage webhooks but read no runs: admin's runs never reach their endpoint, nor their log.
    let receiver = Receiver::start(0).await;
    let (status, hook) = send(&app, &integrator, Method::POST, "/api/v1/webhooks", Some(json!({ "url": receiver.url, "events": ["*"] }))).await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap().to_owned();
    run_echo(&app, &admin, "acme", "private question").await;
    let row = wait_for("the skipped delivery", async || {
        let (_, log) = send(&app, &integrator, Method::GET, &format!("/api/v1/webhooks/{id}/deliveries"), None).await;
        log["data"].as_array().and_then(|rows| rows.first().cloned()).filter(|d| d["status"] != "pending")
    })
    .await;
    assert_eq!(row["status"], "skipped", "{row}");
    assert!(row["payload"].is_null(), "no payload for an event they may not read: {row}");
    assert!(receiver.accepted().is_empty());

    // The admin's webhook, re-aimed by the admin's own key scoped to manage_integrations, now acts for that key:
    // it cannot carry the admin's wider access to the key holder's receiver.
    let admin_receiver = Receiver::start(0).await;
    let (_, hook) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": admin_receiver.url, "events": ["run.completed"] }))).await;
    let admin_hook = hook["id"].as_str().unwrap().to_owned();
    let (status, key) = send(&app, &admin, Method::POST, &format!("/api/v1/tenants/{tenant}/api-keys"), Some(json!({ "name": "hooks", "scopes": ["manage_integrations"] }))).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let stolen = Receiver::start(0).await;
    let (status, patched) = send(&app, &key, Method::PATCH, &format!("/api/v1/webhooks/{admin_hook}"), Some(json!({ "url": stolen.url }))).await;
    assert_eq!(status, 200, "{patched}");
    run_echo(&app, &admin, "acme", "after the change").await;
    let row = wait_for("the re-aimed delivery", async || {
        let (_, log) = send(&app, &admin, Method::GET, &format!("/api/v1/webhooks/{admin_hook}/deliveries"), None).await;
        log["data"].as_array().and_then(|rows| rows.first().cloned()).filter(|d| d["status"] != "pending")
    })
    .await;
    assert_eq!(row["status"], "skipped", "{row}");
    assert!(stolen.accepted().is_empty(), "nothing reached the key holder's receiver");
    assert!(admin_receiver.accepted().is_empty());
}
