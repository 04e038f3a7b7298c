//! The audit log: who did what, when, to what, with which outcome — append
//! only and hash-chained per tenant so tampering is detectable.
//!
//! Each event's `hash` is SHA-256 over the previous event's hash and the
//! event's own fields (a JSON array in a fixed order); the first event of a
//! chain links to 64 zeros. [`Audit::verify`] walks a chain and reports the
//! first event whose sequence, link or hash does not hold — an altered row,
//! a deleted row in the middle, or a reordered one. (Deleting the newest
//! rows of a chain leaves a shorter valid chain; the count is reported so an
//! operator can compare it with an external record.)
//!
//! [`Audit::record`] writes before it returns (security events are durable
//! before the response is sent). Writers in this process take turns on a
//! lock; writers on other replicas are kept from forking the chain by the
//! `(chain, seq)` primary key, and retry.
//!
//! Must not: decide what is audited (callers do) or update/delete events.

use std::fmt;

use agentry_db::audit::{AuditFilter, AuditRow};
use agentry_db::{Db, DbError};
use serde::Serialize;
use sha2::{Digest, Sha256};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The chain of events that belong to no tenant (platform administration, failed logins).
pub const PLATFORM_CHAIN: &str = "";
const MAX_RETRIES: usize = 20;
const VERIFY_PAGE: i64 = 1000;

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User(String),
    ApiKey(String),
    MasterKey,
    Anonymous,
    System,
}

impl Actor {
    pub fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Self::User(id) => ("user", Some(id)),
            Self::ApiKey(id) => ("api_key", Some(id)),
            Self::MasterKey => ("master_key", None),
            Self::Anonymous => ("anonymous", None),
            Self::System => ("system", None),
        }
    }
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        })
    }
}

/// Where a request came from, for the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    /// Tenant id, or `None` for platform-level events.
    pub tenant: Option<&'a str>,
    pub actor: Actor,
    pub action: &'a str,
    pub resource: Option<String>,
    pub outcome: Outcome,
    pub meta: &'a RequestMeta,
    pub metadata: serde_json::Value,
}

/// The result of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub valid: bool,
    /// Events checked (up to the first break).
    pub events: i64,
    /// Sequence number of the first event that does not hold.
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
}

/// Appends, reads and verifies audit chains.
#[derive(Clone)]
pub struct Audit {
    db: Db,
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

fn event_hash(row: &AuditRow) -> String {
    let fields = serde_json::json!([
        row.chain, row.seq, row.at_ms, row.actor_type, row.actor_id, row.action, row.resource, row.outcome, row.ip, row.user_agent,
        row.request_id, row.metadata, row.prev_hash
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

impl Audit {
    pub fn new(db: Db) -> Self {
        Self { db, writer: Default::default() }
    }

    /// Append an event and return its sequence number, once it is stored.
    pub async fn record(&self, event: AuditEvent<'_>) -> Result<i64, DbError> {
        let (actor_type, actor_id) = event.actor.parts();
        let mut row = AuditRow {
            chain: event.tenant.unwrap_or(PLATFORM_CHAIN).to_owned(),
            seq: 0,
            at_ms: crate::identity::now_ms(),
            actor_type: actor_type.to_owned(),
            actor_id: actor_id.map(str::to_owned),
            action: event.action.to_owned(),
            resource: event.resource,
            outcome: event.outcome.to_string(),
            ip: event.meta.ip.clone(),
            user_agent: event.meta.user_agent.clone(),
            request_id: event.meta.request_id.clone(),
            metadata: event.metadata.to_string(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let _turn = self.writer.lock().await;
        for _ in 0..MAX_RETRIES {
            let head = self.db.audit_head(&row.chain).await?;
            row.seq = head.as_ref().map_or(1, |(seq, _)| seq + 1);
            row.prev_hash = head.map_or_else(|| GENESIS.to_owned(), |(_, hash)| hash);
            row.hash = event_hash(&row);
            match self.db.insert_audit_event(&row).await {
                Ok(()) => return Ok(row.seq),
                Err(DbError::Conflict { .. }) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(DbError::Conflict { context: "audit chain contended" })
    }

    /// Events of a chain, oldest first.
    pub async fn list(&self, chain: &str, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        self.db.audit_events(chain, filter, limit).await
    }

    /// Walk a chain from its first event and report the first break.
    pub async fn verify(&self, chain: &str) -> Result<Verification, DbError> {
        let mut expected_seq = 1;
        let mut prev_hash = GENESIS.to_owned();
        let mut filter = AuditFilter::default();
        loop {
            let page = self.db.audit_events(chain, &filter, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            filter.after_seq = Some(last.seq);
            for row in &page {
                let broken = |reason: &str| Verification {
                    valid: false,
                    events: expected_seq - 1,
                    first_broken_seq: Some(expected_seq.min(row.seq)),
                    reason: Some(reason.to_owned()),
                };
                if row.seq != expected_seq {
                    return Ok(broken("an event is missing (sequence gap)"));
                }
                if row.prev_hash != prev_hash {
                    return Ok(broken("the link to the previous event does not match"));
                }
                if event_hash(row) != row.hash {
                    return Ok(broken("the event's content does not match its hash"));
                }
                prev_hash = row.hash.clone();
                expected_seq += 1;
            }
        }
        Ok(Verification { valid: true, events: expected_seq - 1, first_broken_seq: None, reason: None })
    }
}
