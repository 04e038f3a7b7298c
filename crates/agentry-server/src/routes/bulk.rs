//! Native batches (`/api/v1/batches`): many agent runs or document uploads
//! submitted as one, their progress, their items, and cancelling them.
//! Handlers call one `Bulk` function each; who sees which batch, and what
//! each type needs, is decided there.

use agentry_core::TenantAccess;
use agentry_core::bulk::NewBulk;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use crate::error::ApiError;
use crate::extractors::{ApiJson, PageQuery};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/batches", get(list).post(create))
        .route("/api/v1/batches/{id}", get(batch))
        .route("/api/v1/batches/{id}/items", get(items))
        .route("/api/v1/batches/{id}/cancel", post(cancel))
}

async fn create(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<NewBulk>) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.bulk.create(&access, input).await?)).into_response())
}

async fn list(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.bulk.list(&access, &query.page()?).await?).into_response())
}

async fn batch(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.bulk.get(&access, &id).await?).into_response())
}

async fn items(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.bulk.items(&access, &id, &query.page()?).await?).into_response())
}

async fn cancel(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.bulk.cancel(&access, &id).await?).into_response())
}
