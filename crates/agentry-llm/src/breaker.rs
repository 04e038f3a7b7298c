//! Per-upstream circuit breakers: closed → open after N failures inside a
//! sliding window → half-open after a cool-down, where one probe decides
//! between closed and open again.
//!
//! Hand-written because the state machine is ~100 lines and the crates that
//! offer one (failsafe, recloser) either lack half-open single-probe semantics
//! or a sliding failure window. Owns only breaker state; it never calls an upstream.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Tuning of every breaker.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Failures within `window` that open the circuit.
    pub failure_threshold: u32,
    pub window: Duration,
    /// How long the circuit stays open before a probe is let through.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, window: Duration::from_secs(30), open_for: Duration::from_secs(15) }
    }
}

/// The externally visible state, also exported as the `circuit_breaker_state` gauge
/// (0 closed, 1 open, 2 half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
enum Inner {
    Closed { failures: VecDeque<Instant> },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool },
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    upstream: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to call the upstream. Report the outcome with [`Breaker::record`];
/// a permit dropped without a report (cancelled request) frees the half-open probe slot.
#[must_use]
pub struct Permit {
    breaker: Arc<Breaker>,
    reported: bool,
}

impl Permit {
    /// Report the call's outcome: `true` when the upstream behaved.
    pub fn record(mut self, healthy: bool) {
        self.reported = true;
        self.breaker.record(healthy);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.reported {
            let mut inner = self.breaker.inner.lock();
            if let Inner::HalfOpen { probe_in_flight } = &mut *inner {
                *probe_in_flight = false;
            }
        }
    }
}

impl Breaker {
    fn new(upstream: String, config: BreakerConfig) -> Self {
        Self { upstream, config, inner: Mutex::new(Inner::Closed { failures: VecDeque::new() }) }
    }

    /// The current state, moving open → half-open when the cool-down has passed.
    pub fn state(&self) -> BreakerState {
        let inner = self.inner.lock();
        match &*inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() >= *until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Ask to call the upstream. `None` while open, or while half-open with a probe already out.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut inner = self.inner.lock();
        let allowed = match &mut *inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } => {
                if Instant::now() >= *until {
                    *inner = Inner::HalfOpen { probe_in_flight: true };
                    self.publish(BreakerState::HalfOpen);
                    true
                } else {
                    false
                }
            }
            Inner::HalfOpen { probe_in_flight } => {
                if *probe_in_flight {
                    false
                } else {
                    *probe_in_flight = true;
                    true
                }
            }
        };
        allowed.then(|| Permit { breaker: Arc::clone(self), reported: false })
    }

    fn record(&self, healthy: bool) {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let next = match &mut *inner {
            Inner::Closed { failures } => {
                if healthy {
                    failures.clear();
                    None
                } else {
                    failures.push_back(now);
                    while failures.front().is_some_and(|t| now.duration_since(*t) > self.config.window) {
                        failures.pop_front();
                    }
                    (failures.len() as u32 >= self.config.failure_threshold).then(|| Inner::Open { until: now + self.config.open_for })
                }
            }
            Inner::HalfOpen { .. } => Some(if healthy { Inner::Closed { failures: VecDeque::new() } } else { Inner::Open { until: now + self.config.open_for } }),
            // A call that started before the circuit opened finished late: the state already says enough.
            Inner::Open { .. } => None,
        };
        if let Some(next) = next {
            let state = match next {
                Inner::Closed { .. } => BreakerState::Closed,
                Inner::Open { .. } => BreakerState::Open,
                Inner::HalfOpen { .. } => BreakerState::HalfOpen,
            };
            if state == BreakerState::Open {
                tracing::warn!(upstream = %self.upstream, "circuit opened");
            } else {
                tracing::info!(upstream = %self.upstream, ?state, "circuit state changed");
            }
            *inner = next;
            self.publish(state);
        }
    }

    fn publish(&self, state: BreakerState) {
        metrics::gauge!("circuit_breaker_state", "upstream" => self.upstream.clone()).set(state.as_gauge());
    }
}

/// All breakers, one per upstream name, created on first use.
#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    by_upstream: Mutex<HashMap<String, Arc<Breaker>>>,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Self {
        Self { config, by_upstream: Mutex::new(HashMap::new()) }
    }

    /// The breaker of `upstream`, created closed if it did not exist.
    pub fn get(&self, upstream: &str) -> Arc<Breaker> {
        let mut map = self.by_upstream.lock();
        if let Some(breaker) = map.get(upstream) {
            return Arc::clone(breaker);
        }
        let breaker = Arc::new(Breaker::new(upstream.to_owned(), self.config));
        breaker.publish(BreakerState::Closed);
        map.insert(upstream.to_owned(), Arc::clone(&breaker));
        breaker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(open_for_ms: u64) -> BreakerConfig {
        BreakerConfig { failure_threshold: 3, window: Duration::from_secs(10), open_for: Duration::from_millis(open_for_ms) }
    }

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let breakers = Breakers::new(config(50));
        let b = breakers.get("up");
        for _ in 0..3 {
            b.try_acquire().unwrap().record(false);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.try_acquire().is_none());
        std::thread::sleep(Duration::from_millis(60));
        let probe = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none(), "only one probe while half-open");
        probe.record(true);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn failed_probe_reopens_and_dropped_probe_frees_slot() {
        let breakers = Breakers::new(config(20));
        let b = breakers.get("up");
        for _ in 0..3 {
            b.try_acquire().unwrap().record(false);
        }
        std::thread::sleep(Duration::from_millis(30));
        drop(b.try_acquire().unwrap());
        b.try_acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[test]
    fn success_resets_failure_count() {
        let breakers = Breakers::new(config(20));
        let b = breakers.get("up");
        b.try_acquire().unwrap().record(false);
        b.try_acquire().unwrap().record(false);
        b.try_acquire().unwrap().record(true);
        b.try_acquire().unwrap().record(false);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
