//! The mock upstream: OpenAI chat completions after a fixed delay, plain or SSE.
//!
//! The delay is a `timerfd` per request, not `tokio::time::sleep`: Tokio's
//! timer rounds every deadline up to its next millisecond tick, so a 1 ms
//! sleep lasts anywhere from 1 to 2 ms depending on where in the millisecond
//! the request arrived. Any extra hop in front of the mock (Agentry) shifts
//! that phase and can push a request past a tick, which the direct-vs-through
//! comparison would then report as up to 1 ms of "added" latency that Agentry
//! did not add. A timerfd fires within microseconds of the requested delay.
//! Registering it with Tokio's reactor is the one `unsafe` call here: Tokio
//! asks the caller to promise the descriptor outlives the registration.

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub fn serve(port: u16, latency: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async move {
        let app = axum::Router::new().route("/health", get(|| async { "ok" })).route("/v1/chat/completions", post(move |body: axum::Json<Value>| chat(body.0, latency)));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        Ok(())
    })
}

async fn chat(body: Value, latency: Duration) -> Response {
    if let Err(error) = precise_sleep(latency).await {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
    }
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

/// Sleep for `delay` on a kernel high-resolution timer registered with Tokio's reactor.
#[allow(unsafe_code)]
async fn precise_sleep(delay: Duration) -> std::io::Result<()> {
    let mut timer = timerfd::TimerFd::new_custom(timerfd::ClockId::Monotonic, true, true)?;
    timer.set_state(timerfd::TimerState::Oneshot(delay), timerfd::SetTimeFlags::Default);
    // SAFETY: the AsyncFd owns the timer, so its descriptor stays open and
    // unchanged until the AsyncFd is dropped and deregisters it.
    let registered = unsafe { tokio::io::unix::AsyncFd::register_with_interest(timer, tokio::io::Interest::READABLE) }.map_err(std::io::Error::from)?;
    loop {
        let mut ready = registered.readable().await?;
        if registered.get_ref().read() > 0 {
            return Ok(());
        }
        ready.clear_ready();
    }
}
