//! The job queue as the API shows it: list the jobs the caller may see
//! (filter by kind and status), read one, cancel one (`DELETE`), and queue
//! an ended one again (`POST …/retry`). Handlers call one `Jobs` function
//! each; who sees what is decided there.

use agentry_core::TenantAccess;
use agentry_core::jobs::JobQuery;
use agentry_types::{JobKind, JobStatus};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extractors::PageQuery;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs", get(list)).route("/api/v1/jobs/{id}", get(job).delete(cancel)).route("/api/v1/jobs/{id}/retry", post(retry))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    kind: Option<JobKind>,
    status: Option<JobStatus>,
    limit: Option<i64>,
    after: Option<String>,
}

async fn list(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<ListQuery>) -> Result<Response, ApiError> {
    let page = PageQuery::new(query.limit, query.after).page()?;
    Ok(Json(state.jobs.list(&access, JobQuery { kind: query.kind, status: query.status }, &page).await?).into_response())
}

async fn job(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.get(&access, &id).await?).into_response())
}

async fn cancel(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.cancel(&access, &id).await?).into_response())
}

async fn retry(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.jobs.retry(&access, &id).await?).into_response())
}
