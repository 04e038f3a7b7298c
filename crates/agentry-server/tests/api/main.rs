//! Integration tests: the real server on port 0 with a fresh data dir, against
//! an in-test upstream that speaks OpenAI's and Anthropic's wire formats.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod audit_integrity;
mod authz_matrix;
mod batches;
mod batches_restart;
mod cli;
mod conformance;
mod connectors;
mod docs_page;
mod errors_and_auth;
mod events;
mod findings;
mod gateway;
mod graphql;
mod helpers;
mod identity;
mod ingest_budgets;
mod invitations;
mod jobs;
mod jobs_restart;
mod knowledge;
mod knowledge_restart;
mod knowledge_versions;
mod local_models;
mod mfa;
mod mock_upstream;
mod object_authz;
mod oidc;
mod oidc_provider;
mod openapi;
mod own_clients;
mod pagination;
mod parse_isolation;
mod protocols;
mod request_rules;
mod resilience;
mod schedules;
mod sdk_clients;
mod secrets_at_rest;
mod security;
mod server;
mod usage;
mod webhooks;
