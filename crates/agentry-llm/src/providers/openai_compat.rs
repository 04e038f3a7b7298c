//! The OpenAI-compatible provider: `POST {base_url}/chat/completions` (plain
//! and SSE) and `POST {base_url}/embeddings`. Works for OpenAI, vLLM, Ollama,
//! llama.cpp server and anything else speaking that wire format.
//!
//! Owns only the mapping between [`ChatRequest`] and the wire JSON.

use std::collections::BTreeMap;

use agentry_types::{FinishReason, Usage};
use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::upstream::{Response, Upstream};
use crate::{ChatModel, ChatRequest, ChatResponse, ChatStream, Embedder, EmbeddingResponse, LlmError, StreamEvent};

/// `type = "openai_compat"`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiCompatConfig {
    pub name: String,
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    #[serde(default, serialize_with = "super::serialize_secret")]
    pub api_key: Option<SecretString>,
    /// Extra headers sent with every request (organisation, project…).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Whether the upstream's models accept image parts.
    #[serde(default)]
    pub vision: bool,
}

/// A connected OpenAI-compatible upstream.
pub struct OpenAiCompat {
    name: String,
    /// Endpoints parsed once, not per request.
    chat_endpoint: http::Uri,
    embeddings_endpoint: http::Uri,
    upstream: Upstream,
    headers: http::HeaderMap,
    vision: bool,
}

impl OpenAiCompat {
    pub fn new(config: &OpenAiCompatConfig) -> Result<Self, String> {
        let mut headers = http::HeaderMap::new();
        if let Some(key) = &config.api_key {
            let value = format!("Bearer {}", key.expose_secret());
            let mut value = http::HeaderValue::from_str(&value).map_err(|_| "api_key contains invalid characters".to_owned())?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
        }
        for (name, value) in &config.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name '{name}'"))?;
            let value = http::HeaderValue::from_str(value).map_err(|_| format!("invalid value for header '{name}'"))?;
            headers.insert(name, value);
        }
        let upstream = Upstream::new(&config.name, &config.base_url)?;
        Ok(Self {
            name: config.name.clone(),
            chat_endpoint: upstream.endpoint("/chat/completions")?,
            embeddings_endpoint: upstream.endpoint("/embeddings")?,
            upstream,
            headers,
            vision: config.vision,
        })
    }

    async fn post(&self, endpoint: &http::Uri, body: &impl Serialize) -> Result<Response, LlmError> {
        self.upstream.post_json(endpoint, &self.headers, body).await
    }

    fn protocol(&self, message: impl Into<String>) -> LlmError {
        LlmError::Protocol { upstream: self.name.clone(), message: message.into() }
    }
}

/// The chat request body; absent options are left out, as OpenAI's SDKs do.
#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [agentry_types::ChatMessage],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> WireRequest<'a> {
    fn new(request: &'a ChatRequest, stream: bool) -> Self {
        Self {
            model: &request.model,
            messages: &request.messages,
            stream,
            temperature: request.temperature,
            top_p: request.top_p,
            max_tokens: request.max_tokens,
            stop: &request.stop,
            seed: request.seed,
            user: request.user.as_deref(),
            tools: request.tools.as_ref(),
            tool_choice: request.tool_choice.as_ref(),
            response_format: request.response_format.as_ref(),
            stream_options: stream.then_some(StreamOptions { include_usage: true }),
        }
    }
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

#[derive(Deserialize)]
struct WireCompletion {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

/// OpenAI's finish reasons; anything unknown counts as a normal stop.
pub(crate) fn finish_reason(value: &str) -> FinishReason {
    match value {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

#[async_trait]
impl ChatModel for OpenAiCompat {
    fn provider(&self) -> &'static str {
        "openai_compat"
    }

    fn supports_vision(&self) -> bool {
        self.vision
    }

    fn supports_tools(&self) -> bool {
        true
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let response = self.post(&self.chat_endpoint, &WireRequest::new(request, false)).await?;
        let wire: WireCompletion = response.json().await?;
        let choice = wire.choices.into_iter().next().ok_or_else(|| self.protocol("no choices in response"))?;
        Ok(ChatResponse {
            model: wire.model.unwrap_or_else(|| request.model.clone()),
            content: choice.message.content,
            tool_calls: choice.message.tool_calls,
            finish_reason: choice.finish_reason.as_deref().map_or(FinishReason::Stop, finish_reason),
            usage: wire.usage.map(Usage::from).unwrap_or_default(),
        })
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError> {
        let response = self.post(&self.chat_endpoint, &WireRequest::new(request, true)).await?;
        let upstream = self.name.clone();
        let events = response.into_stream().eventsource().flat_map(move |event| {
            let items: Vec<Result<StreamEvent, LlmError>> = match event {
                Err(e) => vec![Err(LlmError::Protocol { upstream: upstream.clone(), message: e.to_string() })],
                Ok(event) if event.data.trim() == "[DONE]" => Vec::new(),
                Ok(event) => match serde_json::from_str::<WireChunk>(&event.data) {
                    Err(e) => vec![Err(LlmError::Protocol { upstream: upstream.clone(), message: format!("bad chunk: {e}") })],
                    Ok(chunk) => chunk_events(chunk),
                },
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(events))
    }
}

fn chunk_events(chunk: WireChunk) -> Vec<Result<StreamEvent, LlmError>> {
    let mut out = Vec::new();
    for choice in chunk.choices {
        if let Some(delta) = choice.delta
            && (delta.content.as_deref().is_some_and(|c| !c.is_empty()) || delta.tool_calls.is_some())
        {
            out.push(Ok(StreamEvent::Delta { content: delta.content.filter(|c| !c.is_empty()), tool_calls: delta.tool_calls }));
        }
        if let Some(reason) = choice.finish_reason {
            out.push(Ok(StreamEvent::Finish(finish_reason(&reason))));
        }
    }
    if let Some(usage) = chunk.usage {
        out.push(Ok(StreamEvent::Usage(usage.into())));
    }
    out
}

#[derive(Deserialize)]
struct WireEmbeddings {
    data: Vec<WireEmbedding>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireEmbedding {
    index: usize,
    embedding: Vec<f32>,
}

#[async_trait]
impl Embedder for OpenAiCompat {
    fn provider(&self) -> &'static str {
        "openai_compat"
    }

    async fn embed(&self, model: &str, inputs: &[String]) -> Result<EmbeddingResponse, LlmError> {
        let body = json!({ "model": model, "input": inputs, "encoding_format": "float" });
        let response = self.post(&self.embeddings_endpoint, &body).await?;
        let mut wire: WireEmbeddings = response.json().await?;
        if wire.data.len() != inputs.len() {
            return Err(self.protocol(format!("asked for {} embeddings, got {}", inputs.len(), wire.data.len())));
        }
        wire.data.sort_by_key(|d| d.index);
        Ok(EmbeddingResponse {
            model: wire.model.unwrap_or_else(|| model.to_owned()),
            vectors: wire.data.into_iter().map(|d| d.embedding).collect(),
            prompt_tokens: wire.usage.map_or(0, |u| u.prompt_tokens),
        })
    }
}
