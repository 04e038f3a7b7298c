//! The `authorize` middleware: finds the matched route's rule in
//! [`crate::access::RULES`], authenticates the bearer credential (master
//! key, JWT access token or API key), resolves the tenant and checks the
//! permission. Handlers receive `Extension<Principal>`,
//! `Extension<TenantAccess>` (tenant routes) and `Extension<RequestMeta>`.
//!
//! Unauthenticated routes (except health probes) are limited per client
//! IP (`usage.public_requests_per_minute_per_ip`), with `RateLimit-*` headers.
//!
//! Answers: no/garbled credentials → 401; a tenant the caller does not
//! belong to → 404 (its existence is not revealed); a missing permission →
//! 403, audited.

use std::net::SocketAddr;
use std::time::Duration;

use agentry_core::coord::RateDecision;

use agentry_core::identity::RequestMeta;
use agentry_core::{Principal, TenantAccess};
use agentry_types::ErrorCode;
use axum::RequestExt;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::access::{Access, rule_for};
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::state::AppState;

/// Header naming the tenant of a `/v1` request.
pub const TENANT_HEADER: &str = "x-agentry-tenant";

fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn request_meta(req: &Request) -> RequestMeta {
    RequestMeta {
        ip: req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string()),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(300).collect()),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

async fn authenticate(state: &AppState, presented: Option<String>, meta: &RequestMeta) -> Result<Principal, ApiError> {
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::MissingApiKey,
            "You didn't provide an API key or access token. Send it as 'Authorization: Bearer <key>'.",
        ));
    };
    if bool::from(presented.as_bytes().ct_eq(state.master_key.expose_secret().as_bytes())) {
        return Ok(Principal::MasterKey);
    }
    match state.identity.authenticate(&presented).await {
        Ok(principal) => Ok(principal),
        Err(error) => Err(state.identity.record_rejected_credential(error, meta).await.into()),
    }
}

/// Which tenant a tenant-scoped request is about, if it names one.
async fn tenant_ref(req: &mut Request) -> Option<String> {
    let from_path = req
        .extract_parts::<RawPathParams>()
        .await
        .ok()
        .and_then(|params| params.iter().find(|(name, _)| *name == "tenant").map(|(_, value)| value.to_owned()));
    from_path.or_else(|| req.headers().get(TENANT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned))
}

pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match check(&state, &mut req).await {
        Ok(None) => next.run(req).await,
        Ok(Some(decision)) => {
            let mut response = next.run(req).await;
            crate::error::rate_limit_headers(response.headers_mut(), &decision);
            response
        }
        Err(error) => error.into_response(),
    }
}

/// Routes probed by load balancers and orchestrators: never limited by IP.
const PROBES: &[&str] = &["/health", "/ready"];

/// The per-IP limit of unauthenticated routes (shared through Redis when configured).
async fn limit_by_ip(state: &AppState, path: &str, meta: &RequestMeta) -> Result<Option<RateDecision>, ApiError> {
    if state.public_rate_per_ip == 0 || PROBES.contains(&path) {
        return Ok(None);
    }
    let ip = meta.ip.as_deref().unwrap_or("unknown");
    let decision = state.gateway.accounting().coord().gcra(&format!("agentry:ip:{ip}"), state.public_rate_per_ip, Duration::from_secs(60), 1, false).await;
    if decision.allowed {
        return Ok(Some(decision));
    }
    metrics::counter!("rate_limited_requests_total", "tier" => "public_ip", "dimension" => "requests_per_minute").increment(1);
    Err(ApiError {
        retry_after: Some(decision.retry_after.as_secs_f64().ceil().max(1.0) as u64),
        rate_limit: Some(Box::new(decision)),
        ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, ErrorCode::RateLimited, "too many requests from this address; retry later")
    })
}

async fn check(state: &AppState, req: &mut Request) -> Result<Option<RateDecision>, ApiError> {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let Some(rule) = rule_for(req.method(), &path) else {
        // A known path with an unlisted method has no handler for it: let
        // axum answer 405. (A test checks every unlisted method is a 405.)
        if crate::access::RULES.iter().any(|r| r.path == path) {
            return Ok(None);
        }
        tracing::error!(method = %req.method(), %path, "route has no access rule; refusing");
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, "this route is not open to anyone"));
    };
    let meta = request_meta(req);
    req.extensions_mut().insert(meta.clone());
    let method = req.method().clone();
    // Only formatted when a refusal is audited.
    let what = || format!("{method} {path}");
    if rule.access == Access::Public {
        return limit_by_ip(state, &path, &meta).await;
    }
    // Owned: a borrow of the request (whose body is not Sync) must not live across an await.
    let presented = bearer(req).map(str::to_owned);
    let principal = authenticate(state, presented, &meta).await?;
    req.extensions_mut().insert(principal.clone());
    match rule.access {
        Access::Public | Access::Authenticated => Ok(None),
        Access::PlatformAdmin if principal.is_platform_admin() => Ok(None),
        Access::PlatformAdmin => {
            state.identity.record_denied(None, &principal, &what(), &meta).await?;
            Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, "platform administrators only"))
        }
        Access::Tenant(permission) | Access::TenantUser(permission) => {
            let tenant = match tenant_ref(req).await {
                Some(tenant) => tenant,
                None => match state.identity.default_tenant(&principal).await? {
                    Some(tenant) => tenant,
                    // The master key on /v1 needs no tenant.
                    None if principal == Principal::MasterKey => return Ok(None),
                    None => {
                        return Err(ApiError::bad_request(
                            format!("name the tenant with the {TENANT_HEADER} header (you belong to several)"),
                            TENANT_HEADER,
                        ));
                    }
                },
            };
            let access: TenantAccess = state.identity.tenant_access(&principal, &tenant).await?;
            if matches!(rule.access, Access::TenantUser(_)) && matches!(principal, Principal::ApiKey { .. }) {
                state.identity.record_denied(Some(&access), &principal, &what(), &meta).await?;
                return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, "this route needs a signed-in user, not an API key"));
            }
            if let Some(permission) = permission
                && !access.can(permission)
            {
                state.identity.record_denied(Some(&access), &principal, &what(), &meta).await?;
                return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::PermissionDenied, format!("missing permission '{permission}'")));
            }
            req.extensions_mut().insert(access);
            Ok(None)
        }
    }
}
