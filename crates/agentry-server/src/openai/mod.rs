//! The OpenAI-compatible surface under `/v1`: chat completions (plain and
//! SSE), embeddings, model listing. Request/response JSON follows OpenAI's
//! schema so the official SDKs work unchanged. Handlers parse, call the
//! gateway service once, and shape the answer; no routing logic lives here.

mod chat;
mod embeddings;
mod models;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat::create))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{id}", get(models::retrieve))
}

/// Seconds since the epoch, for `created` fields.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
