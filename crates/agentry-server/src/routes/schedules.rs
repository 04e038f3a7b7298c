//! Schedules (`/api/v1/schedules`): create, list, read, change, delete, the
//! history of a schedule's fires, and a fire by hand. Handlers call one
//! `Schedules` function each; who sees which schedule is decided there.

use agentry_core::TenantAccess;
use agentry_core::schedules::{CreateSchedule, UpdateSchedule};
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
        .route("/api/v1/schedules", get(list).post(create))
        .route("/api/v1/schedules/{id}", get(schedule).patch(update).delete(delete))
        .route("/api/v1/schedules/{id}/runs", get(runs))
        .route("/api/v1/schedules/{id}/trigger", post(trigger))
}

async fn create(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<CreateSchedule>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.schedules.create(&access, input).await?)).into_response())
}

async fn list(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.schedules.list(&access, &query.page()?).await?).into_response())
}

async fn schedule(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.schedules.get(&access, &id).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UpdateSchedule>,
) -> Result<Response, ApiError> {
    Ok(Json(state.schedules.update(&access, &id, input).await?).into_response())
}

async fn delete(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    state.schedules.delete(&access, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn runs(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.schedules.runs(&access, &id, &query.page()?).await?).into_response())
}

async fn trigger(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.schedules.trigger(&access, &id).await?)).into_response())
}
