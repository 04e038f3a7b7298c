//! Provider configuration (`[[providers]]`, tagged by `type`) and the HTTP
//! providers. One module per wire protocol; each owns its request/response
//! mapping and nothing else (no retries, no timeouts — the router owns those).

pub mod anthropic;
mod http_error;
pub mod openai_compat;
mod upstream;

pub use http_error::without_url;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::mock::MockProvider;
use crate::{ChatModel, Embedder};

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderConfig {
    /// Any server speaking OpenAI's `/chat/completions` and `/embeddings`:
    /// OpenAI, vLLM, Ollama, llama.cpp server, Together…
    OpenaiCompat(openai_compat::OpenAiCompatConfig),
    /// Anthropic's Messages API.
    Anthropic(anthropic::AnthropicConfig),
    /// In-process deterministic models for tests and benchmarks.
    Mock(MockConfig),
}

/// Configuration of the in-process mock provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    pub name: String,
}

/// A connected provider that registry entries share.
pub struct ProviderHandle {
    chat: Option<Arc<dyn ChatModel>>,
    embedder: Option<Arc<dyn Embedder>>,
}

impl ProviderHandle {
    pub fn chat(&self) -> Option<Arc<dyn ChatModel>> {
        self.chat.clone()
    }

    pub fn embedder(&self) -> Option<Arc<dyn Embedder>> {
        self.embedder.clone()
    }
}

impl ProviderConfig {
    pub fn name(&self) -> &str {
        match self {
            Self::OpenaiCompat(config) => &config.name,
            Self::Anthropic(config) => &config.name,
            Self::Mock(config) => &config.name,
        }
    }

    /// Build the client. Fails only on configuration that cannot work (bad URL, bad header).
    pub fn connect(&self) -> Result<ProviderHandle, String> {
        Ok(match self {
            Self::OpenaiCompat(config) => {
                let client = Arc::new(openai_compat::OpenAiCompat::new(config)?);
                ProviderHandle { chat: Some(client.clone()), embedder: Some(client) }
            }
            Self::Anthropic(config) => ProviderHandle { chat: Some(Arc::new(anthropic::Anthropic::new(config)?)), embedder: None },
            Self::Mock(_) => {
                let mock = Arc::new(MockProvider::default());
                ProviderHandle { chat: Some(mock.clone()), embedder: Some(mock) }
            }
        })
    }
}

/// Serialize an optional secret in clear text. Only configuration round-trips
/// (figment defaults) use this; secrets are never logged through it.
pub fn serialize_secret<S: serde::Serializer>(value: &Option<secrecy::SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    value.as_ref().map(|s| s.expose_secret().to_owned()).serialize(serializer)
}
