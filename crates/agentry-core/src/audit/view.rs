//! What the audit API shows of an event, and how it is asked for.
//!
//! Must not: decide who may read a chain (the routes' permissions and the
//! callers of [`super::Audit::list`] do).

use agentry_db::audit::AuditRow;
use serde::Serialize;

/// One event as the API shows it: without its chain, with the metadata as
/// JSON rather than its stored text.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: i64,
    /// `user`, `api_key`, `master_key`, `anonymous` or `system`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    /// An [`agentry_types::AuditAction`] (older installations may hold others).
    pub action: String,
    pub resource: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// A JSON object.
    pub metadata: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
    /// Which key's HMAC `hash` is; absent on legacy (plain SHA-256) events.
    pub key_id: Option<String>,
    /// SHA-256 of the personal fields, covered by `hash`.
    pub fields_hash: Option<String>,
    /// When the personal fields were erased (then only `fields_hash` vouches for them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased_at_ms: Option<i64>,
}

/// One page of a chain's events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEntry>,
    /// Pass as `after` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// The last event's sequence number (also accepted as `after`).
    pub next_after: Option<i64>,
}

impl AuditPage {
    /// The page of `events`, fetched with one more than `limit` to know whether more follow.
    pub fn of(mut events: Vec<AuditEntry>, limit: usize) -> Self {
        let more = events.len() > limit;
        events.truncate(limit);
        let next_after = events.last().map(|e| e.seq);
        Self { next_cursor: next_after.filter(|_| more).map(|seq| seq.to_string()), next_after, data: events }
    }
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        let metadata = serde_json::from_str(&row.metadata).unwrap_or(serde_json::Value::String(row.metadata));
        Self {
            seq: row.seq,
            at_ms: row.at_ms,
            actor_type: row.actor_type,
            actor_id: row.actor_id,
            action: row.action,
            resource: row.resource,
            outcome: row.outcome,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            metadata,
            prev_hash: row.prev_hash,
            hash: row.hash,
            key_id: row.key_id,
            fields_hash: row.fields_hash,
            erased_at_ms: row.erased_at_ms,
        }
    }
}

/// Which events of a chain to list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    /// Only events after this sequence number (the pagination cursor).
    pub after_seq: Option<i64>,
}

impl From<&AuditFilter> for agentry_db::audit::AuditFilter {
    fn from(f: &AuditFilter) -> Self {
        Self { action: f.action.clone(), actor_id: f.actor_id.clone(), outcome: f.outcome.clone(), from_ms: f.from_ms, to_ms: f.to_ms, after_seq: f.after_seq }
    }
}
