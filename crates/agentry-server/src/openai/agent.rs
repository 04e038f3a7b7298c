//! `model: "agent:<name>"` on `/v1/chat/completions`: the messages run as a
//! stateless agent run (`agent:auto` routes), and the answer comes back in
//! OpenAI's shapes — a `chat.completion`, or `chat.completion.chunk`s with
//! the answer's tokens. Tool calls and citations stay on the run record
//! (`GET /api/v1/runs/{id}`, id in `x-agentry-run-id`).

use agentry_core::agents::{Agents, RunEvent, RunInput};
use agentry_core::{CallContext, TenantAccess};
use agentry_llm::{ChatStream, LlmError, StreamEvent};
use agentry_types::{ChatMessage, ErrorCode, FinishReason, Usage};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::StreamExt;

use super::chat::{ChunkWriter, completion_response};
use crate::error::ApiError;
use crate::state::AppState;

/// How to answer.
pub(super) struct Answer<'a> {
    pub id: &'a str,
    /// The public model name asked for (`agent:<name>`).
    pub model: &'a str,
    pub stream: bool,
    pub include_usage: bool,
}

/// A failed run as an API error, by the run's error code.
fn run_error(code: &str, message: String) -> ApiError {
    match code {
        "usage_refused" => ApiError::new(ErrorCode::RateLimited, message),
        "model_error" => ApiError::new(ErrorCode::UpstreamError, message),
        "timeout" => ApiError::new(ErrorCode::UpstreamTimeout, message),
        "knowledge_unavailable" => ApiError::forbidden(message),
        "cancelled" => ApiError::conflict(message),
        _ => ApiError::new(ErrorCode::UnprocessableEntity, message),
    }
}

/// Run `agent` on `messages` to its end: the run's id, its answer and usage (a batch line).
pub(super) async fn answer(agents: &Agents, ctx: &CallContext, access: &TenantAccess, agent: &str, messages: Vec<ChatMessage>) -> Result<(String, String, Usage), ApiError> {
    let input = RunInput { agent: Some(agent.to_owned()), messages };
    let started = agents.start_run(access, ctx, None, input).await?;
    let (text, usage) = collect(started.live.follow(0).map(|(_, event)| event)).await?;
    Ok((started.id, text, usage))
}

/// The answer and usage of a run's events, or the error it ended with.
async fn collect(events: impl futures::Stream<Item = std::sync::Arc<RunEvent>>) -> Result<(String, Usage), ApiError> {
    let (mut text, mut usage) = (String::new(), Usage::default());
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match &*event {
            RunEvent::Token { text: piece } => text.push_str(piece),
            RunEvent::Usage(u) => usage = *u,
            RunEvent::Error { code, message, .. } => return Err(run_error(code, message.clone())),
            _ => {}
        }
    }
    Ok((text, usage))
}

pub(super) async fn run(
    state: &AppState,
    ctx: &CallContext,
    access: Option<&TenantAccess>,
    agent: &str,
    messages: Vec<ChatMessage>,
    answer: Answer<'_>,
) -> Result<Response, ApiError> {
    let access = access.ok_or_else(|| ApiError::bad_request("agents run inside a tenant: name one with the X-Agentry-Tenant header", "model"))?;
    let input = RunInput { agent: Some(agent.to_owned()), messages };
    let started = state.agents.start_run(access, ctx, None, input).await?;
    let events = started.live.follow(0).map(|(_, event)| event);
    let mut response = if answer.stream {
        let mut usage = Usage::default();
        let stream = events.flat_map(move |event| {
            let items: Vec<Result<StreamEvent, LlmError>> = match &*event {
                RunEvent::Token { text } => vec![Ok(StreamEvent::Delta { content: Some(text.clone()), tool_calls: None })],
                RunEvent::Usage(u) => {
                    usage = *u;
                    Vec::new()
                }
                RunEvent::Done { .. } => vec![Ok(StreamEvent::Finish(FinishReason::Stop)), Ok(StreamEvent::Usage(usage))],
                RunEvent::Error { message, .. } => {
                    vec![Err(LlmError::Upstream { upstream: "agent".into(), status: 502, message: message.clone(), retry_after: None })]
                }
                _ => Vec::new(),
            };
            futures::stream::iter(items)
        });
        let stream: ChatStream = Box::pin(stream);
        ChunkWriter::new(answer.id, answer.model, answer.include_usage).response(stream)
    } else {
        let (text, usage) = collect(events).await?;
        completion_response(answer.id, answer.model, Some(&text), None, FinishReason::Stop, &usage)
    };
    if let Ok(value) = HeaderValue::from_str(&started.id) {
        response.headers_mut().insert("x-agentry-run-id", value);
    }
    Ok(response)
}
