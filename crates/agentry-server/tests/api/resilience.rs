//! Retries, Retry-After, fallbacks, timeouts, circuit breakers and streams
//! that must not be switched or leaked.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{assert_error, spawn_app, sse_data, user_message};

#[tokio::test]
async fn retries_a_failing_call_then_succeeds() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "flaky", "messages": user_message("hi") })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.hits("flaky"), 2, "one failure, one retry");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let app = spawn_app().await;
    let started = Instant::now();
    let response = app.chat(json!({ "model": "rate-limited", "messages": user_message("hi") })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.upstream.hits("rate-limited"), 2);
    assert!(started.elapsed() >= Duration::from_millis(950), "waited for Retry-After: 1 ({:?})", started.elapsed());
}

#[tokio::test]
async fn falls_back_on_500() {
    let app = spawn_app().await;
    let body: Value = app.chat(json!({ "model": "fail-500", "messages": user_message("hi") })).await.json().await.unwrap();
    assert_eq!(body["model"], "gpt-ok", "the answer names the model that produced it");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from upstream");
    assert_eq!(app.upstream.hits("fail-500"), 3, "first attempt plus two retries before falling back");
}

#[tokio::test]
async fn falls_back_on_timeout() {
    let app = spawn_app().await;
    let started = Instant::now();
    let body: Value = app.chat(json!({ "model": "slow", "messages": user_message("hi") })).await.json().await.unwrap();
    assert_eq!(body["model"], "gpt-ok");
    assert!(started.elapsed() < Duration::from_secs(4), "timeouts (0.5 s × 3 attempts) cut the 2 s upstream short: {:?}", started.elapsed());
}

#[tokio::test]
async fn exhausted_model_without_fallback_is_502() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "always-500", "messages": user_message("hi") })).await;
    let error = assert_error(response, 502, "upstream_error").await;
    assert!(!error["message"].as_str().unwrap().contains("boom"), "upstream internals are not passed on");
}

#[tokio::test]
async fn breaker_opens_fails_fast_then_half_opens_and_closes() {
    let app = spawn_app().await;
    // 3 attempts of one request reach the threshold (3) and open the breaker of "broken".
    let first = app.chat(json!({ "model": "always-500", "messages": user_message("hi") })).await;
    assert_eq!(first.status(), 502);
    assert_eq!(app.upstream.hits("always-500"), 3);
    assert!(app.metrics().await.contains(r#"circuit_breaker_state{upstream="broken"} 1"#));

    // While open, nothing reaches the upstream and the answer is immediate.
    let started = Instant::now();
    let open = app.chat(json!({ "model": "always-500", "messages": user_message("hi") })).await;
    assert_error(open, 503, "service_unavailable").await;
    assert!(started.elapsed() < Duration::from_millis(100), "{:?}", started.elapsed());
    assert_eq!(app.upstream.hits("always-500"), 3);
    // A fallback on another upstream still serves requests for a model on the open circuit.
    let fallback: Value = app.chat(json!({ "model": "fail-500", "messages": user_message("hi") })).await.json().await.unwrap();
    assert_eq!(fallback["model"], "gpt-ok");
    assert_eq!(app.upstream.hits("fail-500"), 0, "open circuit: the failing upstream is skipped");

    // After the cool-down one probe goes through; `flaky` was never called, so it fails once (reopening)…
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probe = app.chat(json!({ "model": "flaky", "messages": user_message("hi") })).await;
    assert_eq!(probe.status(), 503, "failed probe reopens the circuit");
    assert_eq!(app.upstream.hits("flaky"), 1);
    // …and the next probe succeeds and closes it.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probe = app.chat(json!({ "model": "flaky", "messages": user_message("hi") })).await;
    assert_eq!(probe.status(), 200);
    assert!(app.metrics().await.contains(r#"circuit_breaker_state{upstream="broken"} 0"#));
}

#[tokio::test]
async fn a_stream_that_sent_tokens_is_not_switched_to_another_model() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "stream-then-fail", "messages": user_message("hi"), "stream": true })).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let frames = sse_data(&text);
    let content: String =
        frames.iter().filter_map(|f| serde_json::from_str::<Value>(f).ok()).filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned)).collect();
    assert_eq!(content, "Hello wor", "only the first model's tokens");
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert!(last["error"]["message"].is_string(), "the stream ends with an error event: {text}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(app.upstream.hits("gpt-ok"), 0, "the fallback is never called mid-stream");
}

#[tokio::test]
async fn client_disconnect_mid_stream_frees_the_upstream() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "stream-hang", "messages": user_message("hi"), "stream": true })).await;
    assert_eq!(response.status(), 200);
    let mut response = response;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert_eq!(app.upstream.open_streams(), 1);
    drop(response);
    let mut open = 1;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        open = app.upstream.open_streams();
        if open == 0 {
            break;
        }
    }
    assert_eq!(open, 0, "the upstream connection is closed when the client goes away");
    let calls = app.model_calls(1).await;
    assert_eq!(calls[0].status, "cancelled");
}
