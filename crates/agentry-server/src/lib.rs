//! The HTTP server of Agentry: configuration, start-up, middleware, error
//! envelope and routes. Handlers are thin: parse, call one service in
//! `agentry-core`, answer. The `agentry` binary (`main.rs`) is the CLI.

pub mod a2a;
pub mod access;
pub mod api_doc;
pub mod auth;
pub mod backup;
pub mod client_addr;
pub mod configuration;
pub mod deprecation;
pub mod error;
pub mod eval;
pub mod extractors;
pub mod graphql;
pub mod local_models;
pub mod master_key;
pub mod mcp;
pub mod middleware;
pub mod openai;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use configuration::Settings;
pub use startup::Application;
