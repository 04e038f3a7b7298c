//! The services. Today: the gateway (model calls with their call-log
//! records). Identity, tenants, agents, knowledge, usage and jobs join here.
//!
//! Must never import axum or know about HTTP: handlers, jobs and tests call
//! the same functions.

pub mod gateway;

pub use gateway::{CallContext, Gateway};
