//! The gateway service: a model call through the router inside the usage
//! layer — the tenant's plan (optimizer, response cache), rate limits and a
//! budget reservation before the call; settlement and one usage record
//! (who, model, provider, status, tokens, cost at the price in force,
//! latency, time to first token) after it. Recording and settlement never
//! make the caller wait on storage.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_db::ModelCallRecord;
use agentry_llm::pricing::Price;
use agentry_llm::router::Routed;
use agentry_llm::{ChatRequest, ChatResponse, ChatStream, EmbeddingResponse, LlmError, ModelRouter, StreamEvent, tokens, trace_context};
use agentry_types::{ChatMessage, Usage};
use futures::StreamExt;

use crate::Error;
use crate::coord::RateDecision;
use crate::usage::policy::TenantPolicy;
use crate::usage::{Accounting, Plan, Refusal, Subject, Ticket, estimate_prompt_tokens};

/// Who asked, for limits, budgets and the record.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: String,
    /// Route template, e.g. `/v1/chat/completions`.
    pub endpoint: &'static str,
    /// `None` for the master key without a tenant: metered, never limited.
    pub subject: Option<Subject>,
    /// The agent making the call, if any.
    pub agent: Option<String>,
    /// Where the call's usage record and settlement go.
    pub settlement: Settlement,
}

/// Where a call's usage record and budget settlement go.
#[derive(Clone, Default)]
pub enum Settlement {
    /// To the call log, settled at once: every live request.
    #[default]
    Immediate,
    /// Collected for the caller, who stores the records with its own result
    /// in one transaction and then settles them
    /// ([`Accounting::settle_stored`]): a batch line, answered and billed
    /// once whatever crashes in between.
    Collected(Arc<parking_lot::Mutex<Vec<Unsettled>>>),
}

impl std::fmt::Debug for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Immediate => "Immediate",
            Self::Collected(_) => "Collected",
        })
    }
}

/// A call's record and reservation, not yet stored and settled.
pub struct Unsettled {
    pub ticket: Ticket,
    pub record: ModelCallRecord,
}

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("refused by the usage policy")]
    Refused(Refusal),
    #[error(transparent)]
    Usage(#[from] Error),
}

/// A served call and the rate-limit state to report.
pub struct Served<T> {
    pub routed: Routed<T>,
    pub rate_limit: Option<RateDecision>,
    pub cache_hit: bool,
}

/// Model calls with accounting. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    router: Arc<ModelRouter>,
    accounting: Accounting,
}

/// How a call's cost is reckoned once its usage is known.
#[derive(Clone)]
struct Costing {
    policy: Option<Arc<TenantPolicy>>,
    /// The asked model's price when the optimizer rerouted the call.
    baseline: Option<Price>,
}

impl Costing {
    fn of(plan: &Plan) -> Self {
        Self { policy: plan.policy.clone(), baseline: plan.baseline }
    }

    /// Cost and savings in nano-USD at the tenant's price in force now.
    fn cost(&self, model: &str, registry: Price, usage: &Usage) -> (i64, i64) {
        let cost = Accounting::price(self.policy.as_deref(), model, Some(registry)).cost_nusd(usage);
        let saved = self.baseline.map_or(0, |b| (b.cost_nusd(usage) - cost).max(0));
        (cost, saved)
    }
}

impl Gateway {
    pub fn new(router: Arc<ModelRouter>, accounting: Accounting) -> Self {
        Self { router, accounting }
    }

    pub fn router(&self) -> &ModelRouter {
        &self.router
    }

    pub fn accounting(&self) -> &Accounting {
        &self.accounting
    }

    /// The registry price of a public model name; `None` when there is no such model.
    fn registry_price(&self, model: &str) -> Option<Price> {
        self.router.registry().get(model).map(|entry| entry.price)
    }

    /// Plan, rate limits and budget reservation for a call of `prompt_tokens` and `max_tokens`.
    async fn admit(&self, ctx: &CallContext, plan: &Plan, prompt_tokens: u32, max_tokens: Option<u32>) -> Result<Ticket, GatewayError> {
        trace_context::in_span(|| tracing::info_span!("limits", agentry.model = %plan.model), self.admit_unspanned(ctx, plan, prompt_tokens, max_tokens)).await
    }

    async fn admit_unspanned(&self, ctx: &CallContext, plan: &Plan, prompt_tokens: u32, max_tokens: Option<u32>) -> Result<Ticket, GatewayError> {
        let subject = ctx.subject.as_ref();
        let mut ticket = self.accounting.admit(subject, plan, prompt_tokens).await?.map_err(GatewayError::Refused)?;
        let registry_price = self.registry_price(&plan.model);
        self.accounting.reserve(subject, plan, &mut ticket, prompt_tokens, max_tokens, registry_price).await?.map_err(GatewayError::Refused)?;
        Ok(ticket)
    }

    /// A complete chat answer.
    pub async fn chat(&self, ctx: &CallContext, model: &str, request: ChatRequest) -> Result<Served<ChatResponse>, GatewayError> {
        trace_context::in_span(|| model_span("chat", model), self.chat_unspanned(ctx, model, request)).await
    }

    async fn chat_unspanned(&self, ctx: &CallContext, model: &str, mut request: ChatRequest) -> Result<Served<ChatResponse>, GatewayError> {
        let started = Instant::now();
        let plan = self.accounting.plan(ctx.subject.as_ref(), model, &mut request, false, |m| self.registry_price(m)).await?;
        let prompt_tokens = estimate_prompt_tokens(&request);
        let costing = Costing::of(&plan);
        if let Some(hit) = self.cached(ctx, &plan, &costing, started).await? {
            return Ok(hit);
        }
        let ticket = self.admit(ctx, &plan, prompt_tokens, request.max_tokens).await?;
        let rate_limit = ticket.rate_limit();
        let prompt = request.messages.clone();
        let result = self.router.complete(&plan.model, request).await;
        let outcome = match &result {
            Ok(routed) if routed.value.usage == Usage::default() => {
                // The upstream reported no usage: count with the model's tokenizer.
                let output = routed.value.content.as_deref().unwrap_or_default();
                Outcome::served(routed, Usage::new(tokens::count_prompt(&routed.model, &prompt), tokens::count(&routed.model, output)))
            }
            Ok(routed) => Outcome::served(routed, routed.value.usage),
            Err(error) => Outcome::failed(&plan.model, error),
        };
        self.settle(ctx, ticket, &costing, outcome, Meta { stream: false, started, ttft: None, cache_hit: false, span: trace_context::current() });
        let routed = result?;
        if plan.cache_key.is_some()
            && let Ok(bytes) = serde_json::to_vec(&routed.value)
        {
            self.accounting.store_cached(&plan, bytes).await;
        }
        Ok(Served { routed, rate_limit, cache_hit: false })
    }

    /// The response cache: a stored answer costs nothing and saves what the call would have cost.
    async fn cached(&self, ctx: &CallContext, plan: &Plan, costing: &Costing, started: Instant) -> Result<Option<Served<ChatResponse>>, GatewayError> {
        let Some(bytes) = self.accounting.cached(plan).await else { return Ok(None) };
        let Ok(response) = serde_json::from_slice::<ChatResponse>(&bytes) else { return Ok(None) };
        let ticket = self.accounting.admit(ctx.subject.as_ref(), plan, response.usage.prompt_tokens).await?.map_err(GatewayError::Refused)?;
        let rate_limit = ticket.rate_limit();
        let price = self.registry_price(&plan.model).unwrap_or(Price::FREE);
        let routed = Routed { value: response, model: plan.model.clone(), provider: "cache", price };
        let outcome = Outcome::served(&routed, routed.value.usage);
        self.settle(ctx, ticket, costing, outcome, Meta { stream: false, started, ttft: None, cache_hit: true, span: trace_context::current() });
        Ok(Some(Served { routed, rate_limit, cache_hit: true }))
    }

    /// A streamed chat answer. The record is written when the stream ends,
    /// fails or is dropped by a disconnecting client.
    pub async fn chat_stream(&self, ctx: &CallContext, model: &str, request: ChatRequest) -> Result<Served<ChatStream>, GatewayError> {
        trace_context::in_span(|| model_span("chat", model), self.chat_stream_unspanned(ctx, model, request)).await
    }

    async fn chat_stream_unspanned(&self, ctx: &CallContext, model: &str, mut request: ChatRequest) -> Result<Served<ChatStream>, GatewayError> {
        let started = Instant::now();
        let plan = self.accounting.plan(ctx.subject.as_ref(), model, &mut request, true, |m| self.registry_price(m)).await?;
        let prompt_tokens = estimate_prompt_tokens(&request);
        let costing = Costing::of(&plan);
        let ticket = self.admit(ctx, &plan, prompt_tokens, request.max_tokens).await?;
        let rate_limit = ticket.rate_limit();
        let prompt = request.messages.clone();
        let routed = match self.router.stream(&plan.model, request).await {
            Ok(routed) => routed,
            Err(error) => {
                let meta = Meta { stream: true, started, ttft: None, cache_hit: false, span: trace_context::current() };
                self.settle(ctx, ticket, &costing, Outcome::failed(&plan.model, &error), meta);
                return Err(error.into());
            }
        };
        // Until the stream reports its end, a dropped stream counts as cancelled.
        let outcome = Outcome { status: "cancelled", ..Outcome::served(&routed, Usage::default()) };
        let mut guard = StreamRecord {
            gateway: self.clone(),
            ctx: ctx.clone(),
            ticket: Some(ticket),
            costing,
            outcome,
            prompt,
            output: String::new(),
            reported_usage: false,
            started,
            first_token: started.elapsed(),
            span: trace_context::current(),
        };
        let Routed { value, model, provider, price } = routed;
        let stream = value.inspect(move |item| guard.observe(item));
        Ok(Served { routed: Routed { value: Box::pin(stream), model, provider, price }, rate_limit, cache_hit: false })
    }

    /// Embeddings.
    pub async fn embed(&self, ctx: &CallContext, model: &str, inputs: Vec<String>) -> Result<Served<EmbeddingResponse>, GatewayError> {
        trace_context::in_span(|| model_span("embeddings", model), self.embed_unspanned(ctx, model, inputs)).await
    }

    async fn embed_unspanned(&self, ctx: &CallContext, model: &str, inputs: Vec<String>) -> Result<Served<EmbeddingResponse>, GatewayError> {
        let started = Instant::now();
        let plan = self.accounting.plan_plain(ctx.subject.as_ref(), model).await?;
        let prompt_tokens = inputs.iter().map(|s| s.len().div_ceil(4) as u32).sum();
        let costing = Costing::of(&plan);
        let ticket = self.admit(ctx, &plan, prompt_tokens, Some(0)).await?;
        let rate_limit = ticket.rate_limit();
        let result = self.router.embed(model, inputs).await;
        let outcome = match &result {
            Ok(routed) => Outcome::served(routed, Usage::new(routed.value.prompt_tokens, 0)),
            Err(error) => Outcome::failed(model, error),
        };
        self.settle(ctx, ticket, &costing, outcome, Meta { stream: false, started, ttft: None, cache_hit: false, span: trace_context::current() });
        Ok(Served { routed: result?, rate_limit, cache_hit: false })
    }

    fn settle(&self, ctx: &CallContext, ticket: Ticket, costing: &Costing, outcome: Outcome, meta: Meta) {
        let (mut cost, mut saved) = costing.cost(&outcome.model, outcome.price, &outcome.usage);
        if meta.cache_hit {
            (cost, saved) = (0, cost);
        }
        let span = &meta.span;
        span.record("gen_ai.response.model", outcome.model.as_str());
        span.record("gen_ai.usage.input_tokens", outcome.usage.prompt_tokens);
        span.record("gen_ai.usage.output_tokens", outcome.usage.completion_tokens);
        span.record("agentry.cost_usd", cost as f64 / 1e9);
        span.record("agentry.cache_hit", meta.cache_hit);
        let subject = ctx.subject.as_ref();
        let record = ModelCallRecord {
            id: uuid::Uuid::now_v7().to_string(),
            request_id: ctx.request_id.clone(),
            endpoint: ctx.endpoint.to_owned(),
            model: outcome.model,
            provider: outcome.provider.to_owned(),
            status: outcome.status.to_owned(),
            stream: meta.stream,
            input_tokens: i64::from(outcome.usage.prompt_tokens),
            output_tokens: i64::from(outcome.usage.completion_tokens),
            latency_ms: meta.started.elapsed().as_millis() as i64,
            ttft_ms: meta.ttft.map(|d| d.as_millis() as i64),
            created_at_ms: crate::identity::now_ms(),
            tenant_id: subject.map(|s| s.tenant_id.clone()),
            user_id: subject.and_then(|s| s.user_id.clone()),
            api_key_id: subject.and_then(|s| s.api_key_id.clone()),
            agent: ctx.agent.clone(),
            cached_tokens: if meta.cache_hit { i64::from(outcome.usage.prompt_tokens) } else { 0 },
            cache_hit: meta.cache_hit,
            cost_nusd: cost,
            saved_nusd: saved,
        };
        match &ctx.settlement {
            Settlement::Immediate => self.accounting.settle(ticket, record),
            Settlement::Collected(into) => into.lock().push(Unsettled { ticket, record }),
        }
    }
}

/// The span of one model call, with the OpenTelemetry GenAI attributes
/// (tokens and cost are recorded when the call is settled).
fn model_span(operation: &'static str, model: &str) -> tracing::Span {
    tracing::info_span!(
        "model call",
        otel.name = %format!("{operation} {model}"),
        gen_ai.operation.name = operation,
        gen_ai.request.model = %model,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        agentry.cost_usd = tracing::field::Empty,
        agentry.cache_hit = tracing::field::Empty,
    )
}

/// How a call was served, for its record.
struct Meta {
    stream: bool,
    started: Instant,
    ttft: Option<Duration>,
    cache_hit: bool,
    /// Where the call's tokens and cost are recorded (its `model call` span).
    span: tracing::Span,
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

/// Follows a stream and settles it exactly once: at the end, on an error,
/// or when dropped early (client went away → status `cancelled`). When the
/// upstream reports no usage, tokens are counted with the model's tokenizer.
struct StreamRecord {
    gateway: Gateway,
    ctx: CallContext,
    ticket: Option<Ticket>,
    costing: Costing,
    outcome: Outcome,
    prompt: Vec<ChatMessage>,
    output: String,
    reported_usage: bool,
    started: Instant,
    first_token: Duration,
    /// The call's span: the stream ends after it was left.
    span: tracing::Span,
}

impl StreamRecord {
    fn observe(&mut self, item: &Result<StreamEvent, LlmError>) {
        match item {
            Ok(StreamEvent::Usage(usage)) => {
                self.outcome.usage = *usage;
                self.reported_usage = true;
                self.outcome.status = "success";
                self.finish();
            }
            Ok(StreamEvent::Finish(_)) => self.outcome.status = "success",
            Ok(StreamEvent::Delta { content: Some(content), .. }) => self.output.push_str(content),
            Ok(StreamEvent::Delta { .. }) => {}
            Err(_) => {
                self.outcome.status = "error";
                self.finish();
            }
        }
    }

    fn finish(&mut self) {
        let Some(ticket) = self.ticket.take() else { return };
        if !self.reported_usage {
            let model = &self.outcome.model;
            self.outcome.usage = Usage::new(tokens::count_prompt(model, &self.prompt), tokens::count(model, &self.output));
        }
        let meta = Meta { stream: true, started: self.started, ttft: Some(self.first_token), cache_hit: false, span: self.span.clone() };
        self.gateway.settle(&self.ctx, ticket, &self.costing, self.outcome.clone(), meta);
    }
}

impl Drop for StreamRecord {
    fn drop(&mut self) {
        self.finish();
    }
}
