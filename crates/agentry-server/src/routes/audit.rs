//! The audit log API: query with filters and a cursor, export (JSONL or
//! CSV), and verify the keyed hash chain — per tenant, and for the platform
//! chain (platform administrators).
//!
//! Verify takes an optional anchor (as `agentry audit anchor` prints it, or
//! the `anchor` of an earlier valid verification) in the query:
//! `?anchor=<base64url of the anchor's JSON>` (padding optional). With it,
//! verification also fails on a forged anchor and on a chain truncated or
//! rewritten after the anchored event. A valid verification returns a fresh
//! signed `anchor` of the head, to be kept outside the database.

use agentry_core::TenantAccess;
use agentry_core::audit::{Anchor, AuditEntry, AuditFilter, AuditPage, Outcome, PLATFORM_CHAIN};
use agentry_core::identity::RequestMeta;
use agentry_types::AuditAction;
use agentry_types::Permission;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Largest page of a query.
const MAX_LIMIT: i64 = 1000;
/// Largest export.
const MAX_EXPORT: i64 = 100_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tenants/{tenant}/audit", get(list))
        .route("/api/v1/tenants/{tenant}/audit/export", get(export))
        .route("/api/v1/tenants/{tenant}/audit/verify", get(verify))
        .route("/api/v1/admin/audit", get(list_platform))
        .route("/api/v1/admin/audit/verify", get(verify_platform))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    action: Option<String>,
    actor_id: Option<String>,
    outcome: Option<String>,
    /// Unix milliseconds, inclusive.
    from: Option<i64>,
    /// Unix milliseconds, exclusive.
    to: Option<i64>,
    /// Cursor: events after this sequence number.
    after: Option<i64>,
    limit: Option<i64>,
    /// `jsonl` (default) or `csv`, for exports.
    format: Option<String>,
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        if let Some(outcome) = self.outcome.as_deref().filter(|o| Outcome::parse(o).is_none()) {
            return Err(ApiError::bad_request(format!("'outcome' is success, failure or denied, got '{outcome}'"), "outcome"));
        }
        if self.after.is_some_and(|seq| seq < 0) {
            return Err(ApiError::bad_request("'after' is a sequence number, 0 or more", "after"));
        }
        Ok(AuditFilter { action: self.action.clone(), actor_id: self.actor_id.clone(), outcome: self.outcome.clone(), from_ms: self.from, to_ms: self.to, after_seq: self.after })
    }

    fn limit(&self, max: i64) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(max.min(100)),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::bad_request(format!("limit must be between 1 and {max}"), "limit")),
        }
    }
}

fn query(raw: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>) -> Result<AuditQuery, ApiError> {
    raw.map(|q| q.0).map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text()), "query"))
}

/// One page of events: `next_cursor` (pass as `after`) only when more
/// follow; `next_after`, the last event's sequence number, as before.
async fn page(state: &AppState, chain: &str, q: &AuditQuery) -> Result<Json<AuditPage>, ApiError> {
    let limit = q.limit(MAX_LIMIT)?;
    let events = state.identity.audit().list(chain, &q.filter()?, limit + 1).await?;
    Ok(Json(AuditPage::of(events, limit as usize)))
}

async fn list(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    page(&state, access.tenant_id(), &query(q)?).await
}

async fn list_platform(State(state): State<AppState>, q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    page(&state, PLATFORM_CHAIN, &query(q)?).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    /// base64url (padding optional) of an anchor's JSON.
    anchor: Option<String>,
}

/// The anchor of a verify query, if any.
fn anchor(raw: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>) -> Result<Option<Anchor>, ApiError> {
    let q = raw.map(|q| q.0).map_err(|e| ApiError::bad_request(format!("invalid query: {}", e.body_text()), "query"))?;
    let Some(encoded) = q.anchor else { return Ok(None) };
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| ApiError::bad_request("anchor must be the base64url encoding of an anchor's JSON", "anchor"))?;
    let anchor = serde_json::from_slice(&json).map_err(|e| ApiError::bad_request(format!("anchor is not a valid anchor: {e}"), "anchor"))?;
    Ok(Some(anchor))
}

async fn verify(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    q: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let anchor = anchor(q)?;
    Ok(Json(state.identity.audit().verify_against(access.tenant_id(), anchor.as_ref()).await?))
}

async fn verify_platform(State(state): State<AppState>, q: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>) -> Result<impl IntoResponse, ApiError> {
    let anchor = anchor(q)?;
    Ok(Json(state.identity.audit().verify_against(PLATFORM_CHAIN, anchor.as_ref()).await?))
}

const CSV_HEADER: &[&str] =
    &["seq", "at_ms", "actor_type", "actor_id", "action", "resource", "outcome", "ip", "user_agent", "request_id", "metadata", "prev_hash", "hash", "key_id", "fields_hash"];

fn csv_row(writer: &mut csv::Writer<Vec<u8>>, e: &AuditEntry) -> Result<(), csv::Error> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    writer.write_record([
        e.seq.to_string(),
        e.at_ms.to_string(),
        e.actor_type.clone(),
        opt(&e.actor_id),
        e.action.clone(),
        opt(&e.resource),
        e.outcome.clone(),
        opt(&e.ip),
        opt(&e.user_agent),
        opt(&e.request_id),
        e.metadata.to_string(),
        e.prev_hash.clone(),
        e.hash.clone(),
        opt(&e.key_id),
        opt(&e.fields_hash),
    ])
}

/// The whole (filtered) chain as JSON lines or CSV. Needs `export_data` (the
/// route) and `view_audit`.
async fn export(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(meta): Extension<RequestMeta>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let q = query(q)?;
    access.require(Permission::ViewAudit).map_err(ApiError::from)?;
    let limit = if q.limit.is_some() { q.limit(MAX_EXPORT)? } else { MAX_EXPORT };
    let events = state.identity.audit().list(access.tenant_id(), &q.filter()?, limit).await?;
    let (content_type, body) = match q.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => {
            let mut out = String::new();
            for event in &events {
                out.push_str(&serde_json::to_string(event).map_err(ApiError::internal)?);
                out.push('\n');
            }
            ("application/x-ndjson", out.into_bytes())
        }
        "csv" => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record(CSV_HEADER).map_err(ApiError::internal)?;
            for event in &events {
                csv_row(&mut writer, event).map_err(ApiError::internal)?;
            }
            ("text/csv", writer.into_inner().map_err(ApiError::internal)?)
        }
        _ => return Err(ApiError::bad_request("format must be jsonl or csv", "format")),
    };
    let metadata = json!({ "events": events.len(), "format": q.format.as_deref().unwrap_or("jsonl") });
    state.identity.record_success(&access, AuditAction::AuditExport, None, &meta, metadata).await?;
    let disposition = format!("attachment; filename=\"audit-{}.{}\"", access.tenant_slug(), if content_type == "text/csv" { "csv" } else { "jsonl" });
    Ok(([(header::CONTENT_TYPE, content_type.to_owned()), (header::CONTENT_DISPOSITION, disposition)], body))
}
