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

use agentry_core::identity::{PrincipalKind, RequestMeta};
use agentry_core::{Principal, TenantAccess};
use agentry_types::AuditAction;
use agentry_types::ErrorCode;
use axum::RequestExt;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

fn request_meta(state: &AppState, req: &Request) -> RequestMeta {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    RequestMeta {
        ip: state.trusted_proxies.client_ip(peer, req.headers()).map(|ip| ip.to_string()),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(|s| s.chars().take(300).collect()),
        request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
    }
}

async fn authenticate(state: &AppState, presented: Option<String>, meta: &RequestMeta) -> Result<Principal, ApiError> {
    let Some(presented) = presented else {
        return Err(ApiError::new(ErrorCode::MissingApiKey, "You didn't provide an API key or access token. Send it as 'Authorization: Bearer <key>'."));
    };
    match state.identity.authenticate(&presented).await {
        Ok(principal) => Ok(principal),
        Err(error) => Err(state.identity.record_rejected_credential(error, meta).await.into()),
    }
}

/// Which tenant a tenant-scoped request is about, if it names one.
async fn tenant_ref(req: &mut Request) -> Option<String> {
    let from_path = req.extract_parts::<RawPathParams>().await.ok().and_then(|params| params.iter().find(|(name, _)| *name == "tenant").map(|(_, value)| value.to_owned()));
    from_path.or_else(|| req.headers().get(TENANT_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned))
}

pub async fn authorize(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match check(&state, &mut req).await {
        Ok(Checked { decision, audit }) => {
            let audit = match audit {
                Some(action) => PendingAudit::of(action, &mut req).await,
                None => None,
            };
            let mut response = next.run(req).await;
            if let Some(decision) = decision {
                crate::error::rate_limit_headers(response.headers_mut(), &decision);
            }
            match audit {
                Some(audit) if response.status().is_success() => audit.record(&state, response).await,
                _ => response,
            }
        }
        Err(error) => error.into_response(),
    }
}

/// What passed the checks: the rate decision to report, and the audit
/// action the route records when it succeeds.
#[derive(Default)]
struct Checked {
    decision: Option<RateDecision>,
    audit: Option<AuditAction>,
}

/// A route's audit event, filled in once the handler has succeeded.
struct PendingAudit {
    action: AuditAction,
    tenant: Option<String>,
    actor: agentry_core::audit::Actor,
    meta: RequestMeta,
    route: String,
    /// The object the path names (`{id}`, `{name}`, `{version}`…); for
    /// creations it comes from the answer's `id`.
    resource: Option<String>,
}

/// Largest answer read back for a created object's id.
const MAX_AUDITED_ANSWER: usize = 1024 * 1024;

impl PendingAudit {
    async fn of(action: AuditAction, req: &mut Request) -> Option<Self> {
        let principal = req.extensions().get::<Principal>()?.clone();
        let meta = req.extensions().get::<RequestMeta>().cloned().unwrap_or_default();
        let tenant = req.extensions().get::<TenantAccess>().map(|a| a.tenant_id().to_owned());
        let route = format!("{} {}", req.method(), req.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str));
        let params = req.extract_parts::<RawPathParams>().await.ok();
        let named: Vec<String> = params.iter().flat_map(|p| p.iter()).filter(|(name, _)| *name != "tenant").map(|(name, value)| format!("{name}:{value}")).collect();
        let resource = (!named.is_empty()).then(|| named.join("/"));
        Some(Self { action, tenant, actor: principal.actor(), meta, route, resource })
    }

    /// Record the event before the answer leaves. The change has happened,
    /// so a failure to record it is logged (and counted), not turned into an error answer.
    async fn record(self, state: &AppState, response: Response) -> Response {
        let (response, created) = match self.resource {
            Some(_) => (response, None),
            None => created_id(response).await,
        };
        let resource = self.resource.or(created.map(|id| format!("id:{id}")));
        let event = agentry_core::audit::AuditEvent {
            tenant: self.tenant.as_deref(),
            actor: self.actor,
            action: self.action,
            resource,
            outcome: agentry_core::audit::Outcome::Success,
            meta: &self.meta,
            metadata: serde_json::json!({ "route": self.route }),
        };
        if let Err(error) = state.identity.audit().record(event).await {
            metrics::counter!("audit_write_failures_total").increment(1);
            tracing::error!(%error, action = self.action.as_str(), "could not record an audit event");
        }
        response
    }
}

/// The `id` (or `name`) of a JSON answer, and the answer rebuilt. Only a
/// JSON answer of known, bounded length is read; any other passes untouched.
async fn created_id(response: Response) -> (Response, Option<String>) {
    let is_json = response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let length = axum::body::HttpBody::size_hint(response.body()).exact();
    if !is_json || length.is_none_or(|n| n > MAX_AUDITED_ANSWER as u64) {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    match axum::body::to_bytes(body, MAX_AUDITED_ANSWER).await {
        Ok(bytes) => {
            let id = serde_json::from_slice::<serde_json::Value>(&bytes).ok().and_then(|v| v.get("id").or_else(|| v.get("name")).and_then(|id| id.as_str().map(str::to_owned)));
            (Response::from_parts(parts, axum::body::Body::from(bytes)), id)
        }
        Err(error) => {
            tracing::warn!(%error, "could not read a created object's answer for the audit log");
            (Response::from_parts(parts, axum::body::Body::empty()), None)
        }
    }
}

/// Routes probed by load balancers and orchestrators: never limited by IP.
const PROBES: &[&str] = &["/health", "/ready"];

/// The per-IP limit of unauthenticated routes (shared through Redis when configured).
async fn limit_by_ip(state: &AppState, path: &str, meta: &RequestMeta) -> Result<Option<RateDecision>, ApiError> {
    if state.public_rate_per_ip == 0 || PROBES.contains(&path) {
        return Ok(None);
    }
    let ip = agentry_core::identity::address_bucket(meta.ip.as_deref());
    let decision = state.gateway.accounting().coord().gcra(&format!("agentry:ip:{ip}"), state.public_rate_per_ip, Duration::from_secs(60), 1, false).await;
    if decision.allowed {
        return Ok(Some(decision));
    }
    metrics::counter!("rate_limited_requests_total", "tier" => "public_ip", "dimension" => "requests_per_minute").increment(1);
    Err(ApiError {
        retry_after: Some(decision.retry_after.as_secs_f64().ceil().max(1.0) as u64),
        rate_limit: Some(Box::new(decision)),
        ..ApiError::new(ErrorCode::RateLimited, "too many requests from this address; retry later")
    })
}

async fn check(state: &AppState, req: &mut Request) -> Result<Checked, ApiError> {
    let path = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let Some(rule) = rule_for(req.method(), &path) else {
        // A known path with an unlisted method has no handler for it: let
        // axum answer 405. (A test checks every unlisted method is a 405.)
        if crate::access::RULES.iter().any(|r| r.path == path) {
            return Ok(Checked::default());
        }
        tracing::error!(method = %req.method(), %path, "route has no access rule; refusing");
        return Err(ApiError::new(ErrorCode::PermissionDenied, "this route is not open to anyone"));
    };
    let meta = request_meta(state, req);
    req.extensions_mut().insert(meta.clone());
    let method = req.method().clone();
    // Only formatted when a refusal is audited.
    let what = || format!("{method} {path}");
    if rule.access == Access::Public {
        return Ok(Checked { decision: limit_by_ip(state, &path, &meta).await?, audit: rule.audit });
    }
    // Owned: a borrow of the request (whose body is not Sync) must not live across an await.
    let presented = bearer(req).map(str::to_owned);
    if rule.access == Access::MetricsScrape && presented.as_deref().is_some_and(|token| state.metrics_token.matches(token)) {
        return Ok(Checked { decision: None, audit: rule.audit });
    }
    let principal = agentry_llm::trace_context::in_span(|| tracing::info_span!("authenticate"), authenticate(state, presented, &meta)).await?;
    req.extensions_mut().insert(principal.clone());
    let passed = Checked { decision: None, audit: rule.audit };
    match rule.access {
        Access::Public | Access::Authenticated => Ok(passed),
        Access::SignedIn if principal.kind() == PrincipalKind::User => Ok(passed),
        Access::SignedIn => {
            state.identity.record_denied(None, &principal, &what(), &meta).await?;
            Err(ApiError::new(ErrorCode::PermissionDenied, "this route needs a signed-in user, not an API key or the master key"))
        }
        Access::PlatformAdmin | Access::MetricsScrape if principal.is_platform_admin() => Ok(passed),
        Access::PlatformAdmin | Access::MetricsScrape => {
            state.identity.record_denied(None, &principal, &what(), &meta).await?;
            Err(ApiError::new(ErrorCode::PermissionDenied, "platform administrators only"))
        }
        Access::Tenant(_) | Access::TenantUser(_) | Access::TenantAnyOf(_) => {
            let tenant = match tenant_ref(req).await {
                Some(tenant) => tenant,
                None => match state.identity.default_tenant(&principal).await? {
                    Some(tenant) => tenant,
                    // The master key on /v1 needs no tenant; elsewhere a tenant route needs one.
                    None if principal.kind() == PrincipalKind::MasterKey && path.starts_with("/v1/") => return Ok(passed),
                    None => {
                        return Err(ApiError::bad_request(format!("name the tenant with the {TENANT_HEADER} header (you have no single default tenant)"), TENANT_HEADER));
                    }
                },
            };
            let access: TenantAccess = state.identity.tenant_access(&principal, &tenant).await?;
            if matches!(rule.access, Access::TenantUser(_)) && principal.kind() == PrincipalKind::ApiKey {
                state.identity.record_denied(Some(&access), &principal, &what(), &meta).await?;
                return Err(ApiError::new(ErrorCode::PermissionDenied, "this route needs a signed-in user, not an API key"));
            }
            if let Err(refusal) = rule.access.check_held(access.permissions()) {
                state.identity.record_denied(Some(&access), &principal, &what(), &meta).await?;
                return Err(ApiError::new(ErrorCode::PermissionDenied, refusal));
            }
            req.extensions_mut().insert(access);
            Ok(passed)
        }
    }
}
