//! The tenant event stream through the server: WebSocket subscribers of two
//! tenants each see only their tenant's events, a member sees only events
//! about what they own while `manage_tenant` sees the tenant's, the SSE form
//! resumes after `Last-Event-ID`, and bad parameters get the envelope.

use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::*;
use crate::webhooks::{create_echo_agent, run_echo};

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn subscribe(app: &TestApp, token: &str, tenant: &str, query: &str) -> Socket {
    let url = format!("{}/api/v1/events{query}", app.address.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request.headers_mut().insert("x-agentry-tenant", tenant.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("the WebSocket opens");
    assert_eq!(response.status(), 101);
    socket
}

/// The events a socket receives within `wait` of the last one.
pub async fn drain(socket: &mut Socket, wait: Duration) -> Vec<Value> {
    let mut events = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(wait, socket.next()).await {
        if let Ok(Message::Text(text)) = frame {
            events.push(serde_json::from_str(&text).unwrap());
        }
    }
    events
}

fn run_ids(events: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().filter(|e| e["type"] == "run.completed").map(|e| e["data"]["run_id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn subscribers_see_only_the_events_they_may_read() {
    let app = spawn_app_with(mock_knowledge()).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, globex) = send(&app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "globex", "name": "Globex" }))).await;
    assert_eq!(status, 201, "{globex}");
    app.add_member(&admin, &tenant, "member@example.com", "user").await;
    let member = app.token("member@example.com").await;
    create_echo_agent(&app, &admin, "acme").await;
    create_echo_agent(&app, &admin, "globex").await;

    let mut acme_admin = subscribe(&app, &admin, "acme", "").await;
    let mut globex_admin = subscribe(&app, &admin, "globex", "?types=run.completed,run.failed").await;
    let mut acme_member = subscribe(&app, &member, "acme", "").await;

    let mut acme_runs = vec![run_echo(&app, &admin, "acme", "one").await, run_echo(&app, &member, "acme", "two").await];
    acme_runs.sort();
    let globex_run = run_echo(&app, &admin, "globex", "three").await;

    let seen = drain(&mut acme_admin, Duration::from_secs(2)).await;
    assert_eq!(run_ids(&seen), acme_runs, "manage_tenant sees the tenant's runs, no other tenant's: {seen:?}");
    let seen = drain(&mut globex_admin, Duration::from_secs(1)).await;
    assert_eq!(run_ids(&seen), vec![globex_run.clone()], "{seen:?}");
    let seen = drain(&mut acme_member, Duration::from_secs(1)).await;
    let own = run_echo_owner(&acme_runs, &app, &member).await;
    assert_eq!(run_ids(&seen), vec![own], "a member sees their own run only: {seen:?}");
    let event = &seen[0];
    assert!(event["seq"].is_i64() && event["id"].is_string() && event["timestamp"].is_string(), "{event}");

    // SSE, resumed after the first acme event: only what came after it.
    let (_, first_two) = {
        let mut socket = subscribe(&app, &admin, "acme", "?after=0").await;
        ((), drain(&mut socket, Duration::from_secs(1)).await)
    };
    let runs: Vec<&Value> = first_two.iter().filter(|e| e["type"] == "run.completed").collect();
    assert_eq!(runs.len(), 2, "?after=0 replays the log: {first_two:?}");
    let response = app.with(Method::GET, "/api/v1/events", &admin).header("x-agentry-tenant", "acme").header("last-event-id", runs[0]["seq"].to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = response.bytes_stream();
    let mut text = String::new();
    while !text.contains(runs[1]["id"].as_str().unwrap()) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("the resumed event").unwrap().unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!text.contains(runs[0]["id"].as_str().unwrap()), "resumed after the first: {text}");
    assert!(text.contains(&format!("id: {}", runs[1]["seq"])) && text.contains("event: run.completed"), "{text}");

    for query in ["?types=run.finished", "?after=-1", "?since=1"] {
        let response = app.with(Method::GET, &format!("/api/v1/events{query}"), &admin).header("x-agentry-tenant", "acme").send().await.unwrap();
        assert_error(response, 400, "invalid_request").await;
    }
}

/// The one of `runs` that `token`'s member owns.
async fn run_echo_owner(runs: &[String], app: &TestApp, token: &str) -> String {
    for id in runs {
        let (status, _) = send(app, token, Method::GET, &format!("/api/v1/runs/{id}"), None).await;
        if status == 200 {
            return id.clone();
        }
    }
    panic!("the member owns none of {runs:?}");
}

/// `budget.exhausted` when a budget first refuses a call, and
/// `api_key.expiring` once for a key that expires within the notice window
/// (not for one that expires later), each once.
#[tokio::test]
async fn budgets_running_out_and_keys_about_to_expire_are_published_once() {
    let mut options = TestOptions::default();
    options.events.notice_interval_secs = 1;
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let mut socket = subscribe(&app, &admin, "acme", "?types=budget.exhausted,api_key.expiring").await;

    let soon = json!({ "name": "soon", "expires_in": 3600 });
    let (status, key) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/api-keys", Some(soon)).await;
    assert_eq!(status, 201, "{key}");
    let (status, _) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "later", "expires_in": 30 * 86_400 }))).await;
    assert_eq!(status, 201);

    let budget = json!({ "scope": "tenant", "period": "daily", "limit_usd": 2.0 * crate::usage::CALL_COST_USD });
    assert_eq!(send(&app, &admin, Method::POST, "/api/v1/costs/budgets", Some(budget)).await.0, 200);
    let call = json!({ "model": "priced", "messages": user_message("a b c d e f g h"), "max_tokens": 9 });
    let mut refused = 0;
    for _ in 0..5 {
        if app.with(Method::POST, "/v1/chat/completions", &admin).json(&call).send().await.unwrap().status() == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 3, "the budget refuses once spent: {refused}");

    let events = drain(&mut socket, Duration::from_secs(3)).await;
    let of = |kind: &str| events.iter().filter(|e| e["type"] == kind).cloned().collect::<Vec<_>>();
    let expiring = of("api_key.expiring");
    assert_eq!(expiring.len(), 1, "{events:?}");
    assert_eq!((expiring[0]["data"]["api_key_id"].as_str(), expiring[0]["data"]["name"].as_str()), (key["id"].as_str(), Some("soon")), "{expiring:?}");
    let exhausted = of("budget.exhausted");
    assert_eq!(exhausted.len(), 1, "{events:?}");
    assert_eq!(exhausted[0]["data"]["alert"]["scope"], "tenant", "{exhausted:?}");
}
