//! Rate-limit tiers in force: every tenant, user or key with an assigned
//! tier is limited on its own counters, in each dimension the tier sets —
//! requests and tokens per minute (GCRA), requests per UTC day, concurrent
//! requests. A call passes only if every applicable limit allows it. Token
//! limits charge the estimated prompt up front and the generated tokens at
//! settlement (into debt if need be, so a long answer slows the next calls).
//!
//! Must not: pick what a route is (the server limits model-call routes and
//! unauthenticated routes by IP).

use std::collections::HashMap;
use std::time::Duration;

use agentry_db::billing::TierAssignmentRow;
use chrono::Days;

use super::Subject;
use super::budgets::{Scope, today, until};
use super::policy::Tier;
use crate::coord::{Coord, RateDecision};

const MINUTE: Duration = Duration::from_secs(60);
/// Longest a concurrency slot can leak when a replica dies mid-call.
const SLOT_TTL: Duration = Duration::from_secs(600);

/// Limits taken by an admitted call, to settle when it ends.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// The most restrictive decision, for `RateLimit-*` headers.
    pub status: Option<RateDecision>,
    slots: Vec<String>,
    token_limits: Vec<(String, u64)>,
}

impl Admitted {
    /// Whether settling has anything to give back or charge.
    pub fn holds_anything(&self) -> bool {
        !self.slots.is_empty() || !self.token_limits.is_empty()
    }
}

/// A refused call: which tier and dimension, and when to retry.
#[derive(Debug, Clone)]
pub struct Refused {
    pub scope: Scope,
    pub tier: String,
    pub dimension: &'static str,
    pub decision: RateDecision,
}

fn tighter(current: Option<RateDecision>, next: RateDecision) -> Option<RateDecision> {
    let ratio = |d: &RateDecision| d.remaining as f64 / d.limit.max(1) as f64;
    match current {
        Some(c) if ratio(&c) <= ratio(&next) => Some(c),
        _ => Some(next),
    }
}

/// Check every limit that applies to the caller.
pub async fn check(coord: &Coord, tiers: &HashMap<String, Tier>, assignments: &[TierAssignmentRow], subject: &Subject, prompt_tokens: u64) -> Result<Admitted, Refused> {
    let mut admitted = Admitted::default();
    for assignment in assignments {
        let Some(scope) = Scope::parse(&assignment.scope) else { continue };
        if scope.id_of(subject) != Some(assignment.scope_id.as_str()) {
            continue;
        }
        let Some(tier) = tiers.get(&assignment.tier) else {
            tracing::warn!(tier = %assignment.tier, "assigned rate-limit tier does not exist; not limiting");
            continue;
        };
        // The tier is part of the key: moving to another tier starts from fresh counters.
        let base = format!("agentry:rl:{}:{}:{}:{}", subject.tenant_id, scope.as_str(), assignment.scope_id, tier.name);
        let refuse = |dimension, decision| Refused { scope, tier: tier.name.clone(), dimension, decision };
        let mut checks: Vec<(&'static str, RateDecision)> = Vec::with_capacity(4);
        if let Some(rpm) = tier.requests_per_minute {
            checks.push(("requests_per_minute", coord.gcra(&format!("{base}:rpm"), rpm, MINUTE, 1, false).await));
        }
        if let Some(tpm) = tier.tokens_per_minute {
            let key = format!("{base}:tpm");
            checks.push(("tokens_per_minute", coord.gcra(&key, tpm, MINUTE, prompt_tokens, false).await));
            admitted.token_limits.push((key, tpm));
        }
        if let Some(daily) = tier.requests_per_day {
            let today = today();
            let reset = until(today + Days::new(1));
            let (allowed, count) = coord.count(&format!("{base}:day:{today}"), daily, reset + MINUTE).await;
            let retry_after = if allowed { Duration::ZERO } else { reset };
            checks.push(("requests_per_day", RateDecision { allowed, limit: daily, remaining: daily.saturating_sub(count), reset, retry_after }));
        }
        for (dimension, decision) in checks {
            if !decision.allowed {
                release(coord, &admitted.slots).await;
                return Err(refuse(dimension, decision));
            }
            admitted.status = tighter(admitted.status, decision);
        }
        if let Some(concurrent) = tier.concurrent {
            let key = format!("{base}:concurrent");
            let (allowed, count) = coord.count(&key, concurrent, SLOT_TTL).await;
            let decision = RateDecision {
                allowed,
                limit: concurrent,
                remaining: concurrent.saturating_sub(count),
                reset: Duration::ZERO,
                retry_after: if allowed { Duration::ZERO } else { Duration::from_secs(1) },
            };
            if !allowed {
                release(coord, &admitted.slots).await;
                return Err(refuse("concurrent", decision));
            }
            admitted.slots.push(key);
        }
    }
    Ok(admitted)
}

async fn release(coord: &Coord, slots: &[String]) {
    for slot in slots {
        coord.uncount(slot).await;
    }
}

/// End of an admitted call: free its concurrency slots, charge generated tokens.
pub async fn settle(coord: &Coord, admitted: &Admitted, output_tokens: u64) {
    release(coord, &admitted.slots).await;
    if output_tokens > 0 {
        for (key, limit) in &admitted.token_limits {
            coord.gcra(key, *limit, MINUTE, output_tokens, true).await;
        }
    }
}
