//! `/api/v1/auth/oidc…`: single sign-on through OpenID Connect providers.
//! `start` redirects the browser to the provider; the provider redirects it
//! back to `callback`, which answers like a password login (tokens, or an
//! MFA challenge). A signed-in user links a provider to their account with
//! `link` (the URL to visit) and finishes with `link/callback`, posting the
//! code and state the provider returned together with their access token.

use agentry_core::Principal;
use agentry_core::identity::{PrincipalKind, RequestMeta};
use agentry_types::ErrorCode;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/oidc", get(providers))
        .route("/api/v1/auth/oidc/{provider}/start", get(start))
        .route("/api/v1/auth/oidc/{provider}/callback", get(callback))
        .route("/api/v1/auth/oidc/{provider}/link", post(link_start))
        .route("/api/v1/auth/oidc/{provider}/link/callback", post(link_callback))
}

async fn providers(State(state): State<AppState>) -> impl IntoResponse {
    let providers: Vec<_> = state.identity.settings().oidc.iter().map(|p| Provider { name: p.name.clone(), start: format!("/api/v1/auth/oidc/{}/start", p.name) }).collect();
    Json(json!({ "data": providers }))
}

/// A single sign-on provider and where a sign-in with it starts.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Provider {
    name: String,
    start: String,
}

/// Where to send the browser.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Redirect {
    url: String,
}

async fn start(State(state): State<AppState>, Path(provider): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let url = state.identity.oidc_start(&provider).await?;
    Ok((StatusCode::FOUND, [(header::LOCATION, url)]))
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    Path(provider): Path<String>,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(format!("invalid callback: {}", e.body_text()), "query"))?;
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return Err(ApiError::new(ErrorCode::InvalidCredentials, format!("the identity provider refused the sign-in: {error} {detail}")));
    }
    let code = query.code.ok_or_else(|| ApiError::bad_request("code is required", "code"))?;
    let login_state = query.state.ok_or_else(|| ApiError::bad_request("state is required", "state"))?;
    Ok(Json(state.identity.oidc_callback(&provider, &code, &login_state, None, &meta).await?))
}

/// Start linking a provider to the signed-in account: the URL to send the browser to.
async fn link_start(State(state): State<AppState>, Extension(principal): Extension<Principal>, Path(provider): Path<String>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Redirect { url: state.identity.oidc_link_start(&principal, &provider).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkCallback {
    code: String,
    state: String,
}

/// Finish a link: the code and state the provider sent back, with the account's own access token.
async fn link_callback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    Path(provider): Path<String>,
    ApiJson(body): ApiJson<LinkCallback>,
) -> Result<impl IntoResponse, ApiError> {
    let (PrincipalKind::User, Some(user_id)) = (principal.kind(), principal.user_id()) else {
        return Err(ApiError::forbidden("linking an identity provider needs a signed-in user"));
    };
    Ok(Json(state.identity.oidc_callback(&provider, &body.code, &body.state, Some(user_id), &meta).await?))
}
