//! `/api/v1/tenants/{tenant}/api-keys…`: create (the secret is in the answer
//! once), list, revoke, rotate with a grace period.

use agentry_core::TenantAccess;
use agentry_core::identity::{NewApiKey, RequestMeta};
use agentry_types::PermissionSet;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use crate::error::ApiError;
use crate::extractors::{ApiJson, PageQuery};
use crate::state::AppState;

/// Default grace period of a rotation: the old key keeps working this long.
const DEFAULT_GRACE_SECS: u64 = 24 * 3600;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tenant}/api-keys", get(list).post(create))
        .route("/api/v1/tenants/{tenant}/api-keys/{id}", delete(revoke))
        .route("/api/v1/tenants/{tenant}/api-keys/{id}/rotate", post(rotate))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    scopes: Option<PermissionSet>,
    /// Lifetime in seconds (up to ten years).
    #[schema(minimum = 1, maximum = 315360000)]
    expires_in: Option<u64>,
    /// Labels of your own, kept with the key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: serde_json::Value,
}

async fn create(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<impl IntoResponse, ApiError> {
    let new = NewApiKey { name: body.name, scopes: body.scopes, expires_in_secs: body.expires_in, metadata: body.metadata };
    Ok((StatusCode::CREATED, Json(state.identity.create_api_key(&access, new, &meta).await?)))
}

async fn list(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.api_keys(&access, &query.page()?).await?))
}

async fn revoke(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.revoke_api_key(&access, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateKey {
    /// Seconds the old key keeps working.
    grace_period: Option<u64>,
}

async fn rotate(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id)): Path<(String, String)>,
    body: bytes::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: no body means the default grace period.
    let options: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}"), "grace_period"))?
    };
    let grace = options.grace_period.unwrap_or(DEFAULT_GRACE_SECS);
    Ok((StatusCode::CREATED, Json(state.identity.rotate_api_key(&access, &id, grace, &meta).await?)))
}
