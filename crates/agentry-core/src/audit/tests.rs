//! Unit tests of the audit service's write locks and of the verification
//! walk's chain rules (legacy rows sealed by a marker, erasures recorded by
//! an erase event, keys moving only forward). The row format and the keys
//! are tested in their modules; chains on both backends in the server's
//! `tests/api/audit_integrity.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

fn event<'a>(tenant: &'a str, meta: &'a RequestMeta) -> AuditEvent<'a> {
    AuditEvent { tenant: Some(tenant), actor: Actor::System, action: AuditAction::AuditExport, resource: None, outcome: Outcome::Success, meta, metadata: serde_json::json!({}) }
}

/// Writers of one chain take turns; a writer of another chain does not wait
/// for them (the old single process-wide lock made it wait).
#[tokio::test]
async fn a_held_chain_does_not_block_writes_to_another_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("audit.db").display())).await.unwrap();
    db.migrate().await.unwrap();
    let audit = Audit::with_keys(db, AuditKeys::from_master_keys(b"master key for tests", []));
    let held = "tenant-a";
    let other = (0..).map(|i| format!("tenant-{i}")).find(|c| !std::ptr::eq(audit.lock_for(c), audit.lock_for(held))).unwrap();
    let meta = RequestMeta::default();

    let turn = audit.lock_for(held).lock().await;
    let written = tokio::time::timeout(Duration::from_secs(30), audit.record(event(&other, &meta))).await;
    assert_eq!(written.expect("a write to another chain must not wait for the held one").unwrap(), 1);
    let same_chain = tokio::time::timeout(Duration::from_millis(200), audit.record(event(held, &meta))).await;
    assert!(same_chain.is_err(), "a write to the held chain waits for its turn");
    drop(turn);
    assert_eq!(audit.record(event(held, &meta)).await.unwrap(), 1);
    assert!(audit.verify(&other).await.unwrap().valid);
    assert!(audit.verify(held).await.unwrap().valid);
}

#[test]
fn chains_spread_over_the_stripes() {
    let used: std::collections::HashSet<usize> = (0..1000).map(|i| stripe(&format!("tenant-{i}"))).collect();
    assert!(used.len() > LOCK_STRIPES / 2, "{}", used.len());
}

/// A chain built in memory: each step is `(key, action)`, `None` for a legacy row.
fn chain_of(steps: &[(Option<&AuditKey>, &str)]) -> Vec<AuditRow> {
    let mut rows: Vec<AuditRow> = Vec::new();
    for (i, (key, action)) in steps.iter().enumerate() {
        let mut row = new_row("t1", "user", action, Outcome::Success);
        (row.seq, row.actor_id) = (i as i64 + 1, Some("u1".into()));
        row.prev_hash = rows.last().map_or_else(|| GENESIS.to_owned(), |r| r.hash.clone());
        if *action == KEYED_MARKER {
            row.actor_type = "system".into();
        }
        match key {
            Some(key) => format::seal(&mut row, key),
            None => row.hash = format::legacy_hash(&row),
        }
        rows.push(row);
    }
    rows
}

/// Walk `rows` as `verify` does: `Err((seq, reason))` at the first break.
fn walk(rows: &[AuditRow], keys: &AuditKeys) -> Result<Walk, (i64, String)> {
    let mut walk = Walk::default();
    for row in rows {
        walk.step(row, keys)?;
    }
    walk.finish()?;
    Ok(walk)
}

/// Re-seal `rows[from..]` under their own keys after an edit (what only a key holder can do).
fn relink(rows: &mut [AuditRow], from: usize, keys: &AuditKeys) {
    for i in from..rows.len() {
        if i > 0 {
            rows[i].prev_hash = rows[i - 1].hash.clone();
        }
        let key = keys.get(rows[i].key_id.as_deref().unwrap()).unwrap().clone();
        format::seal(&mut rows[i], &key);
    }
}

#[test]
fn legacy_rows_verify_only_when_a_keyed_marker_seals_them() {
    let keys = AuditKeys::from_master_keys(b"master key for tests", []);
    let key = Some(keys.current());
    let sealed = chain_of(&[(None, "one"), (None, "two"), (key, KEYED_MARKER), (key, "three")]);
    assert_eq!(walk(&sealed, &keys).map(|w| w.legacy).unwrap(), 2);

    // A chain of legacy rows only (anyone with database access can write one).
    let unsealed = chain_of(&[(None, "one"), (None, "two")]);
    let (seq, reason) = walk(&unsealed, &keys).err().unwrap();
    assert_eq!((seq, reason.as_str()), (1, "legacy rows not sealed by a keyed marker: written without the audit key"));
    // Legacy rows followed by keyed events that are not the marker.
    let unmarked = chain_of(&[(None, "one"), (key, "two"), (key, KEYED_MARKER)]);
    assert_eq!(walk(&unmarked, &keys).err().unwrap(), (1, UNSEALED_LEGACY.to_owned()));
    // The marker must be the system's.
    let mut by_user = chain_of(&[(None, "one"), (key, KEYED_MARKER)]);
    by_user[1].actor_type = "user".into();
    relink(&mut by_user, 1, &keys);
    assert_eq!(walk(&by_user, &keys).err().unwrap().0, 1);
    // A chain that starts keyed needs no marker.
    assert!(walk(&chain_of(&[(key, "one"), (key, "two")]), &keys).is_ok());
}

#[test]
fn an_erased_row_verifies_only_when_a_later_erase_event_names_it() {
    let keys = AuditKeys::from_master_keys(b"master key for tests", []);
    let key = Some(keys.current());
    let mut rows = chain_of(&[(key, "one"), (key, "two"), (key, "three"), (key, ERASE_ACTION)]);
    let named = (rows[1].seq, rows[1].fields_hash.clone().unwrap());
    rows[3].metadata = erase_metadata(named.0, &named.1).to_string();
    relink(&mut rows, 3, &keys);
    let erase = |row: &mut AuditRow| {
        (row.actor_id, row.resource, row.ip, row.user_agent, row.request_id) = (None, None, None, None, None);
        row.metadata = format::ERASED_METADATA.into();
        row.erased_at_ms = Some(1_800_000_000_000);
    };
    erase(&mut rows[1]);
    assert_eq!(walk(&rows, &keys).map(|w| w.erased).unwrap(), 1);

    // Without the erase event (a database writer hiding who did what): a break at the erased row.
    let (seq, reason) = walk(&rows[..3], &keys).err().unwrap();
    assert_eq!(seq, 2);
    assert!(reason.contains("no later keyed audit.erase event"), "{reason}");
    // An erase event naming another seq, or another fields hash, does not vouch for it.
    for metadata in [erase_metadata(3, &named.1), erase_metadata(2, &"0".repeat(64)), serde_json::json!({})] {
        let mut other = rows.clone();
        other[3].metadata = metadata.to_string();
        relink(&mut other, 3, &keys);
        assert_eq!(walk(&other, &keys).err().unwrap().0, 2, "{metadata}");
    }
    // The erase event must come after the erased row.
    let mut before = chain_of(&[(key, ERASE_ACTION), (key, "two")]);
    before[0].metadata = erase_metadata(2, before[1].fields_hash.as_deref().unwrap()).to_string();
    relink(&mut before, 0, &keys);
    erase(&mut before[1]);
    assert_eq!(walk(&before, &keys).err().unwrap().0, 2);
}

#[test]
fn keys_only_move_forward_along_a_chain() {
    let (a, b, c) = (AuditKey::derive(b"master a"), AuditKey::derive(b"master b"), AuditKey::derive(b"master c"));
    let b_current = AuditKeys::from_master_keys(b"master b", [b"master a".as_slice()]);
    assert!(walk(&chain_of(&[(Some(&a), "one"), (Some(&a), "two"), (Some(&b), "three")]), &b_current).is_ok());
    // The retired key A (say, leaked) appends after B, the current key.
    let (seq, reason) = walk(&chain_of(&[(Some(&a), "one"), (Some(&b), "two"), (Some(&a), "three")]), &b_current).err().unwrap();
    assert_eq!(seq, 3);
    assert!(reason.contains("written under a retired key after its successor"), "{reason}");
    // A previous key after the current one, even one this chain never used.
    let c_current = AuditKeys::from_master_keys(b"master c", [b"master a".as_slice(), b"master b".as_slice()]);
    assert_eq!(walk(&chain_of(&[(Some(&a), "one"), (Some(&c), "two"), (Some(&b), "three")]), &c_current).err().unwrap().0, 3);
    // Back to a key the chain moved on from, both retired now.
    assert_eq!(walk(&chain_of(&[(Some(&a), "one"), (Some(&b), "two"), (Some(&a), "three")]), &c_current).err().unwrap().0, 3);
    assert!(walk(&chain_of(&[(Some(&a), "one"), (Some(&b), "two"), (Some(&c), "three"), (Some(&c), "four")]), &c_current).is_ok());
}
