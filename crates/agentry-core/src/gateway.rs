//! The gateway service: one call through the model router plus one call-log
//! record per served request (model, provider, status, tokens, cost, latency,
//! time to first token). Recording is a non-blocking queue push; nothing here
//! waits on storage.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use agentry_db::{CallLogWriter, ModelCallRecord};
use agentry_llm::pricing::Price;
use agentry_llm::router::Routed;
use agentry_llm::{ChatRequest, ChatResponse, ChatStream, EmbeddingResponse, LlmError, ModelRouter, StreamEvent};
use agentry_types::Usage;
use futures::StreamExt;

/// Who asked, for the record.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: String,
    /// Route template, e.g. `/v1/chat/completions`.
    pub endpoint: &'static str,
}

/// Model calls with accounting. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    router: Arc<ModelRouter>,
    call_log: CallLogWriter,
}

impl Gateway {
    pub fn new(router: Arc<ModelRouter>, call_log: CallLogWriter) -> Self {
        Self { router, call_log }
    }

    pub fn router(&self) -> &ModelRouter {
        &self.router
    }

    /// A complete chat answer.
    pub async fn chat(&self, ctx: &CallContext, model: &str, request: ChatRequest) -> Result<Routed<ChatResponse>, LlmError> {
        let started = Instant::now();
        let result = self.router.complete(model, request).await;
        let outcome = match &result {
            Ok(routed) => Outcome::served(routed, routed.value.usage),
            Err(error) => Outcome::failed(model, error),
        };
        self.record(ctx, outcome, false, started, None);
        result
    }

    /// A streamed chat answer. The record is written when the stream ends,
    /// fails or is dropped by a disconnecting client.
    pub async fn chat_stream(&self, ctx: &CallContext, model: &str, request: ChatRequest) -> Result<Routed<ChatStream>, LlmError> {
        let started = Instant::now();
        let routed = match self.router.stream(model, request).await {
            Ok(routed) => routed,
            Err(error) => {
                self.record(ctx, Outcome::failed(model, &error), true, started, None);
                return Err(error);
            }
        };
        // Until the stream reports its end, a dropped stream counts as cancelled.
        let outcome = Outcome { status: "cancelled", ..Outcome::served(&routed, Usage::default()) };
        let mut guard =
            StreamRecord { gateway: self.clone(), ctx: ctx.clone(), outcome, started, first_token: Some(started.elapsed()), finished: false };
        let Routed { value, model, provider, price } = routed;
        let stream = value.inspect(move |item| guard.observe(item));
        Ok(Routed { value: Box::pin(stream), model, provider, price })
    }

    /// Embeddings.
    pub async fn embed(&self, ctx: &CallContext, model: &str, inputs: Vec<String>) -> Result<Routed<EmbeddingResponse>, LlmError> {
        let started = Instant::now();
        let result = self.router.embed(model, inputs).await;
        let outcome = match &result {
            Ok(routed) => Outcome::served(routed, Usage::new(routed.value.prompt_tokens, 0)),
            Err(error) => Outcome::failed(model, error),
        };
        self.record(ctx, outcome, false, started, None);
        result
    }

    fn record(&self, ctx: &CallContext, outcome: Outcome, stream: bool, started: Instant, ttft: Option<std::time::Duration>) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        self.call_log.record(ModelCallRecord {
            id: uuid::Uuid::now_v7().to_string(),
            request_id: ctx.request_id.clone(),
            endpoint: ctx.endpoint.to_owned(),
            model: outcome.model,
            provider: outcome.provider.to_owned(),
            status: outcome.status.to_owned(),
            stream,
            input_tokens: i64::from(outcome.usage.prompt_tokens),
            output_tokens: i64::from(outcome.usage.completion_tokens),
            cost_usd: outcome.price.cost(&outcome.usage),
            latency_ms: started.elapsed().as_millis() as i64,
            ttft_ms: ttft.map(|d| d.as_millis() as i64),
            created_at_ms: now_ms,
        });
    }
}

/// What is known about a call when it is recorded.
#[derive(Clone)]
struct Outcome {
    model: String,
    provider: &'static str,
    status: &'static str,
    usage: Usage,
    price: Price,
}

impl Outcome {
    fn served<T>(routed: &Routed<T>, usage: Usage) -> Self {
        Self { model: routed.model.clone(), provider: routed.provider, status: "success", usage, price: routed.price }
    }

    fn failed(model: &str, error: &LlmError) -> Self {
        let status = match error {
            LlmError::ModelNotFound(_) | LlmError::Unsupported { .. } | LlmError::InvalidRequest { .. } => "rejected",
            LlmError::Timeout { .. } => "timeout",
            _ => "error",
        };
        Self { model: model.to_owned(), provider: "none", status, usage: Usage::default(), price: Price::FREE }
    }
}

/// Follows a stream and writes its record exactly once: at the end, on an
/// error, or when dropped early (client went away → status `cancelled`).
struct StreamRecord {
    gateway: Gateway,
    ctx: CallContext,
    outcome: Outcome,
    started: Instant,
    first_token: Option<std::time::Duration>,
    finished: bool,
}

impl StreamRecord {
    fn observe(&mut self, item: &Result<StreamEvent, LlmError>) {
        match item {
            Ok(StreamEvent::Usage(usage)) => {
                self.outcome.usage = *usage;
                self.outcome.status = "success";
                self.finish();
            }
            Ok(StreamEvent::Finish(_)) => self.outcome.status = "success",
            Ok(StreamEvent::Delta { .. }) => {}
            Err(_) => {
                self.outcome.status = "error";
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.gateway.record(&self.ctx, self.outcome.clone(), true, self.started, self.first_token);
    }
}

impl Drop for StreamRecord {
    fn drop(&mut self) {
        self.finish();
    }
}
