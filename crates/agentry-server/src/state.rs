//! Shared application state handed to every handler. Holds handles only;
//! owns no logic. Axum clones the state for every request, so the handles
//! sit behind one `Arc`: a clone is one reference count, not one per handle.

use std::sync::Arc;

use agentry_core::agents::Agents;
use agentry_core::batches::Batches;
use agentry_core::bulk::Bulk;
use agentry_core::events::Events;
use agentry_core::jobs::Jobs;
use agentry_core::knowledge::Knowledge;
use agentry_core::schedules::Schedules;
use agentry_core::usage::billing::PaymentProvider;
use agentry_core::webhooks::Webhooks;
use agentry_core::{Gateway, Identity};
use agentry_db::Db;
use metrics_exporter_prometheus::PrometheusHandle;

#[derive(Clone)]
pub struct AppState(Arc<Handles>);

impl AppState {
    pub fn new(handles: Handles) -> Self {
        Self(Arc::new(handles))
    }
}

impl std::ops::Deref for AppState {
    type Target = Handles;

    fn deref(&self) -> &Handles {
        &self.0
    }
}

/// What every handler may reach.
pub struct Handles {
    pub gateway: Gateway,
    pub knowledge: Knowledge,
    pub agents: Agents,
    pub jobs: Jobs,
    pub batches: Batches,
    /// Native batches (`/api/v1/batches`).
    pub bulk: Bulk,
    pub events: Events,
    pub webhooks: Webhooks,
    pub schedules: Schedules,
    /// Retention, data exports, erasure and the compliance report.
    pub privacy: agentry_core::privacy::Privacy,
    pub identity: Identity,
    pub db: Db,
    pub metrics: PrometheusHandle,
    /// Charges invoices: `None` unless the embedding program supplies one: paying is then refused.
    pub payments: Option<Arc<dyn PaymentProvider>>,
    /// Whose forwarded headers are believed (client address, agent card origin).
    pub trusted_proxies: crate::client_addr::TrustedProxies,
    /// The `/metrics` scrape credential.
    pub metrics_token: crate::telemetry::ScrapeToken,
    pub session_gauge: crate::telemetry::gauges::SessionGauge,
    /// Requests per minute per IP on unauthenticated routes (0 = off).
    pub public_rate_per_ip: u64,
    /// Names of the local models that loaded, for `/ready`.
    pub local_models: Arc<Vec<String>>,
}
