//! The audit log: who did what, when, to what, with which outcome — append
//! only and chained per tenant, keyed so that tampering is detectable even
//! by someone who can write to the database.
//!
//! **Format.** Each event stores `fields_hash` = SHA-256 of its personal
//! fields (actor id, resource, ip, user agent, request id, metadata) and
//! `hash` = HMAC-SHA256 over (chain, seq, at_ms, actor type, action,
//! outcome, prev_hash, key_id, fields_hash), each a JSON array in a fixed
//! order (`format.rs`). `prev_hash` is the previous event's `hash`; the
//! first event of a chain links to 64 zeros. The HMAC key is derived from
//! the server's master key with HKDF-SHA256 (`keys.rs`) and never stored;
//! the event records the key's id (`key_id`), so rewriting an event and
//! recomputing its hashes needs the master key, not just database access.
//!
//! **Rotation.** A new master key adds a key: the server is given its
//! previous master keys, and [`Audit::verify`] accepts an event under any
//! key it holds. An event whose key id it does not hold is reported as a
//! break naming the id. Along one chain keys only move forward: once an
//! event under a key's successor appears (a different key after it, or
//! the current key), an event under the retired key is a break — so a
//! leaked previous master key cannot append events that verify after the
//! rotation reached the chain.
//!
//! **Legacy events.** Events written before keyed chains have no key id and
//! a plain SHA-256 `hash` over all fields and the link. Plain SHA-256
//! proves nothing against a database writer (who could rewrite a whole
//! chain as legacy rows), so they verify (and are counted in
//! [`Verification::legacy_events`]) only as the start of a chain sealed by
//! a keyed `audit.keyed` marker right after them: the marker's `prev_hash`
//! commits to the legacy head under the key. A server seals every chain
//! that ends in legacy rows when it starts ([`Audit::seal_legacy_chains`]),
//! and [`Audit::record`] seals one before appending to it. Legacy rows not
//! followed by the marker, and a legacy event after a keyed one, are breaks.
//!
//! **Erasure** (`erasure.rs`). The HMAC covers `fields_hash`, not the
//! personal fields, so an erasure clears them (NULL, and `{}` for
//! metadata), sets `erased_at_ms` and keeps `fields_hash`. Such a row
//! verifies only when a later keyed `audit.erase` event of the same chain
//! names it (metadata `{"seq", "fields_hash"}` or a list of them under
//! `events`): a database writer cannot hide who did what by marking rows
//! erased. The erase event is written before the fields are cleared. A row
//! marked erased that still carries personal fields is a break. Legacy rows
//! cannot be erased this way.
//!
//! **Retention** (`erasure.rs`). A tenant's oldest events may be deleted
//! past its audit retention: a keyed `audit.prune` event naming the last
//! deleted event's seq and hash is written first, then the events up to it
//! are deleted. A chain whose first event is not seq 1 verifies only when
//! its first event links to the hash such a later prune event names, so
//! deleting events without the audit key is still a break.
//!
//! **Anchors** (`anchor.rs`): the chain's head signed with a second derived
//! key, kept outside the database by the operator (`agentry audit anchor`,
//! or the `anchor` of a valid verification). An anchor is only ever signed
//! after a full verification of the chain holds ([`Audit::anchor`]).
//! Verifying against an anchor detects deleting the newest events (a chain
//! alone cannot: it is still a valid, shorter chain) and forged anchors.
//!
//! **Writing.** [`Audit::record`] writes before it returns (security events
//! are durable before the response is sent). Writers in this process take
//! turns per chain, on one of [`LOCK_STRIPES`] mutexes picked by the
//! chain's hash (bounded however many tenants there are; two chains rarely
//! share one); writers on other replicas are kept from forking the chain by
//! the `(chain, seq)` primary key, and retry.
//!
//! Must not: decide what is audited (callers do), update or delete events
//! other than by erasure and retention as above, or read key material from
//! anywhere but its constructor.

mod anchor;
mod erasure;
mod format;
mod keys;
mod view;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;

use agentry_db::audit::AuditRow;
use agentry_db::{Db, DbError};
use agentry_types::AuditAction;
use serde::Serialize;

pub use anchor::Anchor;
use format::GENESIS;
pub use format::{ERASE_ACTION, KEYED_MARKER, PRUNE_ACTION, erase_metadata};
pub use keys::{ANCHOR_INFO, AuditKey, AuditKeys, CHAIN_INFO};
pub use view::{AuditEntry, AuditFilter, AuditPage};

/// The chain of events that belong to no tenant (platform administration, failed logins).
pub const PLATFORM_CHAIN: &str = "";
/// How many write locks chains share (see the module doc).
pub const LOCK_STRIPES: usize = 64;
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

impl Outcome {
    pub const ALL: [Outcome; 3] = [Self::Success, Self::Failure, Self::Denied];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    /// The outcome a string names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    pub action: AuditAction,
    pub resource: Option<String>,
    pub outcome: Outcome,
    pub meta: &'a RequestMeta,
    pub metadata: serde_json::Value,
}

/// The result of walking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub valid: bool,
    /// Events checked (up to the first break).
    pub events: i64,
    /// Sequence number of the first event that does not hold.
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
    /// Events (of those checked) with the pre-keyed plain SHA-256 hash.
    pub legacy_events: i64,
    /// Events (of those checked) whose personal fields were erased.
    pub erased_events: i64,
    /// Events up to this seq were deleted past the tenant's audit retention (an `audit.prune` event records it).
    pub pruned_through_seq: Option<i64>,
    /// The sequence number of the anchor checked, when one was given and holds.
    pub anchored_seq: Option<i64>,
    /// A signed anchor of the head just verified (only when valid): keep it
    /// outside the database to detect later truncation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<Anchor>,
}

/// Why [`Audit::anchor`] signed nothing.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error(transparent)]
    Failed(#[from] crate::Error),
    /// The chain (or the chain against the given anchor) does not hold: the verification says where and why.
    #[error("the audit chain does not hold: {}", .0.reason.as_deref().unwrap_or_default())]
    Broken(Box<Verification>),
}

/// Why legacy rows do not verify on their own.
const UNSEALED_LEGACY: &str = "legacy rows not sealed by a keyed marker: written without the audit key";

/// Appends, reads and verifies audit chains. Cheap to clone; clones share
/// the write locks and keys.
#[derive(Clone)]
pub struct Audit {
    db: Db,
    keys: Arc<AuditKeys>,
    /// Per-chain write turns, striped (see the module doc).
    locks: Arc<[tokio::sync::Mutex<()>]>,
}

impl Audit {
    /// An audit service keyed with the public development key
    /// ([`AuditKeys::development`]): for tests and benchmarks. A server uses
    /// [`Audit::with_keys`] with keys from its master key.
    pub fn new(db: Db) -> Self {
        Self::with_keys(db, AuditKeys::development())
    }

    /// An audit service that writes with `keys.current()` and verifies with any of `keys`.
    pub fn with_keys(db: Db, keys: AuditKeys) -> Self {
        Self { db, keys: Arc::new(keys), locks: (0..LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect() }
    }

    /// The keys this service holds.
    pub fn keys(&self) -> &AuditKeys {
        &self.keys
    }

    /// The write lock of a chain (shared with the chains hashed to the same stripe).
    fn lock_for(&self, chain: &str) -> &tokio::sync::Mutex<()> {
        &self.locks[stripe(chain)]
    }

    /// Append an event and return its sequence number, once it is stored.
    /// A chain that ends in legacy rows is sealed with the keyed marker
    /// first (see the module doc).
    pub async fn record(&self, event: AuditEvent<'_>) -> Result<i64, DbError> {
        let (actor_type, actor_id) = event.actor.parts();
        let mut row = new_row(event.tenant.unwrap_or(PLATFORM_CHAIN), actor_type, event.action.as_str(), event.outcome);
        row.actor_id = actor_id.map(str::to_owned);
        row.resource = event.resource;
        row.ip = event.meta.ip.clone();
        row.user_agent = event.meta.user_agent.clone();
        row.request_id = event.meta.request_id.clone();
        row.metadata = event.metadata.to_string();
        let _turn = self.lock_for(&row.chain).lock().await;
        for _ in 0..MAX_RETRIES {
            match self.db.audit_head_key(&row.chain).await? {
                Some((seq, hash, None)) => {
                    // Sealed by this write or by another replica's: read the head again.
                    self.try_append(&mut legacy_marker(&row.chain, seq), Some((seq, hash))).await?;
                }
                head => {
                    if self.try_append(&mut row, head.map(|(seq, hash, _)| (seq, hash))).await? {
                        return Ok(row.seq);
                    }
                }
            }
        }
        Err(DbError::Conflict { context: "audit chain contended" })
    }

    /// Seal every chain that ends in legacy (unkeyed) rows with a keyed
    /// `audit.keyed` marker and return those chains. Run at startup after
    /// migrations; idempotent (a chain whose head is keyed is left alone,
    /// also when another replica sealed it first). Expected to seal chains
    /// once, on the first start after upgrading to keyed chains: later, a
    /// chain ending in legacy rows was written without the audit key (an
    /// older replica, or someone with database access — an anchor taken
    /// before tells).
    pub async fn seal_legacy_chains(&self) -> Result<Vec<String>, DbError> {
        let mut sealed = Vec::new();
        for chain in self.db.audit_legacy_heads().await? {
            let _turn = self.lock_for(&chain).lock().await;
            let mut done = false;
            for _ in 0..MAX_RETRIES {
                let Some((seq, hash, None)) = self.db.audit_head_key(&chain).await? else {
                    done = true;
                    break;
                };
                if self.try_append(&mut legacy_marker(&chain, seq), Some((seq, hash))).await? {
                    sealed.push(chain.clone());
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(DbError::Conflict { context: "audit chain contended" });
            }
        }
        Ok(sealed)
    }

    /// Link `row` to `head` (`(seq, hash)`, `None` for an empty chain), seal
    /// it with the current key and insert it; `false` when another writer
    /// took the seq first.
    async fn try_append(&self, row: &mut AuditRow, head: Option<(i64, String)>) -> Result<bool, DbError> {
        row.seq = head.as_ref().map_or(1, |(seq, _)| seq + 1);
        row.prev_hash = head.map_or_else(|| GENESIS.to_owned(), |(_, hash)| hash);
        format::seal(row, self.keys.current());
        match self.db.insert_audit_event(row).await {
            Ok(()) => Ok(true),
            Err(DbError::Conflict { .. }) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Events of a chain, oldest first.
    pub async fn list(&self, chain: &str, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEntry>, crate::Error> {
        Ok(self.db.audit_events(chain, &filter.into(), limit).await?.into_iter().map(AuditEntry::from).collect())
    }

    /// The chain's current head, signed (see [`Anchor`]) — only once a full
    /// verification of the chain holds (against `after`, an earlier anchor,
    /// when given): an anchor must never bless a tampered chain. When it
    /// does not hold, [`AnchorError::Broken`] carries the verification.
    pub async fn anchor(&self, chain: &str, after: Option<&Anchor>) -> Result<Anchor, AnchorError> {
        let verification = self.verify_against(chain, after).await?;
        match verification.anchor {
            Some(ref anchor) if verification.valid => Ok(anchor.clone()),
            _ => Err(AnchorError::Broken(Box::new(verification))),
        }
    }

    /// Walk a chain from its first event and report the first break.
    pub async fn verify(&self, chain: &str) -> Result<Verification, crate::Error> {
        self.verify_against(chain, None).await
    }

    /// Verify every chain in full; the names of those that do not hold.
    pub async fn broken_chains(&self) -> Result<Vec<String>, crate::Error> {
        let mut broken = Vec::new();
        for chain in self.db.audit_chains().await? {
            if !self.verify(&chain).await?.valid {
                broken.push(chain);
            }
        }
        Ok(broken)
    }

    /// [`Self::verify`], and when an anchor is given: check its signature,
    /// that it is this chain's, and that the chain still holds the anchored
    /// event unchanged (reaches its seq, with its hash).
    pub async fn verify_against(&self, chain: &str, anchor: Option<&Anchor>) -> Result<Verification, crate::Error> {
        let mut walk = Walk::default();
        let mut anchored_hash = None;
        if let Some(anchor) = anchor {
            if let Err(reason) = anchor.check(&self.keys) {
                return Ok(walk.broken(None, reason));
            }
            if anchor.chain != chain {
                return Ok(walk.broken(None, "the anchor is for another chain".to_owned()));
            }
            if anchor.seq == 0 {
                anchored_hash = Some(GENESIS.to_owned());
            }
        }
        let mut filter = agentry_db::audit::AuditFilter::default();
        loop {
            let page = self.db.audit_events(chain, &filter, VERIFY_PAGE).await?;
            let Some(last) = page.last() else { break };
            filter.after_seq = Some(last.seq);
            for row in &page {
                if let Err((seq, reason)) = walk.step(row, &self.keys) {
                    return Ok(walk.broken(Some(seq), reason));
                }
                if anchor.is_some_and(|a| walk.pruned.as_ref().is_some_and(|(through, _)| a.seq == *through)) && anchored_hash.is_none() {
                    anchored_hash = walk.pruned.as_ref().map(|(_, hash)| hash.clone());
                }
                if anchor.is_some_and(|a| a.seq == row.seq) {
                    anchored_hash = Some(row.hash.clone());
                }
            }
        }
        if let Err((seq, reason)) = walk.finish() {
            return Ok(walk.broken(Some(seq), reason));
        }
        let head_seq = walk.expected_seq - 1;
        if let Some(anchor) = anchor {
            match anchored_hash {
                None if walk.pruned.as_ref().is_some_and(|(through, _)| anchor.seq < *through) => {
                    let through = walk.pruned.as_ref().map_or(0, |(through, _)| *through);
                    let reason = format!("the anchor (seq {}) is older than the oldest event kept: retention deleted events up to seq {through}; take a new anchor", anchor.seq);
                    return Ok(walk.broken(Some(through + 1), reason));
                }
                None => {
                    let reason = format!("the chain was truncated: it ends at seq {head_seq}, before its anchor at seq {}", anchor.seq);
                    return Ok(walk.broken(Some(head_seq + 1), reason));
                }
                Some(hash) if hash != anchor.hash => {
                    let reason = format!("the event at the anchor's seq {} is not the anchored one (the chain was rewritten)", anchor.seq);
                    return Ok(walk.broken(Some(anchor.seq.max(1)), reason));
                }
                Some(_) => {}
            }
        }
        Ok(Verification {
            valid: true,
            events: walk.checked(),
            pruned_through_seq: walk.pruned.as_ref().map(|(through, _)| *through),
            first_broken_seq: None,
            reason: None,
            legacy_events: walk.legacy,
            erased_events: walk.erased,
            anchored_seq: anchor.map(|a| a.seq),
            anchor: Some(Anchor::sign(self.keys.current(), chain, head_seq, &walk.prev_hash, crate::identity::now_ms())),
        })
    }
}

/// Which of the [`LOCK_STRIPES`] write locks a chain takes (in-process only: replicas are kept apart by the primary key).
fn stripe(chain: &str) -> usize {
    (std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(chain) % LOCK_STRIPES as u64) as usize
}

/// A new row of `chain` with no personal fields, not yet linked or sealed.
fn new_row(chain: &str, actor_type: &str, action: &str, outcome: Outcome) -> AuditRow {
    AuditRow {
        chain: chain.to_owned(),
        seq: 0,
        at_ms: crate::identity::now_ms(),
        actor_type: actor_type.to_owned(),
        actor_id: None,
        action: action.to_owned(),
        resource: None,
        outcome: outcome.to_string(),
        ip: None,
        user_agent: None,
        request_id: None,
        metadata: serde_json::json!({}).to_string(),
        prev_hash: String::new(),
        hash: String::new(),
        key_id: None,
        fields_hash: None,
        erased_at_ms: None,
    }
}

/// The keyed marker that seals a chain whose legacy head is at `legacy_head_seq`.
fn legacy_marker(chain: &str, legacy_head_seq: i64) -> AuditRow {
    let mut row = new_row(chain, Actor::System.parts().0, KEYED_MARKER, Outcome::Success);
    row.metadata = serde_json::json!({ "sealed_seq": legacy_head_seq }).to_string();
    row
}

/// The state of a verification walk.
struct Walk {
    expected_seq: i64,
    prev_hash: String,
    /// The key of the latest keyed event (`None` while only legacy events were seen).
    last_key: Option<String>,
    /// Keys this chain has moved on from: an event under one of them is a break.
    retired: HashSet<String>,
    legacy: i64,
    erased: i64,
    /// Erased events no `audit.erase` event has named yet: seq → fields hash.
    unvouched_erasures: BTreeMap<i64, String>,
    /// The chain starts after deleted events: the last one's `(seq, hash)`.
    pruned: Option<(i64, String)>,
    /// A keyed `audit.prune` event names [`Self::pruned`].
    prune_vouched: bool,
}

impl Default for Walk {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS.to_owned(),
            last_key: None,
            retired: HashSet::new(),
            legacy: 0,
            erased: 0,
            unvouched_erasures: BTreeMap::new(),
            pruned: None,
            prune_vouched: false,
        }
    }
}

impl Walk {
    /// Check one event and advance past it; `Err` is the seq of the break and why.
    fn step(&mut self, row: &AuditRow, keys: &AuditKeys) -> Result<(), (i64, String)> {
        if self.expected_seq == 1 && row.seq > 1 {
            // The oldest events were deleted: a later prune event must name the last one ([`Self::finish`]).
            self.pruned = Some((row.seq - 1, row.prev_hash.clone()));
            self.expected_seq = row.seq;
            self.prev_hash = row.prev_hash.clone();
        }
        let at = self.expected_seq.min(row.seq);
        if row.seq != self.expected_seq {
            return Err((at, "an event is missing (sequence gap)".to_owned()));
        }
        if row.prev_hash != self.prev_hash {
            return Err((at, "the link to the previous event does not match".to_owned()));
        }
        match row.key_id.as_deref() {
            None => {
                if self.last_key.is_some() {
                    return Err((at, "an unkeyed (legacy) event follows keyed events".to_owned()));
                }
                if row.fields_hash.is_some() || row.erased_at_ms.is_some() || format::legacy_hash(row) != row.hash {
                    return Err((at, "the event's content does not match its hash".to_owned()));
                }
                self.legacy += 1;
            }
            Some(id) => {
                let Some(key) = keys.get(id) else {
                    return Err((
                        at,
                        format!("the event was written with key id {id}, which this server does not hold (add the master key it was written with to the previous master keys)"),
                    ));
                };
                format::check_keyed(row, key).map_err(|reason| (at, reason.to_owned()))?;
                if self.last_key.is_none() && self.legacy > 0 && !format::is_keyed_marker(row) {
                    return Err((1, UNSEALED_LEGACY.to_owned()));
                }
                match self.last_key.take() {
                    Some(last) if last != id => {
                        if self.retired.contains(id) || last == keys.current().id() {
                            return Err((at, format!("written under a retired key after its successor (key id {id} after {last})")));
                        }
                        self.retired.insert(last);
                    }
                    _ => {}
                }
                self.last_key = Some(id.to_owned());
                if row.erased_at_ms.is_some() {
                    self.erased += 1;
                    self.unvouched_erasures.insert(row.seq, row.fields_hash.clone().unwrap_or_default());
                }
                for (seq, fields_hash) in format::erasure_named(row) {
                    if self.unvouched_erasures.get(&seq) == Some(&fields_hash) {
                        self.unvouched_erasures.remove(&seq);
                    }
                }
                if self.pruned.is_some() && format::prune_named(row) == self.pruned {
                    self.prune_vouched = true;
                }
            }
        }
        self.prev_hash = row.hash.clone();
        self.expected_seq += 1;
        Ok(())
    }

    /// What only the whole chain shows: legacy rows never sealed, erasures never recorded.
    fn finish(&self) -> Result<(), (i64, String)> {
        if self.last_key.is_none() && self.legacy > 0 {
            return Err((1, UNSEALED_LEGACY.to_owned()));
        }
        if let Some((through, _)) = &self.pruned
            && !self.prune_vouched
        {
            return Err((through + 1, format!("the events up to seq {through} were deleted, but no later keyed {PRUNE_ACTION} event records it")));
        }
        if let Some(seq) = self.unvouched_erasures.keys().next() {
            return Err((*seq, format!("the event was marked erased, but no later keyed {ERASE_ACTION} event names it (seq and fields hash)")));
        }
        Ok(())
    }

    /// Events walked so far (not counting deleted ones).
    fn checked(&self) -> i64 {
        self.expected_seq - 1 - self.pruned.as_ref().map_or(0, |(through, _)| *through)
    }

    fn broken(&self, first_broken_seq: Option<i64>, reason: String) -> Verification {
        Verification {
            valid: false,
            events: self.checked(),
            pruned_through_seq: self.pruned.as_ref().map(|(through, _)| *through),
            first_broken_seq,
            reason: Some(reason),
            legacy_events: self.legacy,
            erased_events: self.erased,
            anchored_seq: None,
            anchor: None,
        }
    }
}

#[cfg(test)]
mod tests;
