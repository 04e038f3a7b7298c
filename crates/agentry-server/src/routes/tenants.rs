//! `/api/v1/tenants…`: tenants, their members, roles and groups, and
//! platform administration (signing-key rotation).

use agentry_core::identity::{NewInvitation, RequestMeta};
use agentry_core::{Principal, TenantAccess};
use agentry_types::PermissionSet;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, patch, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extractors::{ApiJson, PageQuery};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants", get(list).post(create))
        .route("/api/v1/tenants/{tenant}", get(show).patch(update))
        .route("/api/v1/tenants/{tenant}/users", get(members).post(add_member))
        .route("/api/v1/tenants/{tenant}/users/{user_id}", patch(set_role).delete(remove_member))
        .route("/api/v1/tenants/{tenant}/roles", get(roles))
        .route("/api/v1/tenants/{tenant}/roles/{name}", put(put_role).delete(delete_role))
        .route("/api/v1/tenants/{tenant}/groups", get(groups).post(create_group))
        .route("/api/v1/tenants/{tenant}/groups/{group_id}", get(group).patch(update_group).delete(delete_group))
        .route("/api/v1/tenants/{tenant}/groups/{group_id}/members/{user_id}", put(add_group_member).delete(remove_group_member))
        .route("/api/v1/admin/signing-keys/rotate", post(rotate_signing_key))
        .route("/api/v1/admin/users/{user_id}/disable", post(disable_user))
        .route("/api/v1/admin/users/{user_id}/enable", post(enable_user))
}

async fn list(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "data": state.identity.visible_tenants(&principal).await? })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    /// 2-63 lowercase letters, digits and dashes, not starting with a dash.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{1,62}$")]
    slug: String,
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: String,
    /// User id of the tenant's first admin (default: the caller).
    owner: Option<String>,
}

async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = state.identity.create_tenant(&principal, &body.slug, &body.name, body.owner.as_deref(), &meta).await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

async fn show(Extension(access): Extension<TenantAccess>) -> impl IntoResponse {
    Json(TenantAsSeen {
        id: access.tenant_id().to_owned(),
        slug: access.tenant_slug().to_owned(),
        mfa_required: access.mfa_required(),
        role: access.role().map(str::to_owned),
        permissions: access.permissions(),
    })
}

/// The tenant as the caller acts in it: its role and permissions there.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct TenantAsSeen {
    id: String,
    slug: String,
    mfa_required: bool,
    /// `None` for the master key and for API keys, which hold scopes rather than a role.
    role: Option<String>,
    permissions: agentry_types::PermissionSet,
}

/// The key that signs new tokens from now on.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct SigningKey {
    kid: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateTenant {
    /// Absent or null: unchanged (as for every field of a PATCH).
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    name: Option<String>,
    mfa_required: Option<bool>,
}

async fn update(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<UpdateTenant>,
) -> Result<StatusCode, ApiError> {
    state.identity.update_tenant(&access, body.name.as_deref(), body.mfa_required, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn members(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.members(&access, &query.page()?).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMember {
    email: String,
    role: String,
    /// Refused: accepted only to say why (invitations replace it).
    #[schema(ignore)]
    password: Option<serde::de::IgnoredAny>,
}

/// Adding a member invites them: `201` with the invitation (and its link
/// when it was not mailed). See `routes::invitations` for the rest.
async fn add_member(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<impl IntoResponse, ApiError> {
    if body.password.is_some() {
        return Err(ApiError::bad_request(
            "administrators do not set passwords: adding a member sends an invitation, and the person sets their own password (or signs in with SSO) when accepting it",
            "password",
        ));
    }
    let new = NewInvitation { email: body.email, role: body.role };
    Ok((StatusCode::CREATED, Json(state.identity.invite(&access, new, &meta).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetRole {
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetRole>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.set_member_role(&access, &user_id, &body.role, &meta).await?))
}

async fn remove_member(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.remove_member(&access, &user_id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn roles(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "data": state.identity.roles(&access).await? })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutRole {
    #[serde(default)]
    description: String,
    permissions: PermissionSet,
}

async fn put_role(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<PutRole>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.put_role(&access, &name, &body.description, body.permissions, &meta).await?))
}

async fn delete_role(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.delete_role(&access, &name, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn groups(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({ "data": state.identity.groups(&access).await? })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateGroup {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: String,
}

async fn create_group(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    ApiJson(body): ApiJson<CreateGroup>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, Json(state.identity.create_group(&access, &body.name, &body.description, &meta).await?)))
}

async fn group(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path((_, id)): Path<(String, String)>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.group(&access, &id).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateGroup {
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    #[schema(max_length = 1000)]
    description: Option<String>,
}

async fn update_group(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateGroup>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.identity.update_group(&access, &id, body.name.as_deref(), body.description.as_deref(), &meta).await?))
}

async fn delete_group(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.delete_group(&access, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add_group_member(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.add_group_member(&access, &id, &user_id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_group_member(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    Path((_, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    state.identity.remove_group_member(&access, &id, &user_id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_signing_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
) -> Result<impl IntoResponse, ApiError> {
    let kid = state.identity.rotate_signing_key(&principal, &meta).await?;
    Ok(Json(SigningKey { kid }))
}

async fn disable_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.identity.set_user_active(&principal, &user_id, false, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn enable_user(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Extension(meta): Extension<RequestMeta>,
    Path(user_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.identity.set_user_active(&principal, &user_id, true, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
