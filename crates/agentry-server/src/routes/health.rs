//! `/health` (alive), `/ready` (database answers, local models loaded,
//! coordination mode: `local`, `redis` or `redis_unavailable`),
//! `/metrics` (Prometheus text) and `/openapi.json` (the API's OpenAPI 3.1
//! document, built once).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;

/// Unauthenticated probes.
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics)).route("/openapi.json", get(openapi))
}

async fn openapi() -> Response {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| crate::api_doc::document().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let database = state.db.ping().await;
    let ok = database.is_ok();
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": {
            "database": match &database { Ok(()) => "ok".to_owned(), Err(e) => { tracing::warn!(error = %e, "readiness: database"); "unavailable".to_owned() } },
            "local_models": *state.local_models,
            // Redis failing is not fatal: limits, budgets and the cache run per replica meanwhile.
            "coordination": state.gateway.accounting().coord().mode(),
        },
    });
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let degraded = state.gateway.accounting().coord().degraded();
    metrics::gauge!("coordination_degraded").set(if degraded { 1.0 } else { 0.0 });
    state.session_gauge.refresh(&state.identity).await;
    crate::telemetry::gauges::database_pool(&state.db);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
