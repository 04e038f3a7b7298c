//! Provider-neutral request, response and stream types, and the two traits
//! every provider implements. No provider-specific field lives here.

use std::pin::Pin;

use agentry_types::{ChatMessage, FinishReason, Usage};
use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::LlmError;

/// A chat request after the gateway has parsed and validated it. `model` is the
/// upstream model id (the router rewrites the public name before the call).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub user: Option<String>,
    /// OpenAI `tools`, passed through to providers that support tool calling.
    pub tools: Option<serde_json::Value>,
    pub tool_choice: Option<serde_json::Value>,
    /// OpenAI `response_format`, passed through to providers that support it.
    pub response_format: Option<serde_json::Value>,
}

/// A complete (non-streamed) answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The model that actually answered (upstream id).
    pub model: String,
    pub content: Option<String>,
    /// OpenAI-shaped `tool_calls` array when the model called tools.
    pub tool_calls: Option<serde_json::Value>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// One event of a streamed answer. A stream yields zero or more `Delta`s, then
/// exactly one `Finish`, then at most one `Usage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StreamEvent {
    /// A piece of generated text and/or tool-call fragments (OpenAI delta shape).
    Delta {
        content: Option<String>,
        tool_calls: Option<serde_json::Value>,
    },
    Finish(FinishReason),
    Usage(Usage),
}

/// A stream of events, ended by the provider after `Finish`/`Usage` or by an error.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// Embedding vectors in input order, with the tokens the inputs used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingResponse {
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

/// A chat-capable model behind some provider.
///
/// Implementations own their connection pool or weights; they must be cheap to
/// call concurrently. Retries, timeouts and fallbacks are the router's job, not theirs.
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// Provider kind, for metrics labels (`openai_compat`, `anthropic`, `local`, `mock`).
    fn provider(&self) -> &'static str;
    /// Whether the model accepts image content parts.
    fn supports_vision(&self) -> bool {
        false
    }
    /// Whether `tools`, `tool_choice` and `response_format` can be honoured.
    fn supports_tools(&self) -> bool {
        false
    }
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, LlmError>;
}

/// An embedding model behind some provider.
#[async_trait]
pub trait Embedder: Send + Sync {
    fn provider(&self) -> &'static str;
    /// Embed `inputs` with the upstream model id `model`.
    async fn embed(&self, model: &str, inputs: &[String]) -> Result<EmbeddingResponse, LlmError>;
}
