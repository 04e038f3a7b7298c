//! Deterministic in-process models for tests and benchmarks, scripted by the
//! upstream model name:
//!
//! | name | behaviour |
//! |---|---|
//! | `mock-slow` / `mock-slow-<ms>` | waits `<ms>` (default 1000) before answering |
//! | `mock-error-<status>` | fails with that upstream status |
//! | `mock-flaky-<n>` | the first `n` calls fail with 500, later calls succeed |
//! | `mock-stream-error` | streams two tokens, then fails |
//! | `mock-tools` | calls a tool when the last user message holds `call:<tool> <json arguments>` (until a tool result follows), then answers `echo: tool said: <result>` |
//! | `mock-tool-loop` | calls `current_time` every time |
//! | `mock-say-<text>` | answers `<text>` |
//! | anything else | answers `echo: <last user message>` |
//!
//! Tokens are whitespace-separated words. Must never do I/O.

use std::collections::HashMap;
use std::time::Duration;

use agentry_types::{FinishReason, Role, Usage};
use async_trait::async_trait;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use crate::{ChatModel, ChatRequest, ChatResponse, ChatStream, Embedder, EmbeddingResponse, LlmError, StreamEvent};

/// Dimensions of mock embedding vectors.
pub const MOCK_EMBEDDING_DIMENSIONS: usize = 16;

/// The mock provider; holds call counters for `mock-flaky-<n>`.
#[derive(Default)]
pub struct MockProvider {
    calls: Mutex<HashMap<String, u64>>,
}

enum Script {
    Echo,
    Slow(Duration),
    Error(u16),
    Flaky(u64),
    StreamError,
}

fn script(model: &str) -> Script {
    if let Some(rest) = model.strip_prefix("mock-slow") {
        let ms = rest.strip_prefix('-').and_then(|v| v.parse().ok()).unwrap_or(1000);
        Script::Slow(Duration::from_millis(ms))
    } else if let Some(status) = model.strip_prefix("mock-error-").and_then(|v| v.parse().ok()) {
        Script::Error(status)
    } else if let Some(n) = model.strip_prefix("mock-flaky-").and_then(|v| v.parse().ok()) {
        Script::Flaky(n)
    } else if model == "mock-stream-error" {
        Script::StreamError
    } else {
        Script::Echo
    }
}

fn words(text: &str) -> u32 {
    text.split_whitespace().count() as u32
}

/// The tool call a tool-scripted model makes for `request`: (name, JSON arguments).
fn scripted_tool_call(request: &ChatRequest) -> Option<(String, String)> {
    if request.model == "mock-tool-loop" {
        return Some(("current_time".into(), "{}".into()));
    }
    if request.model != "mock-tools" || request.messages.last().is_some_and(|m| m.role == Role::Tool) {
        return None;
    }
    let last_user = request.messages.iter().rev().find(|m| m.role == Role::User)?.content_text();
    let rest = last_user.split_once("call:")?.1;
    let (name, arguments) = rest.split_once(' ').unwrap_or((rest, "{}"));
    Some((name.trim().to_owned(), arguments.trim().to_owned()))
}

fn tool_calls_json(name: &str, arguments: &str) -> serde_json::Value {
    serde_json::json!([{ "index": 0, "id": "call_mock_1", "type": "function", "function": { "name": name, "arguments": arguments } }])
}

impl MockProvider {
    fn error(status: u16) -> LlmError {
        LlmError::Upstream { upstream: "mock".into(), status, message: format!("scripted mock error {status}"), retry_after: None }
    }

    /// Apply the name's script; on success, the answer's words and finish reason.
    async fn run(&self, request: &ChatRequest) -> Result<(Vec<String>, FinishReason), LlmError> {
        match script(&request.model) {
            Script::Slow(delay) => tokio::time::sleep(delay).await,
            Script::Error(status) => return Err(Self::error(status)),
            Script::Flaky(n) => {
                let mut calls = self.calls.lock();
                let count = calls.entry(request.model.clone()).or_insert(0);
                *count += 1;
                if *count <= n {
                    return Err(Self::error(500));
                }
            }
            Script::Echo | Script::StreamError => {}
        }
        if let Some(text) = request.model.strip_prefix("mock-say-") {
            return Ok((text.split_whitespace().map(str::to_owned).collect(), FinishReason::Stop));
        }
        let last_user = match request.messages.last() {
            Some(m) if m.role == Role::Tool && request.model == "mock-tools" => format!("tool said: {}", m.content_text()),
            _ => request.messages.iter().rev().find(|m| m.role == Role::User).map(|m| m.content_text()).unwrap_or_default(),
        };
        let mut answer: Vec<String> = std::iter::once("echo:".to_owned()).chain(last_user.split_whitespace().map(str::to_owned)).collect();
        let limit = request.max_tokens.map_or(usize::MAX, |m| m as usize);
        let finish = if answer.len() > limit {
            answer.truncate(limit);
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        Ok((answer, finish))
    }

    fn prompt_tokens(request: &ChatRequest) -> u32 {
        request.messages.iter().map(|m| words(&m.content_text())).sum()
    }
}

#[async_trait]
impl ChatModel for MockProvider {
    fn provider(&self) -> &'static str {
        "mock"
    }

    fn supports_tools(&self) -> bool {
        true
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if let Some((name, arguments)) = scripted_tool_call(request) {
            return Ok(ChatResponse {
                model: request.model.clone(),
                usage: Usage::new(Self::prompt_tokens(request), 1),
                content: None,
                tool_calls: Some(tool_calls_json(&name, &arguments)),
                finish_reason: FinishReason::ToolCalls,
            });
        }
        let (answer, finish_reason) = self.run(request).await?;
        Ok(ChatResponse {
            model: request.model.clone(),
            usage: Usage::new(Self::prompt_tokens(request), answer.len() as u32),
            content: Some(answer.join(" ")),
            tool_calls: None,
            finish_reason,
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        if let Some((name, arguments)) = scripted_tool_call(request) {
            let events = vec![
                Ok(StreamEvent::Delta { content: None, tool_calls: Some(tool_calls_json(&name, &arguments)) }),
                Ok(StreamEvent::Finish(FinishReason::ToolCalls)),
                Ok(StreamEvent::Usage(Usage::new(Self::prompt_tokens(request), 1))),
            ];
            return Ok(Box::pin(futures::stream::iter(events)));
        }
        let (answer, finish) = self.run(request).await?;
        let usage = Usage::new(Self::prompt_tokens(request), answer.len() as u32);
        let fail_midway = matches!(script(&request.model), Script::StreamError);
        let mut events: Vec<Result<StreamEvent, LlmError>> = answer
            .iter()
            .enumerate()
            .map(|(i, word)| {
                let piece = if i == 0 { word.clone() } else { format!(" {word}") };
                Ok(StreamEvent::Delta { content: Some(piece), tool_calls: None })
            })
            .collect();
        if fail_midway {
            events.truncate(2);
            events.push(Err(Self::error(502)));
        } else {
            events.push(Ok(StreamEvent::Finish(finish)));
            events.push(Ok(StreamEvent::Usage(usage)));
        }
        Ok(Box::pin(futures::stream::iter(events)))
    }
}

#[async_trait]
impl Embedder for MockProvider {
    fn provider(&self) -> &'static str {
        "mock"
    }

    async fn embed(&self, model: &str, inputs: &[String]) -> Result<EmbeddingResponse, LlmError> {
        if let Script::Error(status) = script(model) {
            return Err(Self::error(status));
        }
        let vectors = inputs
            .iter()
            .map(|input| {
                let digest = Sha256::digest(input.as_bytes());
                let raw: Vec<f32> = digest.iter().take(MOCK_EMBEDDING_DIMENSIONS).map(|b| f32::from(*b) - 127.5).collect();
                let norm = raw.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
                raw.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        Ok(EmbeddingResponse { model: model.to_owned(), vectors, prompt_tokens: inputs.iter().map(|i| words(i)).sum() })
    }
}
