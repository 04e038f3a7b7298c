//! Coordination state in Redis, shared by every replica: each operation is
//! one Lua script, so a check and its update are atomic across replicas.
//! Time for rate limits comes from the Redis server (`TIME`), so replicas
//! with skewed clocks still share one limit.
//!
//! Must not: fall back by itself; [`super::Coord`] decides what happens
//! when Redis fails.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};
use tokio::sync::OnceCell;

use super::Reserve;
use super::gcra::RateDecision;

/// KEYS: budget counters. ARGV[1]: amount; ARGV[1+i]: limit of KEYS[i].
/// Returns {-1, missing indexes…} when a counter is absent (the caller seeds
/// it from the usage store), {0, index, spent} when one would exceed its
/// limit, else {1, spent after…}. Indexes are 1-based.
const RESERVE: &str = r"
local amount = tonumber(ARGV[1])
local missing = {-1}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 0 then table.insert(missing, i) end
end
if #missing > 1 then return missing end
for i, key in ipairs(KEYS) do
  local spent = tonumber(redis.call('GET', key))
  if spent + amount > tonumber(ARGV[i + 1]) then return {0, i, spent} end
end
local out = {1}
for i, key in ipairs(KEYS) do table.insert(out, redis.call('INCRBY', key, amount)) end
return out
";

/// KEYS: counters. ARGV[1]: delta. Adds to counters that exist; returns their values.
const ADJUST: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then table.insert(out, redis.call('INCRBY', key, ARGV[1])) else table.insert(out, 0) end
end
return out
";

/// The GCRA of `gcra.rs`, step for step. KEYS[1]: state. ARGV: limit,
/// period (µs), cost, force (0|1). Returns {allowed, remaining, reset µs, retry µs}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local force = ARGV[4] == '1'
local interval = math.max(math.floor(period / math.max(limit, 1)), 1)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - period
if now < allow_at and not force then
  return {0, math.floor(math.max(period - (tat - now), 0) / interval), tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, math.floor(math.max(period - (new_tat - now), 0) / interval), new_tat - now, 0}
";

/// KEYS[1]: counter. ARGV: limit, ttl (s). Counts one unless at the limit.
/// Returns {allowed, count}.
const COUNT: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= tonumber(ARGV[1]) then return {0, current} end
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return {1, n}
";

/// KEYS[1]: counter. Gives one back, never below zero.
const UNCOUNT: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > 0 then return redis.call('DECR', KEYS[1]) end
return 0
";

struct Scripts {
    reserve: Script,
    adjust: Script,
    gcra: Script,
    count: Script,
    uncount: Script,
}

/// A Redis connection (established in the background, re-established by the
/// connection manager) and the scripts.
#[derive(Clone)]
pub struct RedisCoord {
    connection: Arc<OnceCell<ConnectionManager>>,
    scripts: Arc<Scripts>,
}

impl RedisCoord {
    /// Start connecting; operations fail until the first connection is made.
    pub fn connect(url: &str, timeout: Duration) -> RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let connection = Arc::new(OnceCell::new());
        let cell = connection.clone();
        tokio::spawn(async move {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            loop {
                match ConnectionManager::new_with_config(client.clone(), config.clone()).await {
                    Ok(manager) => {
                        let _ = cell.set(manager);
                        tracing::info!("connected to Redis");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot reach Redis; using local limits until it answers");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        let scripts = Scripts { reserve: Script::new(RESERVE), adjust: Script::new(ADJUST), gcra: Script::new(GCRA), count: Script::new(COUNT), uncount: Script::new(UNCOUNT) };
        Ok(Self { connection, scripts: Arc::new(scripts) })
    }

    /// Whether the first connection has been made.
    pub fn is_connected(&self) -> bool {
        self.connection.initialized()
    }

    fn connection(&self) -> RedisResult<ConnectionManager> {
        self.connection.get().cloned().ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "not connected to Redis yet")))
    }

    pub async fn reserve(&self, keys: &[String], limits: &[i64], amount: i64) -> RedisResult<Reserve> {
        let mut invocation = self.scripts.reserve.prepare_invoke();
        invocation.arg(amount);
        for (key, limit) in keys.iter().zip(limits) {
            invocation.key(key).arg(*limit);
        }
        let out: Vec<i64> = invocation.invoke_async(&mut self.connection()?).await?;
        let one_based = |v: i64| (v - 1).max(0) as usize;
        Ok(match out.first() {
            Some(-1) => Reserve::NeedsSeed(out[1..].iter().map(|v| one_based(*v)).collect()),
            Some(0) => Reserve::Exceeded { index: one_based(out.get(1).copied().unwrap_or(1)), spent: out.get(2).copied().unwrap_or(0) },
            _ => Reserve::Reserved(out[1..].to_vec()),
        })
    }

    pub async fn seed(&self, key: &str, value: i64, ttl: Duration) -> RedisResult<()> {
        redis::cmd("SET").arg(key).arg(value).arg("NX").arg("EX").arg(ttl.as_secs().max(1)).exec_async(&mut self.connection()?).await
    }

    pub async fn adjust(&self, keys: &[String], delta: i64) -> RedisResult<Vec<i64>> {
        let mut invocation = self.scripts.adjust.prepare_invoke();
        invocation.arg(delta);
        for key in keys {
            invocation.key(key);
        }
        invocation.invoke_async(&mut self.connection()?).await
    }

    pub async fn gcra(&self, key: &str, limit: u64, period: Duration, cost: u64, force: bool) -> RedisResult<RateDecision> {
        let out: Vec<i64> = self.scripts.gcra.key(key).arg(limit).arg(period.as_micros() as u64).arg(cost).arg(u8::from(force)).invoke_async(&mut self.connection()?).await?;
        let at = |i: usize| out.get(i).copied().unwrap_or(0).max(0) as u64;
        Ok(RateDecision { allowed: at(0) == 1, limit, remaining: at(1), reset: Duration::from_micros(at(2)), retry_after: Duration::from_micros(at(3)) })
    }

    pub async fn count(&self, key: &str, limit: u64, ttl: Duration) -> RedisResult<(bool, u64)> {
        let out: Vec<i64> = self.scripts.count.key(key).arg(limit).arg(ttl.as_secs().max(1)).invoke_async(&mut self.connection()?).await?;
        Ok((out.first() == Some(&1), out.get(1).copied().unwrap_or(0).max(0) as u64))
    }

    pub async fn uncount(&self, key: &str) -> RedisResult<()> {
        self.scripts.uncount.key(key).invoke_async::<i64>(&mut self.connection()?).await.map(drop)
    }

    pub async fn flag_once(&self, key: &str, ttl: Duration) -> RedisResult<bool> {
        let set: Option<String> = redis::cmd("SET").arg(key).arg(1).arg("NX").arg("EX").arg(ttl.as_secs().max(1)).query_async(&mut self.connection()?).await?;
        Ok(set.is_some())
    }

    pub async fn cache_get(&self, key: &str) -> RedisResult<Option<Vec<u8>>> {
        redis::cmd("GET").arg(key).query_async(&mut self.connection()?).await
    }

    pub async fn cache_put(&self, key: &str, bytes: &[u8], ttl: Duration) -> RedisResult<()> {
        redis::cmd("SET").arg(key).arg(bytes).arg("EX").arg(ttl.as_secs().max(1)).exec_async(&mut self.connection()?).await
    }
}
