//! Joining tenants by invitation and verifying e-mail addresses: listing
//! and revoking a tenant's invitations, accepting one (as a new account, or
//! signed in as the invited one), verification links and their re-sending,
//! and a platform administrator's verification. Creating an invitation is
//! `POST /api/v1/tenants/{tenant}/users` (`routes::tenants`).
//!
//! Thin handlers: every rule lives in `agentry_core::identity`.

use agentry_core::identity::RequestMeta;
use agentry_core::{Principal, TenantAccess};
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
        .route("/api/v1/tenants/{tenant}/invitations", get(list))
        .route("/api/v1/tenants/{tenant}/invitations/{id}", delete(revoke))
        .route("/api/v1/auth/invitations/accept", post(accept_as_new_account))
        .route("/api/v1/invitations/accept", post(accept))
        .route("/api/v1/auth/verify-email", post(verify_email))
        .route("/api/v1/auth/verify-email/resend", post(resend_verification))
        .route("/api/v1/admin/users/{user_id}/verify-email", post(admin_verify_email))
}

async fn list(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "data": state.identity.invitations(&access).await? })))
}

async fn revoke(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.revoke_invitation(&access, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccountBody {
    token: String,
    password: String,
    display_name: Option<String>,
}

/// `201` with the membership and sign-in tokens for the new account.
async fn accept_as_new_account(
    State(state): State<AppState>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<NewAccountBody>,
) -> Result<impl IntoResponse, ApiError> {
    let accepted = state.identity.accept_invitation_as_new_account(&body.token, &body.password, body.display_name.as_deref(), &meta).await?;
    Ok((StatusCode::CREATED, Json(accepted)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    token: String,
}

async fn accept(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, Json(state.identity.accept_invitation(&principal, &body.token, &meta).await?)))
}

async fn verify_email(State(state): State<AppState>, Extension(meta): Extension<RequestMeta>, ApiJson(body): ApiJson<TokenBody>) -> Result<impl IntoResponse, ApiError> {
    let user_id = state.identity.verify_email(&body.token, &meta).await?;
    Ok(Json(EmailVerified { user_id, email_verified: true }))
}

/// The account whose address is now verified.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct EmailVerified {
    user_id: String,
    email_verified: bool,
}

async fn resend_verification(State(state): State<AppState>, Extension(principal): Extension<Principal>, Extension(meta): Extension<RequestMeta>) -> Result<StatusCode, ApiError> {
    state.identity.resend_verification(&principal, &meta).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn admin_verify_email(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.identity.admin_verify_email(&principal, &user_id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
