//! Shared application state handed to every handler. Holds handles only
//! (all cheap to clone); owns no logic.

use std::sync::Arc;

use agentry_core::usage::billing::PaymentProvider;
use agentry_core::agents::Agents;
use agentry_core::knowledge::Knowledge;
use agentry_core::{Gateway, Identity};
use agentry_db::Db;
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

#[derive(Clone)]
pub struct AppState {
    pub gateway: Gateway,
    pub knowledge: Knowledge,
    pub agents: Agents,
    pub identity: Identity,
    pub db: Db,
    pub master_key: Arc<SecretString>,
    pub metrics: PrometheusHandle,
    /// Charges invoices (the test provider: no external calls).
    pub payments: Arc<dyn PaymentProvider>,
    /// Requests per minute per IP on unauthenticated routes (0 = off).
    pub public_rate_per_ip: u64,
    /// Names of the local models that loaded, for `/ready`.
    pub local_models: Arc<Vec<String>>,
}
