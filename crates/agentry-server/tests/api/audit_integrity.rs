//! Audit integrity: keyed chain hashes (a database writer cannot recompute
//! them), key rotation (keys only move forward along a chain), legacy rows
//! (verify only once a restart seals them with a keyed marker), erased rows
//! (only with an erase event naming them), and signed anchors against
//! truncation and forgery (signed only over a chain that verifies) — in the
//! audit service on SQLite and PostgreSQL, through the verify API, and
//! through `agentry audit anchor|verify`.

use std::process::Command;

use agentry_core::audit::{Actor, Anchor, AnchorError, Audit, AuditEvent, AuditKeys, ERASE_ACTION, KEYED_MARKER, Outcome, PRUNE_ACTION, RequestMeta, erase_metadata};
use agentry_db::Db;
use agentry_db::audit::{AuditFilter, AuditRow};
use agentry_types::AuditAction;
use base64::Engine;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{ADMIN_EMAIL, MASTER_KEY, TestOptions, assert_error, spawn_app, spawn_app_with};

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const KEY_A: &str = "sk-audit-master-key-a-0123456789";
const KEY_B: &str = "sk-audit-master-key-b-0123456789";
const KEY_C: &str = "sk-audit-master-key-c-0123456789";

fn keys(current: &str, previous: &[&str]) -> AuditKeys {
    AuditKeys::from_master_keys(current.as_bytes(), previous.iter().map(|key| key.as_bytes()))
}

/// Records a `membership.update` event told apart by `label` (its request id).
async fn record(audit: &Audit, chain: &str, label: &str) -> i64 {
    let meta = RequestMeta { ip: Some("10.0.0.7".into()), user_agent: Some("test".into()), request_id: Some(format!("req_{label}")) };
    let event = AuditEvent {
        tenant: Some(chain),
        actor: Actor::User("u1".into()),
        action: AuditAction::MembershipUpdate,
        resource: Some("user:u2".into()),
        outcome: Outcome::Success,
        meta: &meta,
        metadata: json!({ "email": "bob@example.com" }),
    };
    audit.record(event).await.unwrap()
}

async fn rows(db: &Db, chain: &str) -> Vec<AuditRow> {
    db.audit_events(chain, &AuditFilter::default(), 1000).await.unwrap()
}

/// The pre-keyed hash, which anyone with the row can compute: what an
/// attacker with database access would write (and the old code accepted).
fn plain_sha256(row: &AuditRow) -> String {
    let fields = json!([
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

/// Re-link and re-hash `rows[from..]` with plain SHA-256, optionally
/// dressing them as legacy rows (no key id, no fields hash).
fn forge(rows: &mut [AuditRow], from: usize, as_legacy: bool) {
    for i in from..rows.len() {
        if i > 0 {
            rows[i].prev_hash = rows[i - 1].hash.clone();
        }
        if as_legacy {
            rows[i].key_id = None;
            rows[i].fields_hash = None;
        }
        rows[i].hash = plain_sha256(&rows[i]);
    }
}

/// Overwrite a stored row with `row` (an attacker with write access).
async fn overwrite(db: &Db, row: &AuditRow) {
    let sql = "UPDATE audit_events SET action = $1, actor_id = $2, resource = $3, ip = $4, user_agent = $5, request_id = $6, metadata = $7, \
               prev_hash = $8, hash = $9, key_id = $10, fields_hash = $11, erased_at_ms = $12, at_ms = $15 WHERE chain = $13 AND seq = $14";
    agentry_db::on_pool!(db, pool => sqlx::query(sql)
        .bind(&row.action).bind(&row.actor_id).bind(&row.resource).bind(&row.ip).bind(&row.user_agent).bind(&row.request_id)
        .bind(&row.metadata).bind(&row.prev_hash).bind(&row.hash).bind(&row.key_id).bind(&row.fields_hash).bind(row.erased_at_ms)
        .bind(&row.chain).bind(row.seq).bind(row.at_ms)
        .execute(pool).await.map(drop))
    .unwrap();
}

async fn delete_from(db: &Db, chain: &str, seq: i64) {
    agentry_db::on_pool!(db, pool => sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq >= $2").bind(chain).bind(seq).execute(pool).await.map(drop)).unwrap();
}

async fn databases(dir: &tempfile::TempDir) -> Vec<Db> {
    let dbs = agentry_db::test_support::test_databases(dir.path()).await;
    for db in &dbs {
        db.migrate().await.unwrap();
    }
    dbs
}

#[tokio::test]
async fn a_rewritten_event_with_recomputed_plain_hashes_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(&dir).await {
        let backend = db.backend();
        let audit = Audit::with_keys(db.clone(), keys(KEY_A, &[]));
        for action in ["member.add", "role.change", "key.create"] {
            record(&audit, "t1", action).await;
        }
        let anchor = audit.anchor("t1", None).await.unwrap();
        let original = rows(&db, "t1").await;
        assert!(original.iter().all(|r| r.key_id.as_deref() == Some(audit.keys().current().id()) && r.fields_hash.is_some()), "{original:?}");

        // Change an action, recompute the hashes from there on: the keyed hash does not match.
        let mut forged = original.clone();
        forged[1].action = "member.remove".into();
        forge(&mut forged, 1, false);
        for row in &forged[1..] {
            overwrite(&db, row).await;
        }
        let v = audit.verify("t1").await.unwrap();
        assert!(!v.valid, "{backend:?}: {v:?}");
        assert_eq!(v.first_broken_seq, Some(2), "{v:?}");
        assert!(v.reason.as_deref().unwrap().contains("does not match its hash"), "{v:?}");

        // Dressed as pre-upgrade (legacy) rows: a legacy row cannot follow keyed ones.
        let mut forged = original.clone();
        forged[1].action = "member.remove".into();
        forge(&mut forged, 1, true);
        for row in &forged[1..] {
            overwrite(&db, row).await;
        }
        let v = audit.verify("t1").await.unwrap();
        assert_eq!(v.first_broken_seq, Some(2), "{backend:?}: {v:?}");
        assert!(v.reason.as_deref().unwrap().contains("legacy"), "{v:?}");

        // The whole chain rewritten as legacy (plain SHA-256 proves nothing
        // against a database writer): no keyed marker seals those rows, so
        // it does not verify, alone or against the anchor.
        let mut forged = original.clone();
        forged[1].action = "member.remove".into();
        forge(&mut forged, 0, true);
        for row in &forged {
            overwrite(&db, row).await;
        }
        let alone = audit.verify("t1").await.unwrap();
        assert!(!alone.valid && alone.anchor.is_none(), "{backend:?}: {alone:?}");
        assert_eq!(alone.first_broken_seq, Some(1), "{alone:?}");
        assert_eq!(alone.reason.as_deref(), Some("legacy rows not sealed by a keyed marker: written without the audit key"));
        let anchored = audit.verify_against("t1", Some(&anchor)).await.unwrap();
        assert!(!anchored.valid, "{backend:?}: {anchored:?}");
        assert_eq!(anchored.first_broken_seq, Some(1));

        // Nothing signs an anchor over the forged head.
        match audit.anchor("t1", None).await {
            Err(AnchorError::Broken(v)) => assert_eq!(v.first_broken_seq, Some(1), "{v:?}"),
            other => panic!("{backend:?}: anchored a tampered chain: {other:?}"),
        }
        match audit.anchor("t1", Some(&anchor)).await {
            Err(AnchorError::Broken(v)) => assert!(!v.valid, "{v:?}"),
            other => panic!("{backend:?}: anchored a tampered chain: {other:?}"),
        }
    }
}

#[tokio::test]
async fn rotation_adds_a_key_and_verify_accepts_any_key_held() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(&dir).await {
        let backend = db.backend();
        let under_a = Audit::with_keys(db.clone(), keys(KEY_A, &[]));
        record(&under_a, "t1", "one").await;
        record(&under_a, "t1", "two").await;
        // The master key is rotated to B; A is kept as a previous key.
        let under_b = Audit::with_keys(db.clone(), keys(KEY_B, &[KEY_A]));
        record(&under_b, "t1", "three").await;
        record(&under_b, "t1", "four").await;
        let (id_a, id_b) = (under_a.keys().current().id().to_owned(), under_b.keys().current().id().to_owned());
        assert_ne!(id_a, id_b);
        let stored: Vec<Option<String>> = rows(&db, "t1").await.into_iter().map(|r| r.key_id).collect();
        assert_eq!(stored, vec![Some(id_a.clone()), Some(id_a.clone()), Some(id_b.clone()), Some(id_b.clone())]);

        let both = under_b.verify("t1").await.unwrap();
        assert!(both.valid && both.events == 4, "{backend:?}: {both:?}");

        let only_b = Audit::with_keys(db.clone(), keys(KEY_B, &[])).verify("t1").await.unwrap();
        assert!(!only_b.valid);
        assert_eq!(only_b.first_broken_seq, Some(1), "{only_b:?}");
        let reason = only_b.reason.unwrap();
        assert!(reason.contains(&id_a) && reason.contains("does not hold"), "{reason}");

        let only_a = under_a.verify("t1").await.unwrap();
        assert_eq!(only_a.first_broken_seq, Some(3), "{only_a:?}");
        assert!(only_a.reason.unwrap().contains(&id_b));

        // The retired key A (say, leaked) appends after B took over: a break,
        // though A is still held for the events written under it.
        record(&under_a, "t1", "five").await;
        let retired = under_b.verify("t1").await.unwrap();
        assert!(!retired.valid, "{backend:?}: {retired:?}");
        assert_eq!(retired.first_broken_seq, Some(5), "{retired:?}");
        assert!(retired.reason.unwrap().contains("written under a retired key after its successor"));
        // Still a break once a third key is current and both A and B are previous keys.
        let under_c = Audit::with_keys(db.clone(), keys(KEY_C, &[KEY_A, KEY_B]));
        assert_eq!(under_c.verify("t1").await.unwrap().first_broken_seq, Some(5));
    }
}

/// Write `count` legacy rows (plain SHA-256, no key id) to `chain`, as a
/// version before keyed chains did.
async fn write_legacy(db: &Db, chain: &str, count: i64) {
    let mut prev_hash = GENESIS.to_owned();
    for seq in 1..=count {
        let mut row = AuditRow {
            chain: chain.into(),
            seq,
            at_ms: 1_700_000_000_000 + seq,
            actor_type: "user".into(),
            actor_id: Some("u1".into()),
            action: "member.add".into(),
            resource: None,
            outcome: "success".into(),
            ip: None,
            user_agent: None,
            request_id: None,
            metadata: "{}".into(),
            prev_hash: prev_hash.clone(),
            hash: String::new(),
            key_id: None,
            fields_hash: None,
            erased_at_ms: None,
        };
        row.hash = plain_sha256(&row);
        prev_hash = row.hash.clone();
        db.insert_audit_event(&row).await.unwrap();
    }
}

/// The upgrade path: legacy rows written before the upgrade do not verify
/// on their own (anyone with database access could have written them), and
/// verify once the upgraded server's start seals them with a keyed marker —
/// once, however often it restarts. A write to a chain that still ends in
/// legacy rows seals it first.
#[tokio::test]
async fn legacy_rows_from_before_the_upgrade_verify_after_a_restart_seals_them() {
    let mut backends = vec![None];
    if let Some(url) = agentry_db::test_support::fresh_postgres_url().await {
        backends.push(Some(url));
    }
    for postgres_url in backends {
        let dir = tempfile::tempdir().unwrap();
        let url = postgres_url.clone().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("agentry.db").display()));
        let db = Db::connect(&url).await.unwrap();
        db.migrate().await.unwrap();
        write_legacy(&db, "t1", 2).await;
        write_legacy(&db, "t2", 3).await;
        let audit = Audit::with_keys(db.clone(), keys(MASTER_KEY, &[]));
        let before = audit.verify("t1").await.unwrap();
        assert!(!before.valid && before.first_broken_seq == Some(1), "{url}: {before:?}");
        assert!(before.reason.unwrap().contains("legacy rows not sealed by a keyed marker"));

        // A write before any restart seals the chain first.
        assert_eq!(record(&audit, "t2", "before.restart").await, 5);
        let t2 = rows(&db, "t2").await;
        assert_eq!((t2[3].action.as_str(), t2[3].actor_type.as_str(), t2[3].prev_hash.as_str()), (KEYED_MARKER, "system", t2[2].hash.as_str()));
        let v = audit.verify("t2").await.unwrap();
        assert!(v.valid && (v.events, v.legacy_events) == (5, 3), "{url}: {v:?}");

        // The upgraded server starts (twice): t1 is sealed once.
        let options = || TestOptions { postgres_url: postgres_url.clone(), ..TestOptions::default() };
        let app = spawn_app_with(TestOptions { data_dir: Some(dir), ..options() }).await;
        let app = app.restart(options()).await;
        let t1 = rows(&db, "t1").await;
        assert_eq!(t1.len(), 3, "{url}: {t1:?}");
        assert_eq!((t1[2].action.as_str(), t1[2].prev_hash.as_str()), (KEYED_MARKER, t1[1].hash.as_str()));
        assert_eq!(t1[2].key_id.as_deref(), Some(audit.keys().current().id()));
        assert_eq!(rows(&db, "t2").await.len(), 5, "a chain that ends keyed is left alone");
        let v = audit.verify("t1").await.unwrap();
        assert!(v.valid, "{url}: {v:?}");
        assert_eq!((v.events, v.legacy_events), (3, 2));
        assert_eq!(record(&audit, "t1", "after.upgrade").await, 4);
        assert!(audit.verify("t1").await.unwrap().valid);

        // Chains created after the upgrade start keyed.
        record(&audit, "t3", "new.chain").await;
        let t3 = rows(&db, "t3").await;
        assert!(t3.len() == 1 && t3[0].key_id.is_some(), "{t3:?}");
        app.shutdown.cancel();
        let _ = app.server.await;
        db.close().await;
    }
}

/// Erase `row`'s personal fields as the erasure would (keeping `fields_hash`).
fn erase_fields(mut row: AuditRow) -> AuditRow {
    (row.actor_id, row.resource, row.ip, row.user_agent, row.request_id) = (None, None, None, None, None);
    row.metadata = "{}".into();
    row.erased_at_ms = Some(1);
    row
}

#[tokio::test]
async fn an_erased_event_verifies_only_when_an_erase_event_names_it() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(&dir).await {
        let backend = db.backend();
        let audit = Audit::with_keys(db.clone(), keys(KEY_A, &[]));
        for action in ["one", "two", "three"] {
            record(&audit, "t1", action).await;
        }
        // A database writer marks an event erased (hiding who did what): a break.
        let original = rows(&db, "t1").await.remove(1);
        let erased = erase_fields(original.clone());
        overwrite(&db, &erased).await;
        let v = audit.verify("t1").await.unwrap();
        assert!(!v.valid, "{backend:?}: {v:?}");
        assert_eq!(v.first_broken_seq, Some(2), "{v:?}");
        assert!(v.reason.unwrap().contains(ERASE_ACTION));

        // Recorded in the chain by a keyed erase event naming the seq and the fields hash: it verifies.
        let fields_hash = original.fields_hash.clone().unwrap();
        let erase = AuditEvent {
            tenant: Some("t1"),
            actor: Actor::System,
            action: AuditAction::AuditErase,
            resource: None,
            outcome: Outcome::Success,
            meta: &RequestMeta::default(),
            metadata: erase_metadata(2, &fields_hash),
        };
        assert_eq!(audit.record(erase).await.unwrap(), 4);
        let v = audit.verify("t1").await.unwrap();
        assert!(v.valid, "{backend:?}: {v:?}");
        assert_eq!((v.events, v.erased_events), (4, 1));

        // An erase event names one event: erasing another one as well is a break.
        let third = rows(&db, "t1").await.remove(2);
        overwrite(&db, &erase_fields(third.clone())).await;
        assert_eq!(audit.verify("t1").await.unwrap().first_broken_seq, Some(3));
        overwrite(&db, &third).await;
        assert!(audit.verify("t1").await.unwrap().valid);

        let mut planted = erased.clone();
        planted.ip = Some("10.9.9.9".into());
        overwrite(&db, &planted).await;
        let v = audit.verify("t1").await.unwrap();
        assert_eq!(v.first_broken_seq, Some(2), "{v:?}");
        assert!(v.reason.unwrap().contains("erased"));

        let mut unmarked = erased;
        unmarked.erased_at_ms = None;
        overwrite(&db, &unmarked).await;
        assert_eq!(audit.verify("t1").await.unwrap().first_broken_seq, Some(2));
    }
}

#[tokio::test]
async fn an_anchor_detects_truncation_and_a_forged_anchor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(&dir).await {
        let backend = db.backend();
        let audit = Audit::with_keys(db.clone(), keys(KEY_A, &[]));
        for i in 0..5 {
            record(&audit, "t1", &format!("event.{i}")).await;
        }
        let anchor = audit.anchor("t1", None).await.unwrap();
        assert_eq!((anchor.chain.as_str(), anchor.seq, anchor.key_id.as_str()), ("t1", 5, audit.keys().current().id()));
        let held = audit.verify_against("t1", Some(&anchor)).await.unwrap();
        assert!(held.valid && held.anchored_seq == Some(5), "{backend:?}: {held:?}");

        // The newest events deleted: still a valid chain on its own, truncated against the anchor.
        delete_from(&db, "t1", 4).await;
        let alone = audit.verify("t1").await.unwrap();
        assert!(alone.valid && alone.events == 3, "{alone:?}");
        let truncated = audit.verify_against("t1", Some(&anchor)).await.unwrap();
        assert!(!truncated.valid, "{backend:?}: {truncated:?}");
        assert_eq!(truncated.first_broken_seq, Some(4));
        assert!(truncated.reason.as_deref().unwrap().contains("truncated"), "{truncated:?}");

        // Written past the anchor again: the anchored event is not there any more.
        for i in 0..3 {
            record(&audit, "t1", &format!("again.{i}")).await;
        }
        let rewritten = audit.verify_against("t1", Some(&anchor)).await.unwrap();
        assert_eq!(rewritten.first_broken_seq, Some(5), "{rewritten:?}");
        assert!(rewritten.reason.unwrap().contains("not the anchored one"));

        // Forged anchors: an edited one, one signed with another key, one for another chain.
        let earlier = Anchor { seq: 3, ..anchor.clone() };
        let forged = audit.verify_against("t1", Some(&earlier)).await.unwrap();
        assert!(!forged.valid && forged.reason.as_deref().unwrap().contains("forged"), "{forged:?}");
        let foreign = Audit::with_keys(db.clone(), keys(KEY_B, &[])).anchor("t9", None).await.unwrap();
        let refused = audit.verify_against("t1", Some(&foreign)).await.unwrap();
        assert!(!refused.valid && refused.reason.as_deref().unwrap().contains("does not hold"), "{refused:?}");
        let other_chain = audit.verify_against("t2", Some(&audit.anchor("t1", None).await.unwrap())).await.unwrap();
        assert!(!other_chain.valid && other_chain.reason.unwrap().contains("another chain"));
    }
}

fn encode(anchor: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(anchor.to_string())
}

#[tokio::test]
async fn the_verify_api_signs_the_head_and_checks_an_anchor() {
    let app = spawn_app().await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    for i in 0..3 {
        app.add_member(&admin, "acme", &format!("member{i}@example.com"), "viewer").await;
    }
    let verify = async |query: &str| -> Value {
        let response = app.with(Method::GET, &format!("/api/v1/tenants/acme/audit/verify{query}"), &admin).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    };
    let events: Value = app.with(Method::GET, "/api/v1/tenants/acme/audit", &admin).send().await.unwrap().json().await.unwrap();
    for event in events["data"].as_array().unwrap() {
        assert_eq!(event["key_id"].as_str().unwrap().len(), 16, "{event}");
        assert_eq!(event["fields_hash"].as_str().unwrap().len(), 64, "{event}");
    }

    let clean = verify("").await;
    assert_eq!(clean["valid"], true, "{clean}");
    let anchor = clean["anchor"].clone();
    assert_eq!(anchor["chain"], tenant.as_str());
    assert_eq!(anchor["seq"], clean["events"]);
    let seq = anchor["seq"].as_i64().unwrap();
    let held = verify(&format!("?anchor={}", encode(&anchor))).await;
    assert_eq!(held["valid"], true, "{held}");
    assert_eq!(held["anchored_seq"], seq);

    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq >= $2").bind(&tenant).bind(seq - 1).execute(&pool).await.unwrap();
    assert_eq!(verify("").await["valid"], true, "a shorter chain is valid on its own");
    let truncated = verify(&format!("?anchor={}", encode(&anchor))).await;
    assert_eq!(truncated["valid"], false, "{truncated}");
    assert!(truncated["reason"].as_str().unwrap().contains("truncated"), "{truncated}");
    assert!(truncated.get("anchor").is_none(), "no anchor is signed for a broken chain");

    let mut forged = anchor.clone();
    forged["seq"] = json!(seq - 2);
    let refused = verify(&format!("?anchor={}", encode(&forged))).await;
    assert_eq!(refused["valid"], false);
    assert!(refused["reason"].as_str().unwrap().contains("forged"), "{refused}");

    let platform = app.with(Method::GET, &format!("/api/v1/admin/audit/verify?anchor={}", encode(&anchor)), &admin).send().await.unwrap();
    let platform: Value = platform.json().await.unwrap();
    assert!(platform["reason"].as_str().unwrap().contains("another chain"), "{platform}");

    let garbage = app.with(Method::GET, "/api/v1/tenants/acme/audit/verify?anchor=not*base64", &admin).send().await.unwrap();
    assert_error(garbage, 400, "invalid_request").await;
    let not_an_anchor = app.with(Method::GET, &format!("/api/v1/tenants/acme/audit/verify?anchor={}", encode(&json!({"seq": 1}))), &admin).send().await.unwrap();
    assert_error(not_an_anchor, 400, "invalid_request").await;
}

const BIN: &str = env!("CARGO_BIN_EXE_agentry");

fn agentry(data_dir: &std::path::Path, master_key: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("AGENTRY_MASTER_KEY", master_key)
        .env("AGENTRY_BOOTSTRAP_PASSWORD", "a long password 123")
        .env_remove("AGENTRY_DATABASE_URL")
        .output()
        .unwrap()
}

/// `agentry audit anchor` then `audit verify --anchor`: holds, then catches
/// truncation and a forged anchor; after a master-key rotation the chain
/// verifies only once the previous key is listed in `master.key.previous`.
/// `audit anchor` signs only a chain that verifies (against `--after`, an
/// earlier anchor, when given).
#[tokio::test]
async fn the_cli_anchors_and_verifies_a_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path();
    let bootstrap = agentry(data_dir, MASTER_KEY, &["admin", "bootstrap", "--tenant", "acme", "--email", "a@example.com"]);
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
    let tenant_id = serde_json::from_slice::<Value>(&bootstrap.stdout).unwrap()["tenant_id"].as_str().unwrap().to_owned();

    let anchored = agentry(data_dir, MASTER_KEY, &["audit", "anchor", "--tenant", "acme"]);
    assert!(anchored.status.success(), "{}", String::from_utf8_lossy(&anchored.stderr));
    let anchor: Value = serde_json::from_slice(&anchored.stdout).unwrap();
    assert_eq!(anchor["chain"], tenant_id.as_str());
    for field in ["seq", "hash", "at_ms", "key_id", "signature"] {
        assert!(anchor.get(field).is_some(), "{field} in {anchor}");
    }
    let anchor_file = data_dir.join("anchor.json");
    std::fs::write(&anchor_file, &anchored.stdout).unwrap();
    let anchor_path = anchor_file.to_str().unwrap();

    let held = agentry(data_dir, MASTER_KEY, &["audit", "verify", "--anchor", anchor_path]);
    assert!(held.status.success(), "{}", String::from_utf8_lossy(&held.stderr));
    let held: Value = serde_json::from_slice(&held.stdout).unwrap();
    assert_eq!((held["valid"].clone(), held["anchored_seq"].clone()), (json!(true), anchor["seq"].clone()));
    let platform = agentry(data_dir, MASTER_KEY, &["audit", "verify"]);
    assert!(platform.status.success(), "{}", String::from_utf8_lossy(&platform.stderr));
    let again = agentry(data_dir, MASTER_KEY, &["audit", "anchor", "--after", anchor_path]);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((again["chain"].clone(), again["seq"].clone()), (anchor["chain"].clone(), anchor["seq"].clone()));

    // Rotation: a new master key alone does not hold the key the chain was written with.
    let rotated = agentry(data_dir, KEY_B, &["audit", "verify", "--tenant", "acme"]);
    assert!(!rotated.status.success());
    assert!(String::from_utf8_lossy(&rotated.stderr).contains(anchor["key_id"].as_str().unwrap()), "{}", String::from_utf8_lossy(&rotated.stderr));
    std::fs::write(data_dir.join("master.key.previous"), format!("# before the rotation\n{MASTER_KEY}\n")).unwrap();
    let with_previous = agentry(data_dir, KEY_B, &["audit", "verify", "--tenant", "acme", "--anchor", anchor_path]);
    assert!(with_previous.status.success(), "{}", String::from_utf8_lossy(&with_previous.stderr));

    // A forged anchor (edited to an earlier head) is refused.
    let mut forged = anchor.clone();
    forged["seq"] = json!(anchor["seq"].as_i64().unwrap() - 1);
    let forged_file = data_dir.join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let refused = agentry(data_dir, MASTER_KEY, &["audit", "verify", "--anchor", forged_file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("forged"), "{}", String::from_utf8_lossy(&refused.stderr));

    // The newest event deleted: the chain alone still holds, the anchor does not.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", data_dir.join("agentry.db").display())).await.unwrap();
    sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq = $2").bind(&tenant_id).bind(anchor["seq"].as_i64().unwrap()).execute(&pool).await.unwrap();
    pool.close().await;
    assert!(agentry(data_dir, MASTER_KEY, &["audit", "verify", "--tenant", "acme"]).status.success());
    let truncated = agentry(data_dir, MASTER_KEY, &["audit", "verify", "--anchor", anchor_path]);
    assert!(!truncated.status.success());
    let report: Value = serde_json::from_slice(&truncated.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert!(report["reason"].as_str().unwrap().contains("truncated"), "{report}");

    // Anchoring after the earlier anchor refuses the truncated chain: it prints the verification, signs nothing.
    let refused = agentry(data_dir, MASTER_KEY, &["audit", "anchor", "--after", anchor_path]);
    assert!(!refused.status.success());
    let report: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert!(report["valid"] == false && report.get("signature").is_none() && report.get("anchor").is_none(), "{report}");
    assert!(report["reason"].as_str().unwrap().contains("truncated"), "{report}");
    // A tampered chain is not anchored either (a cron job must not bless it).
    let db = Db::connect(&format!("sqlite://{}", data_dir.join("agentry.db").display())).await.unwrap();
    let audit = Audit::with_keys(db.clone(), keys(MASTER_KEY, &[]));
    assert_eq!((record(&audit, &tenant_id, "one").await, record(&audit, &tenant_id, "two").await), (1, 2));
    let mut tampered = rows(&db, &tenant_id).await.remove(0);
    tampered.action = "tampered".into();
    overwrite(&db, &tampered).await;
    db.close().await;
    let tampered = agentry(data_dir, MASTER_KEY, &["audit", "anchor", "--tenant", "acme"]);
    assert!(!tampered.status.success());
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("not anchored"), "{}", String::from_utf8_lossy(&tampered.stderr));
    let report: Value = serde_json::from_slice(&tampered.stdout).unwrap();
    assert_eq!((report["valid"].clone(), report["first_broken_seq"].clone()), (json!(false), json!(1)), "{report}");
}

/// Retention deletes a chain's oldest events after a keyed prune event
/// naming the last one: the chain still verifies from where it starts now.
/// Deleting old events without one, or a prune event that names another
/// cut, is a break; an anchor older than the cut cannot be checked.
#[tokio::test]
async fn a_pruned_chain_verifies_only_when_a_prune_event_records_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    for db in databases(&dir).await {
        let backend = db.backend();
        let audit = Audit::with_keys(db.clone(), keys(KEY_A, &[]));
        for action in ["one", "two", "three"] {
            record(&audit, "t1", action).await;
        }
        let old_anchor = audit.anchor("t1", None).await.unwrap();
        // A database writer who moves an event back in time cannot get it pruned: the chain must verify first.
        let original = rows(&db, "t1").await.remove(1);
        let mut backdated = original.clone();
        backdated.at_ms = 0;
        overwrite(&db, &backdated).await;
        let refused = audit.prune("t1", 1).await.unwrap_err();
        assert!(refused.to_string().contains("does not verify"), "{backend:?}: {refused}");
        assert_eq!(rows(&db, "t1").await.len(), 3, "nothing was deleted or appended");
        overwrite(&db, &original).await;
        // Without the audit key, deleting the oldest events is a break.
        let kept = rows(&db, "t1").await;
        agentry_db::on_pool!(&db, pool => sqlx::query("DELETE FROM audit_events WHERE chain = 't1' AND seq <= 2").execute(pool).await.map(drop)).unwrap();
        let v = audit.verify("t1").await.unwrap();
        assert_eq!((v.valid, v.first_broken_seq), (false, Some(3)), "{backend:?}: {v:?}");
        assert!(v.reason.unwrap().contains(PRUNE_ACTION));
        for row in &kept[..2] {
            db.insert_audit_event(row).await.unwrap();
        }
        assert!(audit.verify("t1").await.unwrap().valid);

        // Retention: everything written before now goes, the prune event (seq 4) stays.
        let deleted = audit.prune("t1", chrono::Utc::now().timestamp_millis() + 1).await.unwrap();
        assert_eq!(deleted, 3, "{backend:?}");
        let v = audit.verify("t1").await.unwrap();
        assert!(v.valid, "{backend:?}: {v:?}");
        assert_eq!((v.events, v.pruned_through_seq), (1, Some(3)), "{v:?}");
        let v = audit.verify_against("t1", Some(&old_anchor)).await.unwrap();
        assert_eq!(v.anchored_seq, Some(3), "the anchored head is the cut itself: its hash is the one the prune event names: {v:?}");
        record(&audit, "t1", "four").await;
        assert!(audit.verify("t1").await.unwrap().valid);

        // A second cut; an anchor older than it can no longer be checked.
        let deleted = audit.prune("t1", chrono::Utc::now().timestamp_millis() + 1).await.unwrap();
        assert_eq!(deleted, 2, "{backend:?}");
        let v = audit.verify_against("t1", Some(&old_anchor)).await.unwrap();
        assert!(!v.valid && v.reason.as_deref().unwrap().contains("older than the oldest event kept"), "{v:?}");
        assert!(audit.verify("t1").await.unwrap().valid);

        // The first event kept cannot be relinked to pretend another cut.
        let first = rows(&db, "t1").await.remove(0);
        let mut forged = first.clone();
        forged.prev_hash = "f".repeat(64);
        overwrite(&db, &forged).await;
        assert!(!audit.verify("t1").await.unwrap().valid, "{backend:?}");
    }
}
