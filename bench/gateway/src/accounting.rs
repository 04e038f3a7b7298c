//! In-process cost of the usage layer, where microseconds can be resolved
//! (an HTTP load generator's run-to-run noise is hundreds of microseconds).
//! Builds the real parts — SQLite with migrations, the call-log writer, the
//! model router with the in-process mock model, `Coord` (embedded, and Redis
//! when a URL is given) and `Accounting` — then times one chat call at a time:
//!
//! - **off**: the router alone, no accounting at all (the baseline);
//! - **metered**: `Gateway::chat` for a key with no budget and no tier
//!   (policy lookup, usage record, metrics);
//! - **metered + budgets + limits**: `Gateway::chat` for a key with a daily
//!   budget and a rate-limit tier (GCRA for requests and tokens, a concurrency
//!   slot, a daily quota, an atomic budget reservation, settlement).
//!
//! Modes alternate in blocks so drift on the shared cores hits each alike.
//! A second pass runs 64 concurrent callers per mode for throughput.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentry_core::coord::Coord;
use agentry_core::gateway::GatewayError;
use agentry_core::usage::{Refusal, UsageSettings};
use agentry_core::{Accounting, Audit, CallContext, Gateway, Subject};
use agentry_db::billing::{BudgetRow, TierRow};
use agentry_db::identity::TenantRow;
use agentry_db::{CallLogConfig, CallLogWriter, Db};
use agentry_llm::providers::ProviderConfig;
use agentry_llm::registry::ModelConfig;
use agentry_llm::{ChatRequest, ModelRegistry, ModelRouter, RouterConfig};
use agentry_types::{ChatMessage, Role};
use anyhow::Context;
use serde_json::json;

/// Per run, so counters a previous run left in Redis (slots whose settlement
/// the exiting process dropped, budget spend) do not carry over.
static TENANT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!("tenant-bench-{}", std::process::id()));
const MODEL: &str = "bench-mock";
/// Calls per mode per block, and blocks per mode.
const BLOCK: usize = 5_000;
const BLOCKS: usize = 20;
pub const CALLS_PER_MODE: usize = BLOCK * BLOCKS;
/// Concurrent callers and calls each in the throughput pass.
const CALLERS: usize = 64;
const CALLS_PER_CALLER: usize = 2_000;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Off,
    Metered,
    Limited,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Off, Mode::Metered, Mode::Limited];

    fn name(self) -> &'static str {
        match self {
            Mode::Off => "off (router only)",
            Mode::Metered => "metered",
            Mode::Limited => "metered + budgets + limits",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Mode::Off | Mode::Metered => "key-metered",
            Mode::Limited => "key-limited",
        }
    }
}

/// One mode's results.
pub struct Row {
    pub mode: &'static str,
    /// One call at a time.
    pub p50_us: f64,
    pub p99_us: f64,
    /// With `CALLERS` concurrent callers, and the share of their calls refused.
    pub calls_per_second: f64,
    pub refused: f64,
}

/// One coordination backend's results.
pub struct Measured {
    pub coordination: &'static str,
    pub rows: Vec<Row>,
}

/// Measure on the embedded coordination and, with `redis_url`, on Redis.
pub fn measure(redis_url: Option<&str>) -> anyhow::Result<Vec<Measured>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let mut results = vec![measure_with(Coord::local(), "embedded").await?];
        if let Some(url) = redis_url {
            let coord = Coord::redis(url, Duration::from_millis(250)).context("redis url")?;
            results.push(measure_with(coord, "redis").await?);
        }
        Ok(results)
    })
}

async fn measure_with(coord: Coord, coordination: &'static str) -> anyhow::Result<Measured> {
    let dir = std::env::temp_dir().join(format!("agentry-bench-accounting-{}-{coordination}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Db::connect(&format!("sqlite:{}", dir.join("bench.db").display())).await?;
    db.migrate().await?;
    seed_policy(&db).await?;
    let router = Arc::new(router()?);
    let (call_log, _writer) = CallLogWriter::start(db.clone(), CallLogConfig::default(), tokio_util::sync::CancellationToken::new());
    let events = agentry_core::events::Events::new(db.clone(), Default::default());
    let accounting = Accounting::new(db.clone(), coord, UsageSettings::default(), call_log, Audit::new(db), events);
    let gateway = Gateway::new(router, accounting);

    // Warm-up: policy caches, counters seeded, Redis connected.
    for mode in Mode::ALL {
        for _ in 0..2_000 {
            call(&gateway, mode).await.map_err(CallError::into_error)?;
        }
    }
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(BLOCK * BLOCKS); Mode::ALL.len()];
    for _ in 0..BLOCKS {
        for (i, mode) in Mode::ALL.into_iter().enumerate() {
            for _ in 0..BLOCK {
                let started = Instant::now();
                call(&gateway, mode).await.map_err(CallError::into_error)?;
                samples[i].push(started.elapsed().as_nanos() as u64);
            }
        }
    }
    let mut rows = Vec::new();
    for (i, mode) in Mode::ALL.into_iter().enumerate() {
        let (throughput, refused) = concurrent_throughput(&gateway, mode).await?;
        let values = &mut samples[i];
        values.sort_unstable();
        let micros = |q: f64| values[((values.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        rows.push(Row { mode: mode.name(), p50_us: micros(0.5), p99_us: micros(0.99), calls_per_second: throughput, refused });
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Measured { coordination, rows })
}

/// Calls per second with `CALLERS` concurrent tasks, and the share refused.
/// Settlement runs after each answer, so with Redis a backlog of unsettled
/// calls can still hold concurrency slots when the callers outrun Redis.
async fn concurrent_throughput(gateway: &Gateway, mode: Mode) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let gateway = gateway.clone();
            tokio::spawn(async move {
                let mut refused = 0_usize;
                for _ in 0..CALLS_PER_CALLER {
                    // A server's request task yields on socket I/O; without it these
                    // callers would starve the spawned settlements and hold slots.
                    tokio::task::yield_now().await;
                    match call(&gateway, mode).await {
                        Ok(()) => {}
                        Err(CallError::Refused(_)) => refused += 1,
                        Err(CallError::Failed(error)) => return Err(error),
                    }
                }
                anyhow::Ok(refused)
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        refused += task.await??;
    }
    let calls = (CALLERS * CALLS_PER_CALLER) as f64;
    Ok((calls / started.elapsed().as_secs_f64(), refused as f64 / calls))
}

enum CallError {
    Refused(Refusal),
    Failed(anyhow::Error),
}

impl CallError {
    /// One call at a time never meets a limit: a refusal there is a failure of the run.
    fn into_error(self) -> anyhow::Error {
        match self {
            CallError::Refused(refusal) => anyhow::anyhow!("call refused: {refusal:?}"),
            CallError::Failed(error) => error,
        }
    }
}

async fn call(gateway: &Gateway, mode: Mode) -> Result<(), CallError> {
    let request = ChatRequest { messages: vec![ChatMessage::text(Role::User, "hello there")], ..ChatRequest::default() };
    if mode == Mode::Off {
        gateway.router().complete(MODEL, request).await.map_err(|e| CallError::Failed(e.into()))?;
        return Ok(());
    }
    let ctx = CallContext {
        request_id: uuid::Uuid::now_v7().to_string(),
        endpoint: "/v1/chat/completions",
        subject: Some(Subject { tenant_id: TENANT.clone(), user_id: Some("user-bench".to_owned()), api_key_id: Some(mode.key().to_owned()) }),
        agent: None,
        settlement: Default::default(),
    };
    match gateway.chat(&ctx, MODEL, request).await {
        Ok(_) => Ok(()),
        Err(GatewayError::Refused(refusal)) => Err(CallError::Refused(refusal)),
        Err(error) => Err(CallError::Failed(error.into())),
    }
}

fn router() -> anyhow::Result<ModelRouter> {
    let provider: ProviderConfig = serde_json::from_value(json!({ "type": "mock", "name": "mock" }))?;
    let model: ModelConfig = serde_json::from_value(json!({
        "name": MODEL, "provider": "mock", "input_price_per_1k": 0.001, "output_price_per_1k": 0.002,
    }))?;
    let registry = ModelRegistry::build(&[provider], &[model], Vec::new())?;
    Ok(ModelRouter::new(registry, RouterConfig::default()))
}

/// A tenant, a tier no call of the run reaches, and a daily budget on the limited key that none exhausts.
async fn seed_policy(db: &Db) -> anyhow::Result<()> {
    let now = agentry_core::identity::now_ms();
    db.insert_tenant(&TenantRow { id: TENANT.clone(), slug: "bench".into(), name: "Bench".into(), mfa_required: false, created_at_ms: now }).await?;
    let huge = Some(1_000_000_000_000);
    db.upsert_tier(&TierRow { name: "bench".into(), requests_per_minute: huge, tokens_per_minute: huge, concurrent: Some(100_000), requests_per_day: huge, updated_at_ms: now })
        .await?;
    db.set_tier_assignment(&TENANT, "api_key", Mode::Limited.key(), Some("bench")).await?;
    db.upsert_budget(&BudgetRow {
        id: format!("budget-{}", *TENANT),
        tenant_id: TENANT.clone(),
        scope: "api_key".into(),
        scope_id: Mode::Limited.key().into(),
        period: "daily".into(),
        limit_nusd: 1_000_000 * 1_000_000_000,
        soft_limit_nusd: Some(500_000 * 1_000_000_000),
        created_at_ms: now,
        updated_at_ms: now,
    })
    .await?;
    Ok(())
}
