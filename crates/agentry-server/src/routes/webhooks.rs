//! Webhook endpoints (`/api/v1/webhooks`): register one (its signing
//! secret is in that answer only), list, read, change, delete, rotate its
//! secret, read its delivery log, send a delivery again, send a test event.
//! Handlers call one `Webhooks` function each; who sees which endpoint is
//! decided there.

use agentry_core::TenantAccess;
use agentry_core::webhooks::{CreateWebhook, RotateSecret, UpdateWebhook};
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
        .route("/api/v1/webhooks", get(list).post(create))
        .route("/api/v1/webhooks/{id}", get(webhook).patch(update).delete(delete))
        .route("/api/v1/webhooks/{id}/rotate-secret", post(rotate_secret))
        .route("/api/v1/webhooks/{id}/test", post(test))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route("/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", post(redeliver))
}

async fn create(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<CreateWebhook>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.webhooks.create(&access, input).await?)).into_response())
}

async fn list(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.webhooks.list(&access, &query.page()?).await?).into_response())
}

async fn webhook(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.webhooks.get(&access, &id).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UpdateWebhook>,
) -> Result<Response, ApiError> {
    Ok(Json(state.webhooks.update(&access, &id, input).await?).into_response())
}

async fn delete(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    state.webhooks.delete(&access, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rotate_secret(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RotateSecret>,
) -> Result<Response, ApiError> {
    Ok(Json(state.webhooks.rotate_secret(&access, &id, input).await?).into_response())
}

async fn test(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.webhooks.test(&access, &id).await?)).into_response())
}

async fn deliveries(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(state.webhooks.deliveries(&access, &id, &query.page()?).await?).into_response())
}

async fn redeliver(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path((id, delivery_id)): Path<(String, String)>) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.webhooks.redeliver(&access, &id, &delivery_id).await?)).into_response())
}
