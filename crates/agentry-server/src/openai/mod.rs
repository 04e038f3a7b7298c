//! The OpenAI-compatible surface under `/v1`: chat completions (plain and
//! SSE), embeddings, model listing, files and batches. Request/response JSON follows OpenAI's
//! schema so the official SDKs work unchanged. Handlers parse, call the
//! gateway service once, and shape the answer; no routing logic lives here.

mod agent;
pub(crate) mod batch_lines;
pub(crate) mod chat;
pub(crate) mod embeddings;
mod files;
mod models;

use agentry_core::coord::RateDecision;
use agentry_core::{CallContext, Subject, TenantAccess};
use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};

use crate::middleware::RequestId;
use crate::state::AppState;

pub fn router(max_file_bytes: u64) -> Router<AppState> {
    files::router(max_file_bytes)
        .route("/v1/chat/completions", post(chat::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
}

/// The call context of a `/v1` request: who it is metered, limited and budgeted for.
pub(crate) fn call_context(request_id: RequestId, endpoint: &'static str, access: Option<&TenantAccess>) -> CallContext {
    CallContext { request_id: request_id.0, endpoint, subject: access.map(Subject::of), agent: None, settlement: Default::default() }
}

/// Add `RateLimit-*` headers to a served response when a limit applied.
pub(crate) fn with_rate_limit(mut response: Response, decision: Option<RateDecision>) -> Response {
    if let Some(decision) = decision {
        crate::error::rate_limit_headers(response.headers_mut(), &decision);
    }
    response
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
