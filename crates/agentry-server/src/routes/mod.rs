//! Platform routes outside `/v1`. One module per resource, each with `router()`.

pub mod agents;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod bulk;
pub mod costs;
pub mod docs;
pub mod events;
pub mod health;
pub mod invitations;
pub mod jobs;
pub mod knowledge;
pub mod oidc;
pub mod privacy;
pub mod schedules;
pub mod tenants;
pub mod webhooks;
