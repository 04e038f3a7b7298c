//! Shared counters, rate-limit states, concurrency slots, one-time flags and
//! a byte cache: in process for the embedded default, in Redis when
//! configured (scale-out). Every operation is atomic in either mode.
//!
//! When Redis fails, the operation is answered from the local state instead
//! and Redis is left alone for [`RETRY_REDIS_AFTER`]: requests keep flowing
//! under per-replica limits, and [`Coord::degraded`] says so for `/ready`
//! and the `coordination_degraded` gauge. Budget counters that were never
//! seen locally are seeded from the usage store (see `usage::budgets`).
//!
//! Must not: know what a budget or a tier is; callers build the keys.

mod gcra;
mod local;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use gcra::RateDecision;
use local::LocalCoord;
use redis::RedisCoord;

/// How long Redis is skipped after a failure.
pub const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// The result of reserving an amount against several counters at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    /// All counters took the amount; their values after.
    Reserved(Vec<i64>),
    /// The counter at `index` would pass its limit; nothing was taken.
    Exceeded { index: usize, spent: i64 },
    /// These counters do not exist yet: seed them, then reserve again.
    NeedsSeed(Vec<usize>),
}

/// The coordination backend. Cheap to clone.
#[derive(Clone)]
pub struct Coord {
    local: Arc<LocalCoord>,
    redis: Option<RedisCoord>,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not tried (0 = healthy).
    redis_down_until_ms: Arc<AtomicU64>,
}

macro_rules! with_fallback {
    ($self:ident, $redis:ident => $remote:expr, $local:ident => $fallback:expr) => {{
        if let Some($redis) = $self.usable_redis() {
            match $remote.await {
                Ok(value) => return value,
                Err(error) => $self.redis_failed(&error),
            }
        }
        let $local = &$self.local;
        $fallback
    }};
}

impl Coord {
    /// In-process only.
    pub fn local() -> Self {
        Self { local: Arc::default(), redis: None, started: Instant::now(), redis_down_until_ms: Arc::default() }
    }

    /// Backed by Redis at `url` (connection made in the background), with
    /// `timeout` per operation.
    pub fn redis(url: &str, timeout: Duration) -> Result<Self, ::redis::RedisError> {
        let redis = RedisCoord::connect(url, timeout)?;
        Ok(Self { redis: Some(redis), ..Self::local() })
    }

    /// `local`, `redis`, or `redis_unavailable` (answering from local state).
    pub fn mode(&self) -> &'static str {
        match (&self.redis, self.degraded()) {
            (None, _) => "local",
            (Some(_), false) => "redis",
            (Some(_), true) => "redis_unavailable",
        }
    }

    /// Whether Redis is configured but not answering.
    pub fn degraded(&self) -> bool {
        self.redis.as_ref().is_some_and(|r| !r.is_connected()) || self.redis_down_until_ms.load(Ordering::Relaxed) > self.now_ms()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn usable_redis(&self) -> Option<&RedisCoord> {
        let redis = self.redis.as_ref()?;
        (self.redis_down_until_ms.load(Ordering::Relaxed) <= self.now_ms()).then_some(redis)
    }

    fn redis_failed(&self, error: &::redis::RedisError) {
        let until = self.now_ms() + RETRY_REDIS_AFTER.as_millis() as u64;
        if self.redis_down_until_ms.swap(until, Ordering::Relaxed) <= self.now_ms() {
            tracing::warn!(%error, "Redis failed; answering from local state");
        }
        metrics::counter!("coordination_fallbacks_total").increment(1);
        metrics::gauge!("coordination_degraded").set(1.0);
    }

    /// Take `amount` from every counter, or from none if one would pass its limit.
    pub async fn reserve(&self, keys: &[String], limits: &[i64], amount: i64) -> Reserve {
        with_fallback!(self, r => r.reserve(keys, limits, amount), l => l.reserve(keys, limits, amount))
    }

    /// Create a counter with `value` unless it exists.
    pub async fn seed(&self, key: &str, value: i64, ttl: Duration) {
        with_fallback!(self, r => r.seed(key, value, ttl), l => l.seed(key, value, ttl))
    }

    /// Add `delta` (may be negative) to the counters that exist; their values after.
    pub async fn adjust(&self, keys: &[String], delta: i64) -> Vec<i64> {
        with_fallback!(self, r => r.adjust(keys, delta), l => l.adjust(keys, delta))
    }

    /// One GCRA check of `cost` units against `limit` per `period`.
    pub async fn gcra(&self, key: &str, limit: u64, period: Duration, cost: u64, force: bool) -> RateDecision {
        with_fallback!(self, r => r.gcra(key, limit, period, cost, force), l => l.gcra(key, limit, period, cost, force))
    }

    /// Count one against `limit` for the key's lifetime `ttl`.
    pub async fn count(&self, key: &str, limit: u64, ttl: Duration) -> (bool, u64) {
        with_fallback!(self, r => r.count(key, limit, ttl), l => l.count(key, limit, ttl))
    }

    /// Give back one counted unit.
    pub async fn uncount(&self, key: &str) {
        with_fallback!(self, r => r.uncount(key), l => l.uncount(key))
    }

    /// True for the first caller to set the flag within `ttl`.
    pub async fn flag_once(&self, key: &str, ttl: Duration) -> bool {
        with_fallback!(self, r => r.flag_once(key, ttl), l => l.flag_once(key, ttl))
    }

    pub async fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        with_fallback!(self, r => r.cache_get(key), l => l.cache_get(key))
    }

    pub async fn cache_put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) {
        with_fallback!(self, r => r.cache_put(key, &bytes, ttl), l => l.cache_put(key, bytes, ttl))
    }
}
