//! `POST /v1/chat/completions`, plain JSON or SSE (`stream: true`), in
//! OpenAI's exact shapes: `chat.completion` objects, `chat.completion.chunk`
//! events, an optional usage chunk (`stream_options.include_usage`), and
//! `data: [DONE]`. A failure after the stream started is sent as a final
//! `data: {"error": …}` event, which the SDKs raise as an API error.

use std::convert::Infallible;

use agentry_core::TenantAccess;
use agentry_llm::{ChatRequest, ChatStream, LlmError, StreamEvent};
use agentry_types::{ChatMessage, FinishReason, Usage};
use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{call_context, unix_now, with_rate_limit};
use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::middleware::RequestId;
use crate::state::AppState;

/// OpenAI's chat completion request, with the ranges this gateway checks.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChatCompletionRequest {
    #[schema(min_length = 1, pattern = r"\S")]
    model: String,
    #[schema(min_items = 1)]
    messages: Vec<ChatMessage>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    temperature: Option<f32>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 1)]
    top_p: Option<f32>,
    #[serde(default)]
    #[schema(minimum = 1)]
    max_tokens: Option<u32>,
    #[serde(default)]
    #[schema(minimum = 1)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    #[schema(schema_with = stop_schema)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<u64>,
    /// Only 1 is supported.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1)]
    n: Option<u32>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    user: Option<String>,
    /// OpenAI's tool definitions, passed to models that take them.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    tools: Option<Value>,
    /// `none`, `auto`, `required`, or a named function.
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    response_format: Option<Value>,
}

/// [`Stop`]'s schema: one non-empty string, or up to four.
fn stop_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String).min_length(Some(1));
    OneOfBuilder::new().item(text()).item(ArrayBuilder::new().items(text()).max_items(Some(4))).build().into()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

/// A validated request: the public model name, the model-layer request, and how to answer.
pub(crate) struct Parsed {
    pub model: String,
    pub request: ChatRequest,
    pub stream: bool,
    pub include_usage: bool,
}

fn in_range(value: Option<f32>, low: f32, high: f32, param: &str) -> Result<(), ApiError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(ApiError::bad_request(format!("'{param}' must be between {low} and {high}, got {v}"), param)),
        _ => Ok(()),
    }
}

impl ChatCompletionRequest {
    pub(crate) fn parse(self) -> Result<Parsed, ApiError> {
        if self.model.trim().is_empty() {
            return Err(ApiError::bad_request("'model' must not be empty", "model"));
        }
        if self.messages.is_empty() {
            return Err(ApiError::bad_request("'messages' must contain at least one message", "messages"));
        }
        if self.n.is_some_and(|n| n != 1) {
            return Err(ApiError::bad_request("only n=1 is supported", "n"));
        }
        in_range(self.temperature, 0.0, 2.0, "temperature")?;
        in_range(self.top_p, 0.0, 1.0, "top_p")?;
        let max_tokens = self.max_completion_tokens.or(self.max_tokens);
        if max_tokens == Some(0) {
            return Err(ApiError::bad_request("'max_tokens' must be at least 1", "max_tokens"));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stop.len() > 4 || stop.iter().any(String::is_empty) {
            return Err(ApiError::bad_request("'stop' takes up to 4 non-empty strings", "stop"));
        }
        let stream = self.stream.unwrap_or(false);
        let include_usage = stream && self.stream_options.unwrap_or_default().include_usage.unwrap_or(false);
        Ok(Parsed {
            model: self.model,
            request: ChatRequest {
                model: String::new(),
                messages: self.messages,
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens,
                stop,
                seed: self.seed,
                user: self.user,
                tools: self.tools,
                tool_choice: self.tool_choice,
                response_format: self.response_format,
            },
            stream,
            include_usage,
        })
    }
}

fn finish_str(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

pub async fn create(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    access: Option<Extension<TenantAccess>>,
    ApiJson(body): ApiJson<ChatCompletionRequest>,
) -> Result<Response, ApiError> {
    let parsed = body.parse()?;
    let ctx = call_context(request_id, "/v1/chat/completions", access.as_deref());
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    if let Some(agent) = parsed.model.strip_prefix("agent:") {
        let answer = super::agent::Answer { id: &id, model: &parsed.model, stream: parsed.stream, include_usage: parsed.include_usage };
        // Boxed: the agent run's future is several times larger than a
        // gateway call's, and inline it would make every plain completion
        // allocate and copy a future of that size.
        return Box::pin(super::agent::run(&state, &ctx, access.as_deref(), agent, parsed.request.messages, answer)).await;
    }
    if parsed.stream {
        let served = state.gateway.chat_stream(&ctx, &parsed.model, parsed.request).await?;
        let routed = served.routed;
        return Ok(with_rate_limit(ChunkWriter::new(&id, &routed.model, parsed.include_usage).response(routed.value), served.rate_limit));
    }
    let served = state.gateway.chat(&ctx, &parsed.model, parsed.request).await?;
    let routed = served.routed;
    let answer = routed.value;
    let response = completion_response(&id, &routed.model, answer.content.as_deref(), answer.tool_calls.as_ref(), answer.finish_reason, &answer.usage);
    Ok(with_rate_limit(response, served.rate_limit))
}

/// A `chat.completion` response.
pub(super) fn completion_response(id: &str, model: &str, content: Option<&str>, tool_calls: Option<&Value>, finish: FinishReason, usage: &Usage) -> Response {
    Json(completion(id, model, content, tool_calls, finish, usage)).into_response()
}

/// A `chat.completion` object.
pub(super) fn completion<'a>(id: &'a str, model: &'a str, content: Option<&'a str>, tool_calls: Option<&'a Value>, finish: FinishReason, usage: &'a Usage) -> Completion<'a> {
    Completion {
        id,
        object: "chat.completion",
        created: unix_now(),
        model,
        system_fingerprint: (),
        choices: [CompletionChoice {
            index: 0,
            message: CompletionMessage { role: "assistant", content, refusal: (), tool_calls },
            logprobs: (),
            finish_reason: finish_str(finish),
        }],
        usage,
    }
}

/// A `chat.completion` object (`()` fields serialise as `null`).
#[derive(Serialize)]
pub(super) struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: (),
    choices: [CompletionChoice<'a>; 1],
    usage: &'a Usage,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: (),
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: (),
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a Value>,
}

/// The fields every chunk of one stream shares, serialised once.
#[derive(Serialize)]
struct ChunkHead<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: (),
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: (),
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<&'a Value>,
}

/// Shapes model-layer stream events into `chat.completion.chunk` SSE frames
/// (`data: <json>\n\n`). Written by hand rather than with axum's `Sse` so that
/// frames that are ready together leave in one write (an upstream that sends a
/// burst of chunks costs one syscall, not one per chunk), and so the fields
/// every chunk repeats are serialised once per stream, not once per chunk.
pub(super) struct ChunkWriter {
    /// `data: {"id":…,"object":…,"created":…,"model":…,"system_fingerprint":null,"choices":`
    head: Vec<u8>,
    include_usage: bool,
}

/// Most frames joined into one body write.
const MAX_FRAMES_PER_WRITE: usize = 64;

impl ChunkWriter {
    pub(super) fn new(id: &str, model: &str, include_usage: bool) -> Self {
        let head = ChunkHead { id, object: "chat.completion.chunk", created: unix_now(), model, system_fingerprint: () };
        let mut json = serde_json::to_vec(&head).unwrap_or_default();
        json.pop(); // the closing brace: choices (and usage) follow
        let mut frame = b"data: ".to_vec();
        frame.extend_from_slice(&json);
        frame.extend_from_slice(b",\"choices\":");
        Self { head: frame, include_usage }
    }

    fn chunk(&self, choices: &[ChunkChoice<'_>], usage: Option<&Usage>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 160);
        out.extend_from_slice(&self.head);
        // Serialising these plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, choices);
        if self.include_usage {
            out.extend_from_slice(b",\"usage\":");
            let _ = serde_json::to_writer(&mut out, &usage);
        }
        out.extend_from_slice(b"}\n\n");
        out
    }

    fn delta(&self, delta: Delta<'_>, finish: Option<FinishReason>) -> Vec<u8> {
        self.chunk(&[ChunkChoice { index: 0, delta, logprobs: (), finish_reason: finish.map(finish_str) }], None)
    }

    fn event(&self, event: &StreamEvent) -> Option<Vec<u8>> {
        match event {
            StreamEvent::Delta { content, tool_calls } => Some(self.delta(Delta { content: content.as_deref(), tool_calls: tool_calls.as_ref(), ..Delta::default() }, None)),
            StreamEvent::Finish(reason) => Some(self.delta(Delta::default(), Some(*reason))),
            StreamEvent::Usage(usage) => self.include_usage.then(|| self.chunk(&[], Some(usage))),
        }
    }

    /// The SSE frames for a model stream: a role chunk, content chunks, the
    /// finish chunk, the usage chunk (if asked), then `[DONE]` — or an error frame.
    fn frames(self, stream: ChatStream) -> impl futures::Stream<Item = Vec<u8>> + Send {
        let head = self.delta(Delta { role: Some("assistant"), content: Some(""), ..Delta::default() }, None);
        let body = futures::stream::unfold(Some((self, stream)), |state| async move {
            let (writer, mut stream) = state?;
            match stream.next().await {
                None => Some((Some(frame("[DONE]")), None)),
                Some(Err(error)) => Some((Some(error_frame(error)), None)),
                Some(Ok(event)) => Some((writer.event(&event), Some((writer, stream)))),
            }
        })
        .filter_map(futures::future::ready);
        futures::stream::once(futures::future::ready(head)).chain(body)
    }

    /// The HTTP response: frames that are ready together are sent as one body chunk.
    pub(super) fn response(self, stream: ChatStream) -> Response {
        let body = self.frames(stream).ready_chunks(MAX_FRAMES_PER_WRITE).map(|frames| Ok::<_, Infallible>(Bytes::from(frames.concat())));
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(body))
            .unwrap_or_else(|_| ApiError::internal("could not build the stream response").into_response())
    }
}

fn frame(data: &str) -> Vec<u8> {
    format!("data: {data}\n\n").into_bytes()
}

fn error_frame(error: LlmError) -> Vec<u8> {
    let api = ApiError::from(error);
    frame(&json!({ "error": api.body(None)["error"] }).to_string())
}
