//! The model layer: chat and embedding traits, the providers behind them, the
//! model registry and the router that adds timeouts, retries, fallbacks and
//! circuit breakers.
//!
//! Must not know about HTTP routes, tenants or storage: callers hand it a
//! [`ChatRequest`] and get back a [`ChatResponse`] or a [`ChatStream`].

pub mod breaker;
pub mod error;
pub mod local;
pub mod mock;
pub mod model_files;
pub mod pricing;
pub mod providers;
pub mod registry;
pub mod router;
pub mod series;
pub mod tokens;
pub mod trace_context;
pub mod types;

pub use error::LlmError;
pub use registry::{ModelEntry, ModelKind, ModelRegistry};
pub use router::{ModelRouter, RouterConfig};
pub use types::{ChatModel, ChatRequest, ChatResponse, ChatStream, Embedder, EmbeddingResponse, StreamEvent};
