//! `/api/v1/auth/*` and `/.well-known/jwks.json`: password login, token
//! refresh, logout, the caller's identity and sessions, the public keys.

use agentry_core::Principal;
use agentry_core::identity::{RequestMeta, SecondFactor};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/password", post(change_password))
        .route("/api/v1/auth/sessions", get(sessions).delete(revoke_all))
        .route("/api/v1/auth/sessions/{id}", delete(revoke_one))
        .route("/api/v1/auth/mfa/verify", post(mfa_verify))
        .route("/api/v1/auth/mfa/totp", post(mfa_enrol))
        .route("/api/v1/auth/mfa/totp/confirm", post(mfa_confirm))
        .route("/api/v1/auth/mfa/disable", post(mfa_disable))
}

/// A second factor: exactly one of `code` (TOTP) or `recovery_code`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FactorBody {
    mfa_token: Option<String>,
    code: Option<String>,
    recovery_code: Option<String>,
}

impl FactorBody {
    fn factor(&self) -> Result<SecondFactor<'_>, ApiError> {
        match (&self.code, &self.recovery_code) {
            (Some(code), None) => Ok(SecondFactor::Totp(code)),
            (None, Some(code)) => Ok(SecondFactor::RecoveryCode(code)),
            _ => Err(ApiError::bad_request("send exactly one of code or recovery_code", "code")),
        }
    }
}

async fn mfa_verify(State(state): State<AppState>, Extension(meta): Extension<RequestMeta>, ApiJson(body): ApiJson<FactorBody>) -> Result<impl IntoResponse, ApiError> {
    let token = body.mfa_token.as_deref().ok_or_else(|| ApiError::bad_request("mfa_token is required", "mfa_token"))?;
    Ok(Json(state.identity.verify_mfa(token, body.factor()?, &meta).await?))
}

async fn mfa_enrol(State(state): State<AppState>, Extension(principal): Extension<Principal>, Extension(meta): Extension<RequestMeta>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.enrol_totp(&principal, &meta).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmBody {
    code: String,
}

async fn mfa_confirm(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<impl IntoResponse, ApiError> {
    let codes = state.identity.confirm_totp(&principal, &body.code, &meta).await?;
    Ok(Json(TotpConfirmed { enabled: true, recovery_codes: codes }))
}

/// TOTP is on; the recovery codes are shown this once.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TotpConfirmed {
    enabled: bool,
    recovery_codes: Vec<String>,
}

/// A new account, to be signed in to.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Registered {
    user_id: String,
}

/// How many sessions were signed out.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SessionsRevoked {
    revoked: u64,
}

async fn mfa_disable(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<FactorBody>,
) -> Result<StatusCode, ApiError> {
    state.identity.disable_mfa(&principal, body.factor()?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
}

async fn login(State(state): State<AppState>, Extension(meta): Extension<RequestMeta>, ApiJson(body): ApiJson<LoginBody>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.login(&body.email, &body.password, &meta).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterBody {
    email: String,
    password: String,
    display_name: Option<String>,
}

async fn register(State(state): State<AppState>, Extension(meta): Extension<RequestMeta>, ApiJson(body): ApiJson<RegisterBody>) -> Result<impl IntoResponse, ApiError> {
    let user_id = state.identity.register(&body.email, &body.password, body.display_name.as_deref(), &meta).await?;
    Ok((StatusCode::CREATED, Json(Registered { user_id })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

async fn refresh(State(state): State<AppState>, Extension(meta): Extension<RequestMeta>, ApiJson(body): ApiJson<RefreshBody>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.refresh(&body.refresh_token, &meta).await?))
}

async fn logout(State(state): State<AppState>, Extension(principal): Extension<Principal>, Extension(meta): Extension<RequestMeta>) -> Result<StatusCode, ApiError> {
    let Some(session_id) = principal.session_id() else {
        return Err(ApiError::bad_request("only a signed-in session can log out", "authorization"));
    };
    state.identity.revoke_sessions(&principal, Some(session_id), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    state.identity.change_password(&principal, &body.current_password, &body.new_password, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.me(&principal).await?))
}

async fn sessions(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "data": state.identity.sessions(&principal).await? })))
}

async fn revoke_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.identity.revoke_sessions(&principal, Some(&id), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_all(State(state): State<AppState>, Extension(principal): Extension<Principal>, Extension(meta): Extension<RequestMeta>) -> Result<impl IntoResponse, ApiError> {
    let revoked = state.identity.revoke_sessions(&principal, None, &meta).await?;
    Ok(Json(SessionsRevoked { revoked }))
}

async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CACHE_CONTROL, "public, max-age=300")], Json(state.identity.tokens().jwks()))
}
