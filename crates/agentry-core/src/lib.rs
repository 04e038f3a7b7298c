//! The services: the gateway (model calls with their call-log records),
//! identity (tenants, users, sessions, API keys, roles), the audit log and
//! secrets at rest (sealed under a key derived from the master key),
//! usage, knowledge and agents, and the one [`Error`] they share.
//!
//! Must never import axum or know about HTTP: handlers, jobs and tests call
//! the same functions.

pub mod agents;
pub mod audit;
pub mod batches;
pub mod bulk;
pub mod coord;
pub mod error;
pub mod events;
pub mod gateway;
pub mod identity;
pub mod jobs;
pub mod knowledge;
pub mod mail;
pub mod outbound;
pub mod page;
pub mod privacy;
pub mod schedules;
pub mod secrets;
pub mod usage;
pub mod webhooks;

pub use audit::Audit;
pub use error::Error;
pub use gateway::{CallContext, Gateway};
pub use identity::{Identity, Principal, TenantAccess};
pub use usage::{Accounting, Subject};

/// Metric handles per label set, for the HTTP layer's own metrics (the
/// model layer's helper: callers above core need not depend on that layer).
pub use agentry_llm::series::Series as MetricSeries;
