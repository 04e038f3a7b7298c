//! `/api/v1/tenants/{tenant}/…` for personal data and retention: retention
//! settings (and running them now), a person's data export and erasure,
//! and the compliance report. Thin: the privacy service decides who may do
//! what (see its module doc); permissions are in `access.rs`.

use agentry_core::TenantAccess;
use agentry_core::identity::RequestMeta;
use agentry_core::privacy::Retention;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tenant}/retention", get(retention).put(put_retention))
        .route("/api/v1/tenants/{tenant}/retention/run", post(run_retention))
        .route("/api/v1/tenants/{tenant}/users/{user_id}/data-export", get(export))
        .route("/api/v1/tenants/{tenant}/users/{user_id}/erase", post(erase))
        .route("/api/v1/tenants/{tenant}/compliance/report", get(report))
}

async fn retention(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(state.privacy.retention(&access).await?).into_response())
}

async fn put_retention(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<Retention>,
) -> Result<Response, ApiError> {
    Ok(Json(state.privacy.put_retention(&access, body, &meta).await?).into_response())
}

async fn run_retention(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.privacy.run_retention(&access).await?)).into_response())
}

async fn export(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let export = state.privacy.export(&access, &user_id, &meta).await?;
    let disposition = format!("attachment; filename=\"{}\"", export.file_name);
    Ok(([(header::CONTENT_TYPE, "application/zip".to_owned()), (header::CONTENT_DISPOSITION, disposition)], export.bytes).into_response())
}

async fn erase(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    Ok((StatusCode::ACCEPTED, Json(state.privacy.request_erasure(&access, &user_id, &meta).await?)).into_response())
}

async fn report(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(state.privacy.compliance_report(&access).await?).into_response())
}
