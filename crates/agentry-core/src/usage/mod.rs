//! Usage and money: metering of every model call, prices with history,
//! budgets, rate-limit tiers, the cost optimizer and response cache,
//! analytics and invoices.
//!
//! On the request path ([`Accounting::plan`], [`Accounting::admit`],
//! [`Accounting::reserve`], [`Accounting::settle`]) only cached policy and
//! coordination state ([`crate::coord`]) are touched: usage records go to the
//! batch writer, settlement that needs Redis runs in a spawned task, and no
//! analytics query runs. Management and reporting functions take the
//! caller's [`TenantAccess`] and check permissions themselves.
//!
//! Must not: speak HTTP or call models (the gateway does).

pub mod analytics;
pub mod billing;
pub mod budgets;
pub mod limits;
pub mod manage;
pub mod optimizer;
pub mod policy;

use agentry_types::{AuditAction, EventType, Permission};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use agentry_db::billing::UsageSettingsRow;
use agentry_db::{CallLogWriter, ModelCallRecord};
use agentry_llm::ChatRequest;
use agentry_llm::pricing::Price;
use agentry_llm::series::Series;

use crate::audit::{Actor, Audit, AuditEvent, Outcome, RequestMeta};
use crate::coord::{Coord, RateDecision};
use crate::events::{Audience, Events};
pub use budgets::{BudgetExceeded, Period, Reservation, Scope};
pub use limits::{Admitted, Refused};
pub use optimizer::{AUTO_MODEL, Complexity, OptimizerConfig};
use policy::{Policies, TenantPolicy};

/// Who a call is made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub tenant_id: String,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
}

impl Subject {
    /// Who `access` is, for limits, budgets and records.
    pub fn of(access: &crate::TenantAccess) -> Self {
        Self { tenant_id: access.tenant_id().to_owned(), user_id: access.principal().user_id().map(str::to_owned), api_key_id: access.principal().api_key_id().map(str::to_owned) }
    }
}

pub use crate::error::Error;

/// Operator settings of the usage layer.
/// A tenant's cost-optimizer and response-cache switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUsageSettings {
    /// Route simple requests to a cheaper model of the same family (see the optimizer).
    pub optimizer_enabled: bool,
    /// Serve identical non-streamed requests from the response cache.
    pub response_cache_enabled: bool,
}

impl From<UsageSettingsRow> for TenantUsageSettings {
    fn from(row: UsageSettingsRow) -> Self {
        Self { optimizer_enabled: row.optimizer_enabled, response_cache_enabled: row.response_cache_enabled }
    }
}

impl From<TenantUsageSettings> for UsageSettingsRow {
    fn from(s: TenantUsageSettings) -> Self {
        Self { optimizer_enabled: s.optimizer_enabled, response_cache_enabled: s.response_cache_enabled }
    }
}

#[derive(Debug, Clone)]
pub struct UsageSettings {
    /// Output tokens assumed for a budget reservation when a request sets no `max_tokens`.
    pub default_output_tokens: u32,
    pub response_cache_ttl: Duration,
    pub optimizer: OptimizerConfig,
    /// Optimizer and response cache for tenants that did not choose.
    pub tenant_defaults: TenantUsageSettings,
    /// Days raw usage records are kept (rollups are kept forever).
    pub retention_days: u32,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            default_output_tokens: 512,
            response_cache_ttl: Duration::from_secs(3600),
            optimizer: OptimizerConfig::default(),
            tenant_defaults: TenantUsageSettings { optimizer_enabled: false, response_cache_enabled: false },
            retention_days: 90,
        }
    }
}

/// A call's plan after the tenant's policy has been consulted.
pub struct Plan {
    /// The public model name to route to (the optimizer may have changed it).
    pub model: String,
    /// The asked model's price when the optimizer rerouted the call (savings are measured against it).
    pub baseline: Option<Price>,
    pub policy: Option<Arc<TenantPolicy>>,
    /// Set when the tenant's response cache applies to this call.
    pub cache_key: Option<String>,
}

/// What an admitted call holds until it settles.
#[derive(Debug, Clone, Default)]
pub struct Ticket {
    pub admitted: Admitted,
    pub reservation: Reservation,
}

impl Ticket {
    pub fn rate_limit(&self) -> Option<RateDecision> {
        self.admitted.status
    }

    fn holds_anything(&self) -> bool {
        !self.reservation.budgets.is_empty() || self.admitted.holds_anything()
    }
}

/// Why a call was refused before it ran.
#[derive(Debug, Clone)]
pub enum Refusal {
    RateLimited(Refused),
    Budget(BudgetExceeded),
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Accounting {
    inner: Arc<Inner>,
}

struct Inner {
    policies: Policies,
    coord: Coord,
    settings: UsageSettings,
    call_log: CallLogWriter,
    audit: Audit,
    /// Where budget alerts are published.
    events: Events,
}

/// Rough prompt size for reservations and token limits: a token per four
/// bytes of text plus a few per message, before the model reports the truth.
pub fn estimate_prompt_tokens(request: &ChatRequest) -> u32 {
    request.messages.iter().map(|m| m.content_text().len().div_ceil(4) as u32 + 4).sum()
}

impl Accounting {
    pub fn new(db: agentry_db::Db, coord: Coord, settings: UsageSettings, call_log: CallLogWriter, audit: Audit, events: Events) -> Self {
        let policies = Policies::new(db, settings.tenant_defaults);
        Self { inner: Arc::new(Inner { policies, coord, settings, call_log, audit, events }) }
    }

    pub fn coord(&self) -> &Coord {
        &self.inner.coord
    }

    pub fn settings(&self) -> &UsageSettings {
        &self.inner.settings
    }

    pub(crate) fn policies(&self) -> &Policies {
        &self.inner.policies
    }

    /// The price of a model for a tenant: its override, else the registry's.
    pub fn price(policy: Option<&TenantPolicy>, model: &str, registry: Option<Price>) -> Price {
        policy.and_then(|p| p.prices.get(model).copied()).or(registry).unwrap_or(Price::FREE)
    }

    /// Consult the tenant's policy: optimizer routing (may rewrite `request.max_tokens`) and the cache key.
    /// `registry_price` looks a public model name up in the model registry.
    pub async fn plan(
        &self,
        subject: Option<&Subject>,
        model: &str,
        request: &mut ChatRequest,
        stream: bool,
        registry_price: impl Fn(&str) -> Option<Price>,
    ) -> Result<Plan, Error> {
        let mut plan = self.plan_plain(subject, model).await?;
        let (Some(subject), Some(policy)) = (subject, &plan.policy) else { return Ok(plan) };
        if policy.settings.optimizer_enabled {
            let price_of = |name: &str| registry_price(name).map(|p| Self::price(Some(policy), name, Some(p)));
            let optimizer = &self.inner.settings.optimizer;
            let route = optimizer.route(optimizer::classify(request));
            let asked = if model == AUTO_MODEL { optimizer.complex.model.as_str() } else { model };
            let baseline = price_of(asked);
            let reroute = match price_of(&route.model) {
                None => false,
                Some(_) if model == AUTO_MODEL => true,
                Some(route_price) => baseline.is_some_and(|b| cost_per_k(route_price) < cost_per_k(b)),
            };
            if reroute {
                plan.model = route.model.clone();
                plan.baseline = baseline;
                request.max_tokens = Some(request.max_tokens.map_or(route.max_tokens, |m| m.min(route.max_tokens)));
            }
        }
        if policy.settings.response_cache_enabled && !stream {
            plan.cache_key = Some(optimizer::cache_key(&subject.tenant_id, &plan.model, request));
        }
        Ok(plan)
    }

    /// The plan of a call the optimizer and cache do not apply to (embeddings).
    pub async fn plan_plain(&self, subject: Option<&Subject>, model: &str) -> Result<Plan, Error> {
        let policy = match subject {
            Some(subject) => Some(self.inner.policies.tenant(&subject.tenant_id).await?),
            None => None,
        };
        Ok(Plan { model: model.to_owned(), baseline: None, policy, cache_key: None })
    }

    /// Rate limits: check every tier that applies.
    pub async fn admit(&self, subject: Option<&Subject>, plan: &Plan, prompt_tokens: u32) -> Result<Result<Ticket, Refusal>, Error> {
        let (Some(subject), Some(policy)) = (subject, &plan.policy) else { return Ok(Ok(Ticket::default())) };
        if policy.assignments.is_empty() {
            return Ok(Ok(Ticket::default()));
        }
        let tiers = self.inner.policies.tiers().await?;
        match limits::check(&self.inner.coord, &tiers, &policy.assignments, subject, u64::from(prompt_tokens)).await {
            Ok(admitted) => Ok(Ok(Ticket { admitted, reservation: Reservation::default() })),
            Err(refused) => {
                metrics::counter!("rate_limited_requests_total", "tier" => refused.tier.clone(), "dimension" => refused.dimension).increment(1);
                Ok(Err(Refusal::RateLimited(refused)))
            }
        }
    }

    /// Budgets: hold the estimated cost of the call — prompt estimate × input
    /// price + output cap (or the configured default) × output price, at the
    /// tenant's price of the planned model. On refusal the ticket's limits are released.
    pub async fn reserve(
        &self,
        subject: Option<&Subject>,
        plan: &Plan,
        ticket: &mut Ticket,
        prompt_tokens: u32,
        max_tokens: Option<u32>,
        registry_price: Option<Price>,
    ) -> Result<Result<(), Refusal>, Error> {
        let (Some(subject), Some(policy)) = (subject, &plan.policy) else { return Ok(Ok(())) };
        let active = budgets::applicable(&policy.budgets, subject);
        if active.is_empty() {
            return Ok(Ok(()));
        }
        let output = max_tokens.unwrap_or(self.inner.settings.default_output_tokens);
        let estimate = Self::price(Some(policy), &plan.model, registry_price).cost_nusd(&agentry_types::Usage::new(prompt_tokens, output));
        match budgets::reserve(&self.inner.coord, self.inner.policies.db(), active, estimate).await? {
            Ok(reservation) => {
                ticket.reservation = reservation;
                Ok(Ok(()))
            }
            Err(exceeded) => {
                limits::settle(&self.inner.coord, &ticket.admitted, 0).await;
                // Refused with less than 1% of the limit left: exhausted. (A call that merely
                // asks for more than is left, a huge max_tokens, says nothing of the budget.)
                let left = exceeded.limit_nusd - exceeded.spent_nusd;
                if left <= exceeded.limit_nusd / 100 {
                    let (this, tenant, budget, spent) = (self.clone(), subject.tenant_id.clone(), exceeded.refused_by.clone(), exceeded.spent_nusd);
                    tokio::spawn(async move { this.budget_crossed(Some(&tenant), &budget, spent, Crossing::Limit).await });
                }
                Ok(Err(Refusal::Budget(exceeded)))
            }
        }
    }

    /// A cached answer, if the plan has a cache key and the cache holds one.
    pub async fn cached(&self, plan: &Plan) -> Option<Vec<u8>> {
        let key = plan.cache_key.as_ref()?;
        let hit = self.inner.coord.cache_get(key).await;
        if hit.is_some() {
            metrics::counter!("cache_requests_total", "cache" => "response", "result" => "hit").increment(1);
        } else {
            metrics::counter!("cache_requests_total", "cache" => "response", "result" => "miss").increment(1);
        }
        hit
    }

    pub async fn store_cached(&self, plan: &Plan, bytes: Vec<u8>) {
        if let Some(key) = &plan.cache_key {
            self.inner.coord.cache_put(key, bytes, self.inner.settings.response_cache_ttl).await;
        }
    }

    /// End of a call: write its usage record, give back what the estimate
    /// held beyond the actual cost, free limits, raise budget alerts. Never waits.
    pub fn settle(&self, ticket: Ticket, record: ModelCallRecord) {
        self.settle_stored(ticket, &record);
        self.inner.call_log.record(record);
    }

    /// Settle a call whose record its caller stored itself
    /// ([`crate::gateway::Settlement::Collected`]): metrics, rate-limit
    /// and budget counters, without the call log.
    pub fn settle_stored(&self, ticket: Ticket, record: &ModelCallRecord) {
        let cost = record.cost_nusd;
        count_usage(record);
        let output_tokens = record.output_tokens.max(0) as u64;
        if !ticket.holds_anything() {
            return;
        }
        let tenant = record.tenant_id.clone();
        let this = self.clone();
        tokio::spawn(async move {
            limits::settle(&this.inner.coord, &ticket.admitted, output_tokens).await;
            for (budget, spent) in budgets::settle(&this.inner.coord, &ticket.reservation, cost).await {
                let scope = format!("{}:{}", budget.row.scope, budget.row.scope_id);
                metrics::gauge!("budget_remaining_dollars", "scope" => scope, "period" => budget.row.period.clone()).set(nusd_to_usd(budget.row.limit_nusd - spent));
                if let Some(soft) = budget.row.soft_limit_nusd
                    && spent >= soft
                    && spent - cost < soft
                {
                    this.budget_crossed(tenant.as_deref(), &budget, spent, Crossing::SoftLimit).await;
                }
                if spent >= budget.row.limit_nusd && spent - cost < budget.row.limit_nusd {
                    this.budget_crossed(tenant.as_deref(), &budget, spent, Crossing::Limit).await;
                }
            }
        });
    }

    /// Audit and publish a budget's crossing, once per budget period (whichever replica settles the call).
    async fn budget_crossed(&self, tenant: Option<&str>, budget: &budgets::ActiveBudget, spent: i64, crossing: Crossing) {
        let (flag, action, event_type, level) = match crossing {
            Crossing::SoftLimit => (format!("{}:alerted", budget.key), AuditAction::BudgetSoftLimitReached, EventType::BudgetSoftLimitReached, "soft_limit"),
            Crossing::Limit => (format!("{}:exhausted", budget.key), AuditAction::BudgetExhausted, EventType::BudgetExhausted, "limit"),
        };
        if !self.inner.coord.flag_once(&flag, Duration::from_secs(40 * 86_400)).await {
            return;
        }
        metrics::counter!("budget_alerts_total", "scope" => budget.row.scope.clone(), "level" => level).increment(1);
        tracing::warn!(budget = %budget.describe(), spent_usd = nusd_to_usd(spent), level, "budget alert");
        let event = AuditEvent {
            tenant,
            actor: Actor::System,
            action,
            resource: Some(format!("budget:{}", budget.row.id)),
            outcome: Outcome::Success,
            meta: &RequestMeta::default(),
            metadata: serde_json::json!({
                "scope": budget.row.scope, "scope_id": budget.row.scope_id, "period": budget.row.period,
                "period_start": budget.start.to_string(),
                "spent_usd": nusd_to_usd(spent), "soft_limit_usd": budget.row.soft_limit_nusd.map(nusd_to_usd),
                "limit_usd": nusd_to_usd(budget.row.limit_nusd),
            }),
        };
        let data = event.metadata.clone();
        if let Err(error) = self.inner.audit.record(event).await {
            tracing::error!(%error, "could not record the budget alert");
        }
        if let Some(tenant) = tenant {
            let audience = Audience::members_with(&[Permission::ManageBilling, Permission::ViewMetrics]);
            self.inner.events.publish(tenant, event_type, audience, serde_json::json!({ "budget_id": budget.row.id, "alert": data })).await;
        }
    }
}

/// Which line of a budget spending crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossing {
    SoftLimit,
    Limit,
}

fn cost_per_k(price: Price) -> f64 {
    price.input_per_1k + price.output_per_1k
}

/// Nano-USD to USD, for display.
pub fn nusd_to_usd(nusd: i64) -> f64 {
    nusd as f64 / 1e9
}

/// USD to nano-USD, rounded.
pub fn usd_to_nusd(usd: f64) -> i64 {
    (usd * 1e9).round() as i64
}

/// `token_usage_total{model,type}` and `api_cost_dollars_total{model,agent_type}` for one call.
fn count_usage(record: &ModelCallRecord) {
    static TOKENS: LazyLock<Series<2, metrics::Counter>> = LazyLock::new(Series::new);
    static COST: LazyLock<Series<2, metrics::Gauge>> = LazyLock::new(Series::new);
    let tokens = |kind| TOKENS.get([&record.model, kind], |[model, kind]| metrics::counter!("token_usage_total", "model" => model.to_owned(), "type" => kind.to_owned()));
    tokens("input").increment(record.input_tokens.max(0) as u64);
    tokens("output").increment(record.output_tokens.max(0) as u64);
    if record.cost_nusd > 0 {
        let agent = record.agent.as_deref().unwrap_or("gateway");
        // A gauge only increases here: the metrics facade counts integers, this is dollars.
        COST.get([&record.model, agent], |[model, agent]| metrics::gauge!("api_cost_dollars", "model" => model.to_owned(), "agent_type" => agent.to_owned()))
            .increment(nusd_to_usd(record.cost_nusd));
    }
}
