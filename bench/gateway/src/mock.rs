//! The mock upstream: OpenAI chat completions after a fixed delay, plain or SSE.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn serve(port: u16, latency: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async move {
        let app = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/v1/chat/completions", post(move |body: axum::Json<Value>| chat(body.0, latency)));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn chat(body: Value, latency: Duration) -> Response {
    tokio::time::sleep(latency).await;
    if body["stream"].as_bool() != Some(true) {
        return axum::Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": body["model"],
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello there, how can I help?" }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16 },
        }))
        .into_response();
    }
    let mut sse = String::new();
    for piece in ["Hello", " there,", " how", " can", " I", " help?"] {
        let chunk = json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
            "choices": [{ "index": 0, "delta": { "content": piece }, "finish_reason": null }] });
        sse.push_str(&format!("data: {chunk}\n\n"));
    }
    let done = json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
        "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15 } });
    sse.push_str(&format!("data: {done}\n\ndata: [DONE]\n\n"));
    Response::builder().header("content-type", "text/event-stream").body(Body::from(sse)).unwrap_or_default()
}
