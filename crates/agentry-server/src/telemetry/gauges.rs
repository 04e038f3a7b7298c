//! Gauges read from the database rather than counted on the request path:
//! `active_sessions` (refreshed when `/metrics` is scraped, at most every
//! 15 s per process) and the audit chains' health (`audit_chains_broken`,
//! `audit_chain_verified_timestamp_seconds`, from a verification of every
//! chain every `audit.verify_interval_secs`), and the database pool
//! (`database_connections`, `database_max_connections`, read on each scrape).
//!
//! Owns when these are measured and how tenants are bucketed; the queries
//! belong to core (identity, audit).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use std::sync::{Mutex, PoisonError};
use tokio_util::sync::CancellationToken;

use agentry_core::audit::Audit;
use agentry_core::identity::Identity;

/// Tenants named in `active_sessions`; the rest are summed under [`OTHERS`].
const NAMED_TENANTS: usize = 20;
/// The label of the tenants not named (no tenant slug has parentheses).
const OTHERS: &str = "(others)";
const SESSIONS_EVERY: Duration = Duration::from_secs(15);

/// When `active_sessions` was last refreshed, and the tenant labels it set.
#[derive(Default)]
pub struct SessionGauge {
    state: Mutex<(Option<Instant>, BTreeSet<String>)>,
}

impl SessionGauge {
    /// Refresh `active_sessions` unless this process did within 15 s.
    pub async fn refresh(&self, identity: &Identity) {
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.0.is_some_and(|at| at.elapsed() < SESSIONS_EVERY) {
                return;
            }
            state.0 = Some(Instant::now());
        }
        let counts = match identity.active_sessions_by_tenant().await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, "active_sessions: could not count sessions");
                return;
            }
        };
        let mut values: Vec<(String, f64)> = counts.iter().take(NAMED_TENANTS).map(|(slug, n)| (slug.clone(), *n as f64)).collect();
        let other: i64 = counts.iter().skip(NAMED_TENANTS).map(|(_, n)| n).sum();
        values.push((OTHERS.to_owned(), other as f64));
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in state.1.iter().filter(|label| !values.iter().any(|(slug, _)| slug == *label)) {
            metrics::gauge!("active_sessions", "tenant" => gone.clone()).set(0.0);
        }
        state.1 = values.iter().map(|(slug, _)| slug.clone()).collect();
        for (slug, value) in values {
            metrics::gauge!("active_sessions", "tenant" => slug).set(value);
        }
    }
}

/// Set the database pool gauges from the pool as it stands.
pub fn database_pool(db: &agentry_db::Db) {
    let (open, idle, max) = db.pool_state();
    metrics::gauge!("database_connections", "state" => "idle").set(idle as f64);
    metrics::gauge!("database_connections", "state" => "in_use").set(f64::from(open).max(idle as f64) - idle as f64);
    metrics::gauge!("database_max_connections").set(f64::from(max));
}

/// Verify every audit chain now and then every `interval` (zero: never) until `shutdown`.
pub fn spawn_audit_verifier(audit: Audit, interval: Duration, shutdown: CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        loop {
            match audit.broken_chains().await {
                Ok(broken) => {
                    if !broken.is_empty() {
                        tracing::error!(chains = %broken.join(", "), "audit chain verification failed");
                    }
                    metrics::gauge!("audit_chains_broken").set(broken.len() as f64);
                    metrics::gauge!("audit_chain_verified_timestamp_seconds").set(agentry_core::identity::now_ms() as f64 / 1000.0);
                }
                Err(error) => tracing::warn!(%error, "audit chain verification could not run"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }))
}
