//! The generic cell rate algorithm (GCRA), the arithmetic shared by the
//! in-process limiter and the Redis script (`redis.rs` runs the same steps in
//! Lua), so both modes give the same answers and the same headers.
//!
//! A limit of `limit` units per `period` emits one unit every
//! `period / limit`; the state is one number, the theoretical arrival time
//! (TAT). A request costing `cost` units is allowed when the TAT it would
//! leave is at most one period ahead of now. Written by hand: the crates that
//! implement GCRA (governor) keep their own clock and state and could not
//! share this state with Redis.

use std::time::Duration;

/// The answer for one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u64,
    /// Units still available now.
    pub remaining: u64,
    /// Until the limit is fully available again.
    pub reset: Duration,
    /// Until this request would be allowed (zero when allowed).
    pub retry_after: Duration,
}

/// Apply one request to the state `tat_us` (absent = idle) at `now_us`.
/// Returns the new state (unchanged when refused) and the decision. With
/// `force`, the cost is charged even past the limit (settling tokens the
/// answer used after the fact).
pub fn apply(tat_us: Option<u64>, now_us: u64, limit: u64, period: Duration, cost: u64, force: bool) -> (u64, RateDecision) {
    let period_us = period.as_micros() as u64;
    let interval = (period_us / limit.max(1)).max(1);
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = tat.saturating_add(cost.saturating_mul(interval));
    let allow_at = new_tat.saturating_sub(period_us);
    let remaining = |tat: u64| period_us.saturating_sub(tat - now_us) / interval;
    if now_us < allow_at && !force {
        let decision =
            RateDecision { allowed: false, limit, remaining: remaining(tat), reset: Duration::from_micros(tat - now_us), retry_after: Duration::from_micros(allow_at - now_us) };
        return (tat, decision);
    }
    let decision = RateDecision { allowed: true, limit, remaining: remaining(new_tat), reset: Duration::from_micros(new_tat - now_us), retry_after: Duration::ZERO };
    (new_tat, decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn allows_a_burst_of_the_limit_then_refuses() {
        let mut tat = None;
        for i in 0..5 {
            let (state, d) = apply(tat, 1_000_000, 5, MINUTE, 1, false);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 4 - i);
            tat = Some(state);
        }
        let (_, d) = apply(tat, 1_000_000, 5, MINUTE, 1, false);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_secs(12));
        // One interval later, one more unit is free.
        let (_, d) = apply(tat, 1_000_000 + 12_000_000, 5, MINUTE, 1, false);
        assert!(d.allowed);
    }

    #[test]
    fn forced_cost_goes_into_debt() {
        let (tat, d) = apply(None, 0, 10, MINUTE, 30, true);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (_, d) = apply(Some(tat), 0, 10, MINUTE, 1, false);
        assert!(!d.allowed);
    }
}
