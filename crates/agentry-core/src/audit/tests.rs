//! Unit tests of the audit service's write locks (the chain format and the
//! keys are tested in their modules; chains on both backends in
//! `tests/audit_integrity.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::*;

fn event<'a>(tenant: &'a str, meta: &'a RequestMeta) -> AuditEvent<'a> {
    AuditEvent { tenant: Some(tenant), actor: Actor::System, action: "test.event", resource: None, outcome: Outcome::Success, meta, metadata: serde_json::json!({}) }
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
