//! The model router: resolves a public model name, checks capabilities, and
//! calls the model with a per-attempt timeout, jittered exponential-backoff
//! retries (honouring `Retry-After`), a per-upstream circuit breaker and the
//! entry's fallback chain. Records `model_requests_total`,
//! `model_request_duration_seconds` and `token_usage_total`.
//!
//! A stream is only retried or switched to a fallback before its first event
//! reaches the caller; once tokens have been delivered an upstream failure is
//! passed on as an error, never hidden behind another model's answer.

use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::Rng;

use crate::breaker::{BreakerConfig, Breakers};
use crate::pricing::Price;
use crate::registry::{Backend, ModelEntry};
use crate::series::Series;
use crate::{ChatRequest, ChatResponse, ChatStream, EmbeddingResponse, LlmError, ModelKind, ModelRegistry, StreamEvent};

/// Timeouts, retries and breaker tuning.
#[derive(Debug, Clone, Copy)]
pub struct RouterConfig {
    /// Per attempt: until the full answer (non-streamed) or until the first
    /// event, and then between two events (streamed).
    pub timeout: Duration,
    /// Retries per model after the first attempt.
    pub max_retries: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A `Retry-After` longer than this is not waited for: the router moves on to the fallback.
    pub max_retry_after: Duration,
    pub breaker: BreakerConfig,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_retries: 2,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
            breaker: BreakerConfig::default(),
        }
    }
}

/// A result and the model that produced it.
pub struct Routed<T> {
    pub value: T,
    /// Public name of the model that answered (differs from the asked one after a fallback).
    pub model: String,
    pub provider: &'static str,
    pub price: Price,
}

/// Routes calls to registry entries. Cheap to share behind an `Arc`.
pub struct ModelRouter {
    registry: ModelRegistry,
    breakers: Breakers,
    config: RouterConfig,
}

impl ModelRouter {
    pub fn new(registry: ModelRegistry, config: RouterConfig) -> Self {
        Self { registry, breakers: Breakers::new(config.breaker), config }
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// The breaker state of an upstream, for readiness reports and tests.
    pub fn breaker_state(&self, upstream: &str) -> crate::breaker::BreakerState {
        self.breakers.get(upstream).state()
    }

    /// A complete answer from `model` or one of its fallbacks.
    pub async fn complete(&self, model: &str, request: ChatRequest) -> Result<Routed<ChatResponse>, LlmError> {
        let chain = self.chain(model, ModelKind::Chat, &request)?;
        self.first_success(&chain, |entry| {
            let mut request = request.clone();
            request.model = entry.upstream_model.clone();
            let backend = entry.backend.clone();
            async move {
                let Backend::Chat(chat) = backend else { return Err(kind_mismatch(&request.model)) };
                chat.complete(&request).await
            }
        })
        .await
    }

    /// A stream from `model` or one of its fallbacks; the switch can only happen
    /// before the first event.
    pub async fn stream(&self, model: &str, request: ChatRequest) -> Result<Routed<ChatStream>, LlmError> {
        let chain = self.chain(model, ModelKind::Chat, &request)?;
        let idle_timeout = self.config.timeout;
        self.first_success(&chain, |entry| {
            let mut request = request.clone();
            request.model = entry.upstream_model.clone();
            let backend = entry.backend.clone();
            let upstream = entry.upstream.clone();
            async move {
                let Backend::Chat(chat) = backend else { return Err(kind_mismatch(&request.model)) };
                let mut stream = chat.stream(&request).await?;
                let first = match stream.next().await {
                    Some(Ok(event)) => event,
                    Some(Err(error)) => return Err(error),
                    None => return Err(LlmError::Protocol { upstream, message: "stream ended before any event".into() }),
                };
                Ok(guard_stream(first, stream, upstream, idle_timeout))
            }
        })
        .await
    }

    /// Embeddings from `model` or one of its fallbacks.
    pub async fn embed(&self, model: &str, inputs: Vec<String>) -> Result<Routed<EmbeddingResponse>, LlmError> {
        let chain = self.chain(model, ModelKind::Embedding, &ChatRequest::default())?;
        self.first_success(&chain, |entry| {
            let backend = entry.backend.clone();
            let upstream_model = entry.upstream_model.clone();
            let inputs = inputs.clone();
            async move {
                let Backend::Embedding(embedder) = backend else { return Err(kind_mismatch(&upstream_model)) };
                embedder.embed(&upstream_model, &inputs).await
            }
        })
        .await
    }

    /// The asked model then its fallbacks, keeping only entries able to serve the request.
    /// The asked model itself must be able to: asking a text model for vision is a client error.
    fn chain(&self, model: &str, kind: ModelKind, request: &ChatRequest) -> Result<Vec<&ModelEntry>, LlmError> {
        let primary = self.registry.get(model).filter(|e| e.kind == kind).ok_or_else(|| LlmError::ModelNotFound(model.to_owned()))?;
        capable(primary, request)?;
        let fallbacks = primary.fallbacks.iter().filter_map(|name| self.registry.get(name)).filter(|e| capable(e, request).is_ok());
        Ok(std::iter::once(primary).chain(fallbacks).collect())
    }

    /// Try each entry in turn (with retries); return the first success, or the
    /// error that ended the chain.
    async fn first_success<'a, T, F, Fut>(&self, chain: &[&'a ModelEntry], call: F) -> Result<Routed<T>, LlmError>
    where
        F: Fn(&'a ModelEntry) -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let mut last_error = None;
        for entry in chain {
            match self.with_retries(entry, || call(entry)).await {
                Ok(value) => {
                    return Ok(Routed { value, model: entry.name.clone(), provider: entry.provider_kind(), price: entry.price });
                }
                Err(error) if error.allows_fallback() => {
                    tracing::warn!(model = %entry.name, %error, "model failed; trying the next in its fallback chain");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| LlmError::ModelNotFound(String::new())))
    }

    /// One model: breaker check, attempt under timeout, retries with backoff.
    async fn with_retries<T, F, Fut>(&self, entry: &ModelEntry, attempt: F) -> Result<T, LlmError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, LlmError>>,
    {
        let breaker = self.breakers.get(&entry.upstream);
        let provider = entry.provider_kind();
        let mut retries = 0;
        loop {
            let Some(permit) = breaker.try_acquire() else {
                count_request(&entry.name, provider, "circuit_open");
                return Err(LlmError::CircuitOpen { upstream: entry.upstream.clone() });
            };
            let started = Instant::now();
            let span = crate::trace_context::span(|| {
                tracing::info_span!(
                    "provider call",
                    otel.name = %format!("{provider} {}", entry.name),
                    otel.kind = "client",
                    gen_ai.provider.name = provider,
                    gen_ai.request.model = %entry.name,
                    agentry.upstream = %entry.upstream,
                    agentry.retry = retries,
                    error.type = tracing::field::Empty,
                )
            });
            let outcome = match tracing::Instrument::instrument(tokio::time::timeout(self.config.timeout, attempt()), span.clone()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(LlmError::Timeout { upstream: entry.upstream.clone(), after: self.config.timeout }),
            };
            if let Err(error) = &outcome {
                span.record("error.type", status_label(error));
            }
            request_duration(&entry.name, provider).record(started.elapsed().as_secs_f64());
            let error = match outcome {
                Ok(value) => {
                    permit.record(true);
                    count_request(&entry.name, provider, "success");
                    return Ok(value);
                }
                Err(error) => error,
            };
            permit.record(!error.counts_against_breaker());
            count_request(&entry.name, provider, status_label(&error));
            if !error.is_retryable() || retries >= self.config.max_retries {
                return Err(error);
            }
            let delay = match error.retry_after() {
                Some(wait) if wait > self.config.max_retry_after => return Err(error),
                Some(wait) => wait,
                None => self.backoff(retries),
            };
            retries += 1;
            tracing::info!(model = %entry.name, %error, retry = retries, delay_ms = delay.as_millis() as u64, "retrying model call");
            tokio::time::sleep(delay).await;
        }
    }

    /// Equal-jitter exponential backoff: half fixed, half random.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self.config.backoff_base.saturating_mul(2u32.saturating_pow(retry)).min(self.config.backoff_max);
        let half = exp / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

/// `chain` filters entries by kind, so this only answers a registry entry whose
/// backend disagrees with its declared kind: treat it as a model that does not exist.
fn kind_mismatch(upstream_model: &str) -> LlmError {
    LlmError::ModelNotFound(upstream_model.to_owned())
}

/// Whether `entry` can serve `request` (images, tools).
fn capable(entry: &ModelEntry, request: &ChatRequest) -> Result<(), LlmError> {
    let Backend::Chat(chat) = &entry.backend else { return Ok(()) };
    if !entry.vision && request.messages.iter().any(|m| m.content.as_ref().is_some_and(|c| c.has_image())) {
        return Err(LlmError::Unsupported { message: format!("model '{}' cannot read images; choose a vision-capable model", entry.name), param: Some("messages".into()) });
    }
    let wants_tools = request.tools.is_some() || request.tool_choice.is_some() || request.response_format.is_some();
    if wants_tools && !chat.supports_tools() {
        let param = if request.response_format.is_some() { "response_format" } else { "tools" };
        return Err(LlmError::Unsupported { message: format!("model '{}' does not support {param}", entry.name), param: Some(param.into()) });
    }
    Ok(())
}

fn status_label(error: &LlmError) -> &'static str {
    match error {
        LlmError::Timeout { .. } => "timeout",
        LlmError::Connect { .. } => "connect_error",
        LlmError::CircuitOpen { .. } => "circuit_open",
        LlmError::Upstream { status, .. } if *status == 429 => "rate_limited",
        LlmError::Upstream { .. } | LlmError::Protocol { .. } | LlmError::Local(_) => "error",
        LlmError::Unsupported { .. } | LlmError::InvalidRequest { .. } | LlmError::ModelNotFound(_) => "invalid_request",
    }
}

fn count_request(model: &str, provider: &'static str, status: &'static str) {
    static REQUESTS: LazyLock<Series<3, metrics::Counter>> = LazyLock::new(Series::new);
    REQUESTS
        .get(
            [model, provider, status],
            |[model, provider, status]| metrics::counter!("model_requests_total", "model" => model.to_owned(), "provider" => provider.to_owned(), "status" => status.to_owned()),
        )
        .increment(1);
}

fn request_duration(model: &str, provider: &'static str) -> metrics::Histogram {
    static DURATIONS: LazyLock<Series<2, metrics::Histogram>> = LazyLock::new(Series::new);
    DURATIONS.get([model, provider], |[model, provider]| metrics::histogram!("model_request_duration_seconds", "model" => model.to_owned(), "provider" => provider.to_owned()))
}

/// Re-attach the already-read first event and enforce the idle timeout between
/// events. (Tokens are counted by the usage layer, once per call.)
fn guard_stream(first: StreamEvent, rest: ChatStream, upstream: String, idle_timeout: Duration) -> ChatStream {
    let state = Some((Some(Ok(first)), rest));
    let stream = futures::stream::unfold(state, move |state| {
        let upstream = upstream.clone();
        async move {
            let (pending, mut rest) = state?;
            let item = match pending {
                Some(item) => item,
                None => match tokio::time::timeout(idle_timeout, rest.next()).await {
                    Ok(Some(item)) => item,
                    Ok(None) => return None,
                    Err(_) => {
                        return Some((Err(LlmError::Timeout { upstream, after: idle_timeout }), None));
                    }
                },
            };
            let next_state = if item.is_err() { None } else { Some((None, rest)) };
            Some((item, next_state))
        }
    });
    Box::pin(stream)
}

/// Shared handle used by the server.
pub type SharedRouter = Arc<ModelRouter>;
