//! The audit chain under concurrency, on SQLite and PostgreSQL: writers in
//! two `Audit` instances over one database (two replicas) never fork or
//! break the chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentry_core::audit::{Actor, Audit, AuditEvent, Outcome, RequestMeta};
use agentry_types::AuditAction;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_on_two_replicas_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let replicas = [Audit::new(db.clone()), Audit::new(db.clone())];
        let mut tasks = Vec::new();
        for i in 0..40 {
            let audit = replicas[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                let meta = RequestMeta { ip: Some("10.0.0.1".into()), user_agent: None, request_id: Some(format!("req_{i}")) };
                let event = AuditEvent {
                    tenant: Some("t1"),
                    actor: Actor::User(format!("u{i}")),
                    action: AuditAction::AuditExport,
                    resource: None,
                    outcome: Outcome::Success,
                    meta: &meta,
                    metadata: serde_json::json!({ "i": i }),
                };
                audit.record(event).await.unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for task in tasks {
            seqs.push(task.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=40).collect::<Vec<i64>>(), "{:?}", db.backend());
        let verification = replicas[0].verify("t1").await.unwrap();
        assert!(verification.valid, "{verification:?}");
        assert_eq!(verification.events, 40);
        // Another tenant's chain is separate and empty.
        assert_eq!(replicas[1].verify("t2").await.unwrap().events, 0);
    }
}
