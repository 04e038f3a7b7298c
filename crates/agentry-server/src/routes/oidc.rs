//! `/api/v1/auth/oidc…`: single sign-on through OpenID Connect providers.
//! `start` redirects the browser to the provider; the provider redirects it
//! back to `callback`, which answers like a password login (tokens, or an
//! MFA challenge).

use agentry_core::identity::RequestMeta;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use agentry_types::ErrorCode;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/oidc", get(providers))
        .route("/api/v1/auth/oidc/{provider}/start", get(start))
        .route("/api/v1/auth/oidc/{provider}/callback", get(callback))
}

async fn providers(State(state): State<AppState>) -> impl IntoResponse {
    let names: Vec<_> = state.identity.settings().oidc.iter().map(|p| json!({ "name": p.name, "start": format!("/api/v1/auth/oidc/{}/start", p.name) })).collect();
    Json(json!({ "data": names }))
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
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials, format!("the identity provider refused the sign-in: {error} {detail}")));
    }
    let code = query.code.ok_or_else(|| ApiError::bad_request("code is required", "code"))?;
    let login_state = query.state.ok_or_else(|| ApiError::bad_request("state is required", "state"))?;
    Ok(Json(state.identity.oidc_callback(&provider, &code, &login_state, &meta).await?))
}
