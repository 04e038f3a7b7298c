//! Metering, prices, budgets, rate-limit tiers, Redis coordination and its
//! fallback, invoices and exports — through the running server.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Eight words: the mock answers "echo: a b c d e f g h", nine tokens.
const PROMPT: &str = "a b c d e f g h";
/// `priced` costs $1 per 1K output tokens and nothing for input: nine tokens = $0.009.
pub const CALL_COST_USD: f64 = 0.009;

async fn admin(app: &TestApp) -> String {
    app.bootstrap().await;
    app.token(ADMIN_EMAIL).await
}

fn priced_call() -> Value {
    json!({ "model": "priced", "messages": user_message(PROMPT), "max_tokens": 9 })
}

async fn post_json(app: &TestApp, token: &str, path: &str, body: Value) -> Value {
    let response = app.with(Method::POST, path, token).json(&body).send().await.unwrap();
    let status = response.status();
    let value: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.with(Method::GET, path, token).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Fire `n` concurrent priced calls spread over `apps`; returns (served, refused for budget).
async fn fire(apps: &[&TestApp], token: &str, n: usize) -> (usize, usize) {
    let calls = (0..n).map(|i| {
        let app = apps[i % apps.len()];
        app.with(Method::POST, "/v1/chat/completions", token).json(&priced_call()).send()
    });
    let mut served = 0;
    let mut refused = 0;
    for response in futures::future::join_all(calls).await {
        let response = response.unwrap();
        match response.status().as_u16() {
            200 => served += 1,
            429 => {
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
                refused += 1;
            }
            other => panic!("unexpected status {other}: {}", response.text().await.unwrap()),
        }
    }
    (served, refused)
}

async fn budget_for_fifty(app: &TestApp, token: &str) {
    let budget = post_json(app, token, "/api/v1/costs/budgets", json!({ "scope": "tenant", "period": "daily", "limit_usd": 50.0 * CALL_COST_USD })).await;
    assert_eq!(budget["spent_usd"], 0.0);
}

#[tokio::test]
async fn a_budget_that_fits_fifty_admits_fifty_of_two_hundred_concurrent_calls() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    budget_for_fifty(&app, &token).await;
    let (served, refused) = fire(&[&app], &token, 200).await;
    assert_eq!((served, refused), (50, 150));
    // Settled, the counter shows exactly the budget spent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let budgets = get_json(&app, &token, "/api/v1/costs/budgets").await;
    let spent = budgets["data"][0]["spent_usd"].as_f64().unwrap();
    assert!((spent - 50.0 * CALL_COST_USD).abs() < 1e-9, "spent {spent}");
    // Raising the budget lets calls through again.
    post_json(&app, &token, "/api/v1/costs/budgets", json!({ "scope": "tenant", "period": "daily", "limit_usd": 51.0 * CALL_COST_USD })).await;
    assert_eq!(app.with(Method::POST, "/v1/chat/completions", &token).json(&priced_call()).send().await.unwrap().status(), 200);
}

fn redis_url() -> Option<String> {
    match std::env::var("TEST_AGENTRY_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_REDIS_URL must be set in CI (scripts/test sets it)");
            None
        }
    }
}

#[tokio::test]
async fn three_replicas_sharing_redis_never_overspend() {
    let Some(redis) = redis_url() else { return };
    let Some(postgres) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let options = || TestOptions { postgres_url: Some(postgres.clone()), redis_url: Some(redis.clone()), ..TestOptions::default() };
    let first = spawn_app_with(options()).await;
    let token = admin(&first).await;
    let second = spawn_app_with(options()).await;
    let third = spawn_app_with(options()).await;
    budget_for_fifty(&first, &token).await;
    for app in [&first, &second, &third] {
        let ready = get_json(app, &token, "/ready").await;
        assert_eq!(ready["checks"]["coordination"], "redis", "{ready}");
    }
    // Other replicas read the new budget within the policy cache's 5 s.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    let (served, refused) = fire(&[&first, &second, &third], &token, 200).await;
    assert_eq!((served, refused), (50, 150));
}

async fn assign_tier(app: &TestApp, token: &str, tier: &str, limits: Value) {
    // A limit past what the store holds is refused, not clamped behind the caller's back.
    let huge = json!({ "requests_per_day": 9_223_372_036_854_775_808u64 });
    let response = app.with(Method::PUT, &format!("/api/v1/admin/rate-limits/tiers/{tier}"), token).json(&huge).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let response = app.with(Method::PUT, &format!("/api/v1/admin/rate-limits/tiers/{tier}"), token).json(&limits).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.with(Method::PUT, "/api/v1/rate-limits/assignments", token).json(&json!({ "scope": "tenant", "tier": tier })).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

async fn three_per_minute_then_refused(app: &TestApp, token: &str) {
    for expected_remaining in [2, 1, 0] {
        let response = app.with(Method::POST, "/v1/chat/completions", token).json(&priced_call()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["ratelimit-limit"], "3");
        assert_eq!(response.headers()["ratelimit-remaining"], expected_remaining.to_string().as_str());
        assert!(response.headers().contains_key("ratelimit-reset"));
    }
    let refused = app.with(Method::POST, "/v1/chat/completions", token).json(&priced_call()).send().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    let body = assert_error(refused, 429, "rate_limit_exceeded").await;
    assert!(body["message"].as_str().unwrap().contains("requests_per_minute"), "{body}");
}

#[tokio::test]
async fn tier_limits_apply_with_headers_and_change_live() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    assign_tier(&app, &token, "tiny", json!({ "requests_per_minute": 3 })).await;
    three_per_minute_then_refused(&app, &token).await;
    // A higher tier applies at once on this replica.
    assign_tier(&app, &token, "roomy", json!({ "requests_per_minute": 1000, "concurrent": 10 })).await;
    let response = app.with(Method::POST, "/v1/chat/completions", &token).json(&priced_call()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(app.metrics().await.contains("rate_limited_requests_total"));
}

#[tokio::test]
async fn unreachable_redis_falls_back_to_local_limits_and_says_so() {
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let app = spawn_app_with(TestOptions { redis_url: Some(dead), ..TestOptions::default() }).await;
    let token = admin(&app).await;
    let ready = get_json(&app, &token, "/ready").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["coordination"], "redis_unavailable");
    assign_tier(&app, &token, "tiny", json!({ "requests_per_minute": 3 })).await;
    three_per_minute_then_refused(&app, &token).await;
    assert!(app.metrics().await.contains("coordination_degraded 1"));
}

#[tokio::test]
async fn per_ip_limit_on_unauthenticated_routes() {
    let mut options = TestOptions::default();
    options.usage.public_requests_per_minute_per_ip = 2;
    let app = spawn_app_with(options).await;
    let login = || app.client.post(app.url("/api/v1/auth/login")).json(&json!({ "email": "x@example.com", "password": "nope nope nope" })).send();
    for _ in 0..2 {
        let response = login().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.headers().contains_key("ratelimit-remaining"));
    }
    assert_error(login().await.unwrap(), 429, "rate_limit_exceeded").await;
    // Health probes are never limited.
    for _ in 0..5 {
        assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn costs_follow_price_changes_and_invoices_equal_metered_usage() {
    let app = spawn_app_with(TestOptions { test_payments: true, ..TestOptions::default() }).await;
    let token = admin(&app).await;
    for _ in 0..3 {
        assert_eq!(app.with(Method::POST, "/v1/chat/completions", &token).json(&priced_call()).send().await.unwrap().status(), 200);
    }
    // Mid-period the tenant's price for `priced` doubles: earlier calls keep their cost.
    post_json(&app, &token, "/api/v1/costs/prices", json!({ "model": "priced", "input_per_1k": 0.0, "output_per_1k": 2.0 })).await;
    for _ in 0..2 {
        assert_eq!(app.with(Method::POST, "/v1/chat/completions", &token).json(&priced_call()).send().await.unwrap().status(), 200);
    }
    let calls = app.model_calls(5).await;
    let mut costs: Vec<i64> = calls.iter().map(|c| c.cost_nusd).collect();
    costs.sort_unstable();
    assert_eq!(costs, vec![9_000_000, 9_000_000, 9_000_000, 18_000_000, 18_000_000]);
    let metered: i64 = calls.iter().map(|c| c.cost_nusd).sum();

    let stats = get_json(&app, &token, "/api/v1/costs/stats").await;
    assert_eq!(stats["total"]["requests"], 5);
    assert!((stats["total"]["cost_usd"].as_f64().unwrap() - 0.063).abs() < 1e-12, "{stats}");

    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let invoice = post_json(&app, &token, "/api/v1/billing/invoices", json!({ "period": month })).await;
    assert_eq!(invoice["total_nusd"], metered);
    let line_sum: f64 = invoice["lines"].as_array().unwrap().iter().map(|l| l["amount_usd"].as_f64().unwrap()).sum();
    assert!((line_sum - 0.063).abs() < 1e-12);
    let id = invoice["id"].as_str().unwrap();

    let csv_text = app.with(Method::GET, &format!("/api/v1/billing/invoices/{id}?format=csv"), &token).send().await.unwrap().text().await.unwrap();
    let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(csv_text.as_bytes()).records().map(Result::unwrap).collect();
    assert_eq!(rows.last().unwrap()[2].to_owned(), "TOTAL");
    assert_eq!(rows.last().unwrap()[7].parse::<f64>().unwrap(), 0.063);
    let html = app.with(Method::GET, &format!("/api/v1/billing/invoices/{id}?format=html"), &token).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<table") && html.contains("priced"));

    let paid = post_json(&app, &token, &format!("/api/v1/billing/invoices/{id}/pay"), json!({})).await;
    assert_eq!(paid["status"], "paid");
    let again = app.with(Method::POST, "/api/v1/billing/invoices", &token).json(&json!({ "period": month })).send().await.unwrap();
    assert_error(again, 409, "conflict").await;

    let export = app.with(Method::GET, "/api/v1/usage/export", &token).send().await.unwrap().text().await.unwrap();
    let mut reader = csv::Reader::from_reader(export.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let cost_column = headers.iter().position(|h| h == "cost_usd").unwrap();
    let exported: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(exported.len(), 5);
    let exported_sum: f64 = exported.iter().map(|r| r[cost_column].parse::<f64>().unwrap()).sum();
    assert!((exported_sum - 0.063).abs() < 1e-12);

    // The same records as JSON, a page at a time, in the export's order.
    let (mut listed, mut sizes, mut path) = (Vec::new(), Vec::new(), "/api/v1/usage/records?limit=2".to_owned());
    loop {
        let page = get_json(&app, &token, &path).await;
        let data = page["data"].as_array().unwrap();
        sizes.push(data.len());
        listed.extend(data.iter().map(|r| (r["id"].as_str().unwrap().to_owned(), r["cost_usd"].as_f64().unwrap())));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/usage/records?limit=2&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    let exported_ids: Vec<String> = exported.iter().map(|r| r[0].to_owned()).collect();
    assert_eq!(listed.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), exported_ids);
    assert!((listed.iter().map(|(_, cost)| cost).sum::<f64>() - 0.063).abs() < 1e-12);
    // Days outside what a report can name are refused, not computed past the calendar's end.
    for (query, param) in [("from=2026-01-01&to=%2B262142-12-31", "to"), ("from=1969-12-31&to=2026-01-01", "from")] {
        for path in ["/api/v1/usage/records", "/api/v1/usage/export", "/api/v1/usage/summary"] {
            let response = app.with(Method::GET, &format!("{path}?{query}"), &token).send().await.unwrap();
            assert_eq!(response.status(), 400, "{path}?{query}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["param"], param, "{path}?{query}: {error}");
        }
    }

    let by_user = get_json(&app, &token, "/api/v1/usage/summary?group_by=user&format=json").await;
    assert_eq!(by_user["groups"].as_array().unwrap().len(), 1);
    let forecast = get_json(&app, &token, "/api/v1/costs/forecast?period=monthly").await;
    assert!(forecast["projected_usd"].as_f64().unwrap() >= 0.063 - 1e-12, "{forecast}");
}

#[tokio::test]
async fn optimizer_routes_simple_prompts_to_the_cheap_model_and_cache_saves() {
    let app = spawn_app().await;
    let token = admin(&app).await;
    let response = app.with(Method::PUT, "/api/v1/costs/settings", &token).json(&json!({ "optimizer_enabled": true, "response_cache_enabled": true })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ask = json!({ "model": "auto", "messages": user_message("What is two plus two?") });
    let first: Value = app.with(Method::POST, "/v1/chat/completions", &token).json(&ask).send().await.unwrap().json().await.unwrap();
    assert_eq!(first["model"], "gpt-4o-mini", "{first}");
    let second: Value = app.with(Method::POST, "/v1/chat/completions", &token).json(&ask).send().await.unwrap().json().await.unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], first["choices"][0]["message"]["content"]);
    let calls = app.model_calls(2).await;
    let hit = calls.iter().find(|c| c.cache_hit).expect("a cache hit");
    assert_eq!(hit.cost_nusd, 0);
    let summary = get_json(&app, &token, "/api/v1/usage/summary").await;
    assert_eq!(summary["total"]["cache_hits"], 1);
    assert!(summary["total"]["saved_usd"].as_f64().unwrap() > 0.0, "{summary}");
    let metrics = app.metrics().await;
    assert!(metrics.contains("cache_requests_total{cache=\"response\",result=\"hit\"}"));
}
