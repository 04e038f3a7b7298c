//! In-process coordination state for one replica (the embedded default, and
//! the fallback while Redis is unreachable): counters, GCRA states,
//! concurrency slots and a byte cache, each behind one short mutex.
//! Entries carry an expiry and are swept as the map grows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::Reserve;
use super::gcra::{self, RateDecision};

struct Entry {
    value: i64,
    expires: Instant,
}

/// Values with expiry; expired entries read as absent.
#[derive(Default)]
struct Values {
    map: HashMap<String, Entry>,
    inserts: u64,
}

impl Values {
    fn get(&self, key: &str, now: Instant) -> Option<i64> {
        self.map.get(key).filter(|e| e.expires > now).map(|e| e.value)
    }

    fn set(&mut self, key: &str, value: i64, ttl: Duration, now: Instant) {
        self.inserts += 1;
        if self.inserts.is_multiple_of(4096) {
            self.map.retain(|_, e| e.expires > now);
        }
        self.map.insert(key.to_owned(), Entry { value, expires: now + ttl });
    }

    fn add(&mut self, key: &str, delta: i64, now: Instant) {
        if let Some(e) = self.map.get_mut(key).filter(|e| e.expires > now) {
            e.value += delta;
        }
    }
}

pub struct LocalCoord {
    values: Mutex<Values>,
    cache: moka::sync::Cache<String, (Vec<u8>, Instant)>,
    started: Instant,
}

impl Default for LocalCoord {
    fn default() -> Self {
        Self { values: Mutex::default(), cache: moka::sync::Cache::new(100_000), started: Instant::now() }
    }
}

impl LocalCoord {
    pub fn reserve(&self, keys: &[String], limits: &[i64], amount: i64) -> Reserve {
        let now = Instant::now();
        let mut values = self.values.lock();
        let missing: Vec<usize> = keys.iter().enumerate().filter(|(_, k)| values.get(k, now).is_none()).map(|(i, _)| i).collect();
        if !missing.is_empty() {
            return Reserve::NeedsSeed(missing);
        }
        let spent: Vec<i64> = keys.iter().map(|k| values.get(k, now).unwrap_or(0)).collect();
        if let Some(index) = spent.iter().zip(limits).position(|(s, l)| s + amount > *l) {
            return Reserve::Exceeded { index, spent: spent[index] };
        }
        for key in keys {
            values.add(key, amount, now);
        }
        Reserve::Reserved(spent.iter().map(|s| s + amount).collect())
    }

    pub fn seed(&self, key: &str, value: i64, ttl: Duration) {
        let now = Instant::now();
        let mut values = self.values.lock();
        if values.get(key, now).is_none() {
            values.set(key, value, ttl, now);
        }
    }

    pub fn adjust(&self, keys: &[String], delta: i64) -> Vec<i64> {
        let now = Instant::now();
        let mut values = self.values.lock();
        keys.iter()
            .map(|k| {
                values.add(k, delta, now);
                values.get(k, now).unwrap_or(0)
            })
            .collect()
    }

    pub fn gcra(&self, key: &str, limit: u64, period: Duration, cost: u64, force: bool) -> RateDecision {
        let now = Instant::now();
        let now_us = now.duration_since(self.started).as_micros() as u64;
        let mut values = self.values.lock();
        let tat = values.get(key, now).map(|v| v as u64);
        let (new_tat, decision) = gcra::apply(tat, now_us, limit, period, cost, force);
        if decision.allowed {
            values.set(key, new_tat as i64, Duration::from_micros(new_tat - now_us) + Duration::from_secs(1), now);
        }
        decision
    }

    /// Count one more against `limit` within the key's lifetime; refused (and
    /// not counted) past the limit. Returns whether allowed and the count.
    pub fn count(&self, key: &str, limit: u64, ttl: Duration) -> (bool, u64) {
        let now = Instant::now();
        let mut values = self.values.lock();
        let current = values.get(key, now).unwrap_or(0) as u64;
        if current >= limit {
            return (false, current);
        }
        if current == 0 {
            values.set(key, 1, ttl, now);
        } else {
            values.add(key, 1, now);
        }
        (true, current + 1)
    }

    /// Give back one unit taken by [`Self::count`] (a concurrency slot).
    pub fn uncount(&self, key: &str) {
        let now = Instant::now();
        let mut values = self.values.lock();
        if values.get(key, now).is_some_and(|v| v > 0) {
            values.add(key, -1, now);
        }
    }

    /// Set a flag; true only for the caller that set it first.
    pub fn flag_once(&self, key: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut values = self.values.lock();
        if values.get(key, now).is_some() {
            return false;
        }
        values.set(key, 1, ttl, now);
        true
    }

    pub fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        self.cache.get(key).filter(|(_, expires)| *expires > Instant::now()).map(|(bytes, _)| bytes)
    }

    pub fn cache_put(&self, key: &str, bytes: Vec<u8>, ttl: Duration) {
        self.cache.insert(key.to_owned(), (bytes, Instant::now() + ttl));
    }
}
