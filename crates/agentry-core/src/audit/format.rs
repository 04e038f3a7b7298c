//! How an event is hashed: the legacy plain SHA-256 form, and the keyed
//! form split into a fields hash (personal fields) and a chain HMAC (the
//! rest, plus the fields hash). See the `audit` module doc for why.
//!
//! Every input is encoded as a JSON array in a fixed order, so no two
//! different events share an encoding. Must not: touch storage.

use agentry_db::audit::AuditRow;
use sha2::{Digest, Sha256};

use agentry_types::AuditAction;

use super::keys::AuditKey;

/// The link of a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// What an erasure leaves in the (NOT NULL) metadata column.
pub const ERASED_METADATA: &str = "{}";
/// The action of the keyed event that seals a chain's legacy rows: it must
/// come right after them (its `prev_hash` commits to the legacy head).
pub const KEYED_MARKER: &str = AuditAction::AuditKeyed.as_str();
/// The action of the keyed event that records an erasure; its metadata
/// names the erased event ([`erase_metadata`]).
pub const ERASE_ACTION: &str = AuditAction::AuditErase.as_str();
/// The action of the keyed event that records deleting a chain's oldest
/// events ([`prune_metadata`]); the oldest event kept links to the one it names.
pub const PRUNE_ACTION: &str = AuditAction::AuditPrune.as_str();

/// The pre-0012 hash: SHA-256 over every field and the link. Verified for
/// rows without a key id; never written any more.
pub fn legacy_hash(row: &AuditRow) -> String {
    let fields = serde_json::json!([
        row.chain,
        row.seq,
        row.at_ms,
        row.actor_type,
        row.actor_id,
        row.action,
        row.resource,
        row.outcome,
        row.ip,
        row.user_agent,
        row.request_id,
        row.metadata,
        row.prev_hash
    ]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// SHA-256 of the personal fields — the ones an erasure may clear.
pub fn fields_hash(row: &AuditRow) -> String {
    let fields = serde_json::json!([row.actor_id, row.resource, row.ip, row.user_agent, row.request_id, row.metadata]);
    hex::encode(Sha256::digest(fields.to_string().as_bytes()))
}

/// What the chain HMAC covers: position, time, the non-personal fields, the
/// link, the key id and the fields hash (not the personal fields themselves).
fn chain_message(row: &AuditRow, key_id: &str, fields_hash: &str) -> String {
    serde_json::json!(["agentry audit chain v1", row.chain, row.seq, row.at_ms, row.actor_type, row.action, row.outcome, row.prev_hash, key_id, fields_hash]).to_string()
}

/// Fill in `key_id`, `fields_hash` and `hash` of a new row (its position and link set).
pub fn seal(row: &mut AuditRow, key: &AuditKey) {
    let fields = fields_hash(row);
    row.hash = key.chain_mac(chain_message(row, key.id(), &fields).as_bytes());
    row.key_id = Some(key.id().to_owned());
    row.fields_hash = Some(fields);
}

/// Whether a row is the marker that seals legacy rows before it (written by the system).
pub fn is_keyed_marker(row: &AuditRow) -> bool {
    row.action == KEYED_MARKER && row.actor_type == "system" && row.key_id.is_some()
}

/// The metadata of an `audit.erase` event: the erased event's seq and the
/// fields hash its erased fields had.
pub fn erase_metadata(seq: i64, fields_hash: &str) -> serde_json::Value {
    serde_json::json!({ "seq": seq, "fields_hash": fields_hash })
}

/// The metadata of an `audit.erase` event that names several erased events.
pub fn erase_many_metadata(erased: &[(i64, String)]) -> serde_json::Value {
    serde_json::json!({ "events": erased.iter().map(|(seq, fields_hash)| erase_metadata(*seq, fields_hash)).collect::<Vec<_>>() })
}

/// The `(seq, fields_hash)` pairs an `audit.erase` event names (none for
/// any other event, or an erase event whose own fields were erased).
pub fn erasure_named(row: &AuditRow) -> Vec<(i64, String)> {
    let named = |metadata: &serde_json::Value| Some((metadata.get("seq")?.as_i64()?, metadata.get("fields_hash")?.as_str()?.to_owned()));
    if row.action != ERASE_ACTION || row.key_id.is_none() || row.erased_at_ms.is_some() {
        return Vec::new();
    }
    let Ok(metadata) = serde_json::from_str::<serde_json::Value>(&row.metadata) else { return Vec::new() };
    match metadata.get("events").and_then(serde_json::Value::as_array) {
        Some(events) => events.iter().filter_map(named).collect(),
        None => named(&metadata).into_iter().collect(),
    }
}

/// The metadata of an `audit.prune` event: the last event deleted, its
/// hash, and the retention cut-off it was deleted for.
pub fn prune_metadata(through_seq: i64, through_hash: &str, before_ms: i64) -> serde_json::Value {
    serde_json::json!({ "through_seq": through_seq, "through_hash": through_hash, "before_ms": before_ms })
}

/// The `(through_seq, through_hash)` an `audit.prune` event names.
pub fn prune_named(row: &AuditRow) -> Option<(i64, String)> {
    if row.action != PRUNE_ACTION || row.key_id.is_none() || row.erased_at_ms.is_some() {
        return None;
    }
    let metadata: serde_json::Value = serde_json::from_str(&row.metadata).ok()?;
    Some((metadata.get("through_seq")?.as_i64()?, metadata.get("through_hash")?.as_str()?.to_owned()))
}

/// Whether an erased row really holds no personal fields any more.
pub fn is_erased_clean(row: &AuditRow) -> bool {
    row.actor_id.is_none() && row.resource.is_none() && row.ip.is_none() && row.user_agent.is_none() && row.request_id.is_none() && row.metadata == ERASED_METADATA
}

/// Check a keyed row's own content (not its link) under `key`; `Err` says why it fails.
pub fn check_keyed(row: &AuditRow, key: &AuditKey) -> Result<(), &'static str> {
    let Some(stored_fields) = row.fields_hash.as_deref() else { return Err("a keyed event has no fields hash") };
    if row.erased_at_ms.is_some() {
        if !is_erased_clean(row) {
            return Err("an erased event still carries personal fields");
        }
    } else if fields_hash(row) != stored_fields {
        return Err("the event's content does not match its hash");
    }
    if !key.chain_mac_holds(chain_message(row, key.id(), stored_fields).as_bytes(), &row.hash) {
        return Err("the event's content does not match its hash");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> AuditRow {
        AuditRow {
            chain: "t1".into(),
            seq: 1,
            at_ms: 1_700_000_000_000,
            actor_type: "user".into(),
            actor_id: Some("u1".into()),
            action: "member.add".into(),
            resource: Some("user:u2".into()),
            outcome: "success".into(),
            ip: Some("10.0.0.1".into()),
            user_agent: Some("curl".into()),
            request_id: Some("req_1".into()),
            metadata: r#"{"email":"bob@example.com"}"#.into(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
            key_id: None,
            fields_hash: None,
            erased_at_ms: None,
        }
    }

    fn erase(row: &mut AuditRow) {
        row.actor_id = None;
        row.resource = None;
        row.ip = None;
        row.user_agent = None;
        row.request_id = None;
        row.metadata = ERASED_METADATA.into();
        row.erased_at_ms = Some(1_800_000_000_000);
    }

    #[test]
    fn a_sealed_row_verifies_and_any_change_is_caught() {
        let key = AuditKey::derive(b"master");
        let mut sealed = row();
        seal(&mut sealed, &key);
        assert_eq!(check_keyed(&sealed, &key), Ok(()));
        assert_ne!(sealed.hash, legacy_hash(&sealed), "keyed, not plain SHA-256");
        let other_key = AuditKey::derive(b"other master");
        assert!(check_keyed(&sealed, &other_key).is_err());
        for tamper in [
            (|r: &mut AuditRow| r.action = "member.remove".into()) as fn(&mut AuditRow),
            |r| r.outcome = "denied".into(),
            |r| r.actor_type = "system".into(),
            |r| r.at_ms += 1,
            |r| r.seq += 1,
            |r| r.chain = "t2".into(),
            |r| r.prev_hash = "1".repeat(64),
            |r| r.metadata = "{}".into(),
            |r| r.ip = None,
        ] {
            let mut changed = sealed.clone();
            tamper(&mut changed);
            assert!(check_keyed(&changed, &key).is_err(), "{changed:?}");
        }
        // Recomputing the fields hash after a change does not help without the key.
        let mut changed = sealed.clone();
        changed.metadata = r#"{"email":"mallory@example.com"}"#.into();
        changed.fields_hash = Some(fields_hash(&changed));
        assert!(check_keyed(&changed, &key).is_err());
    }

    /// The hash split that leaves room for erasure: clearing the personal
    /// fields and keeping `fields_hash` keeps the row verifiable, while the
    /// non-personal fields stay covered by the HMAC; the keyed `audit.erase`
    /// event that vouches for the erasure names the row's seq and fields
    /// hash (the chain walk requires it: `audit/tests.rs`).
    #[test]
    fn an_erased_row_keeps_verifying_through_its_fields_hash() {
        let key = AuditKey::derive(b"master");
        let mut sealed = row();
        seal(&mut sealed, &key);
        let mut erased = sealed.clone();
        erase(&mut erased);
        assert_eq!(check_keyed(&erased, &key), Ok(()));
        // The erase event, later in the chain, names the erased row.
        let mut erase_event = row();
        (erase_event.seq, erase_event.prev_hash, erase_event.action) = (2, sealed.hash.clone(), ERASE_ACTION.into());
        (erase_event.actor_type, erase_event.actor_id, erase_event.resource) = ("system".into(), None, None);
        erase_event.metadata = erase_metadata(sealed.seq, sealed.fields_hash.as_deref().unwrap_or_default()).to_string();
        seal(&mut erase_event, &key);
        assert_eq!(check_keyed(&erase_event, &key), Ok(()));
        let fields = erased.fields_hash.clone().unwrap_or_default();
        assert_eq!(erasure_named(&erase_event), [(1, fields.clone())]);
        assert_eq!(erasure_named(&sealed), [], "only audit.erase events name erasures");
        let mut unkeyed = erase_event.clone();
        unkeyed.key_id = None;
        assert_eq!(erasure_named(&unkeyed), [], "only keyed ones");
        // One erase event may name several erased rows.
        let mut many = erase_event.clone();
        many.metadata = erase_many_metadata(&[(1, fields.clone()), (7, "ab".into())]).to_string();
        assert_eq!(erasure_named(&many), [(1, fields), (7, "ab".to_owned())]);
        // Erased without the marker: the fields no longer match their hash.
        let mut unmarked = erased.clone();
        unmarked.erased_at_ms = None;
        assert!(check_keyed(&unmarked, &key).is_err());
        // Marked erased but fields planted: refused.
        let mut planted = erased.clone();
        planted.actor_id = Some("u9".into());
        assert_eq!(check_keyed(&planted, &key), Err("an erased event still carries personal fields"));
        // The action is not erasable: changing it breaks the HMAC.
        let mut changed = erased;
        changed.action = "member.remove".into();
        assert!(check_keyed(&changed, &key).is_err());
    }
}
