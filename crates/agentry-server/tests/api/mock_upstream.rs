//! An in-test upstream speaking OpenAI's (`/v1/...`) and Anthropic's
//! (`/anthropic/v1/messages`) wire formats, scripted by model name:
//! `gpt-ok`, `echo-params`, `fail-500`/`always-500`, `slow` (2 s), `flaky`
//! (first call 500), `rate-limited` (first call 429 + Retry-After: 1),
//! `stream-hang` (one chunk, then silence), `stream-then-fail` (two chunks,
//! then a cut connection), `claude-test`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Recorded {
    hits: Mutex<HashMap<String, usize>>,
    pub bodies: Mutex<Vec<Value>>,
    pub headers: Mutex<Vec<HeaderMap>>,
    pub open_streams: AtomicUsize,
}

#[derive(Clone)]
pub struct MockUpstream {
    pub url: String,
    pub recorded: Arc<Recorded>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        let recorded = Arc::new(Recorded::default());
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(openai_chat))
            .route("/v1/embeddings", post(openai_embeddings))
            .route("/anthropic/v1/messages", post(anthropic_messages))
            .with_state(recorded.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind mock");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, recorded }
    }

    pub fn hits(&self, model: &str) -> usize {
        self.recorded.hits.lock().get(model).copied().unwrap_or(0)
    }

    pub fn open_streams(&self) -> usize {
        self.recorded.open_streams.load(Ordering::SeqCst)
    }
}

fn hit(recorded: &Recorded, model: &str, body: &Value, headers: &HeaderMap) -> usize {
    recorded.bodies.lock().push(body.clone());
    recorded.headers.lock().push(headers.clone());
    let mut hits = recorded.hits.lock();
    let count = hits.entry(model.to_owned()).or_insert(0);
    *count += 1;
    *count
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "type": "server_error", "code": null, "param": null } }))).into_response()
}

fn completion(model: &str, content: &str) -> Value {
    json!({
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9 },
    })
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    });
    format!("data: {chunk}\n\n")
}

/// Decrements the open-stream count when the response body is dropped
/// (finished, or the client went away).
struct StreamGuard(Arc<Recorded>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

fn sse_response(recorded: Arc<Recorded>, frames: Vec<String>, then: Tail) -> Response {
    recorded.open_streams.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard(recorded);
    let head = futures::stream::iter(frames.into_iter().map(|f| Ok::<Bytes, std::io::Error>(Bytes::from(f))));
    let tail = futures::stream::once(async move {
        let _guard = guard;
        match then {
            Tail::End => Ok(Bytes::new()),
            Tail::Hang => {
                futures::future::pending::<()>().await;
                Ok(Bytes::new())
            }
            Tail::Fail => {
                // Let the frames before the cut reach the client first.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(std::io::Error::other("upstream cut the stream"))
            }
        }
    });
    use futures::StreamExt;
    Response::builder().header("content-type", "text/event-stream").body(Body::from_stream(head.chain(tail))).expect("response")
}

enum Tail {
    End,
    Hang,
    Fail,
}

async fn openai_chat(State(recorded): State<Arc<Recorded>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let count = hit(&recorded, &model, &body, &headers);
    let stream = body["stream"].as_bool().unwrap_or(false);
    match model.as_str() {
        "fail-500" | "always-500" => return openai_error(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        "flaky" if count == 1 => return openai_error(StatusCode::INTERNAL_SERVER_ERROR, "flaky"),
        "rate-limited" if count == 1 => {
            let mut response = openai_error(StatusCode::TOO_MANY_REQUESTS, "slow down");
            response.headers_mut().insert("retry-after", "1".parse().expect("header"));
            return response;
        }
        "slow" => tokio::time::sleep(Duration::from_secs(2)).await,
        _ => {}
    }
    let content = if model == "echo-params" { body.to_string() } else { "Hello from upstream".to_owned() };
    if !stream {
        let mut answer = completion(&model, &content);
        if model == "no-usage" {
            answer.as_object_mut().map(|o| o.remove("usage"));
        }
        return Json(answer).into_response();
    }
    let mut frames = vec![chunk(&model, json!({ "role": "assistant", "content": "" }), None)];
    match model.as_str() {
        "stream-hang" => {
            frames.push(chunk(&model, json!({ "content": "tick" }), None));
            return sse_response(recorded, frames, Tail::Hang);
        }
        "stream-then-fail" => {
            frames.push(chunk(&model, json!({ "content": "Hello" }), None));
            frames.push(chunk(&model, json!({ "content": " wor" }), None));
            return sse_response(recorded, frames, Tail::Fail);
        }
        _ => {}
    }
    for piece in ["Hello", " from", " upstream"] {
        frames.push(chunk(&model, json!({ "content": piece }), None));
    }
    frames.push(chunk(&model, json!({}), Some("stop")));
    // `no-usage` stands for servers that never report usage.
    if body["stream_options"]["include_usage"].as_bool() == Some(true) && model != "no-usage" {
        let usage = json!({ "id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1, "model": model, "choices": [],
            "usage": { "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8 } });
        frames.push(format!("data: {usage}\n\n"));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    sse_response(recorded, frames, Tail::End)
}

async fn openai_embeddings(State(recorded): State<Arc<Recorded>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    hit(&recorded, &model, &body, &headers);
    let inputs = body["input"].as_array().cloned().unwrap_or_default();
    let data: Vec<Value> = inputs.iter().enumerate().map(|(i, _)| json!({ "object": "embedding", "index": i, "embedding": [0.6, 0.8, i as f64] })).collect();
    Json(json!({ "object": "list", "data": data, "model": model, "usage": { "prompt_tokens": 7, "total_tokens": 7 } })).into_response()
}

async fn anthropic_messages(State(recorded): State<Arc<Recorded>>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    hit(&recorded, &model, &body, &headers);
    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some("sk-ant") || headers.get("anthropic-version").is_none() {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "type": "error", "error": { "type": "authentication_error", "message": "bad key" } }))).into_response();
    }
    if !body["stream"].as_bool().unwrap_or(false) {
        return Json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": model,
            "content": [{ "type": "text", "text": "Hello from Claude" }],
            "stop_reason": "end_turn",
            "usage": { "input_tokens": 11, "output_tokens": 3 },
        }))
        .into_response();
    }
    let event = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let frames = vec![
        event("message_start", json!({ "type": "message_start", "message": { "id": "msg_1", "model": model, "usage": { "input_tokens": 11, "output_tokens": 1 } } })),
        event("content_block_start", json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })),
        event("ping", json!({ "type": "ping" })),
        event("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": "Hello" } })),
        event("content_block_delta", json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": " from Claude" } })),
        event("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })),
        event("message_delta", json!({ "type": "message_delta", "delta": { "stop_reason": "max_tokens" }, "usage": { "output_tokens": 3 } })),
        event("message_stop", json!({ "type": "message_stop" })),
    ];
    sse_response(recorded, frames, Tail::End)
}
