//! The storage suite, run against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentry_db::model_calls::CallLogConfig;
use agentry_db::{CallLogWriter, Db, ModelCallRecord};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn record(id: &str, created_at_ms: i64) -> ModelCallRecord {
    ModelCallRecord {
        id: id.into(),
        request_id: format!("req_{id}"),
        endpoint: "/v1/chat/completions".into(),
        model: "gpt-4o".into(),
        provider: "openai_compat".into(),
        status: "success".into(),
        stream: true,
        input_tokens: 10,
        output_tokens: 20,
        latency_ms: 120,
        ttft_ms: Some(30),
        created_at_ms,
        tenant_id: Some("t1".into()),
        user_id: Some("u1".into()),
        api_key_id: None,
        agent: None,
        cached_tokens: 0,
        cache_hit: false,
        cost_nusd: 350_000,
        saved_nusd: 0,
    }
}

#[tokio::test]
async fn migrations_apply_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        assert_eq!(db.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5], "{:?}", db.backend());
        db.ping().await.unwrap();
    }
}

#[tokio::test]
async fn model_calls_round_trip_and_ignore_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let records = vec![record("a", 1_000), record("b", 2_000), record("c", 3_000)];
        db.insert_model_calls(&records).await.unwrap();
        db.insert_model_calls(&records[..1]).await.unwrap();
        let recent = db.recent_model_calls(10).await.unwrap();
        assert_eq!(recent.len(), 3, "{:?}", db.backend());
        assert_eq!(recent[0], records[2]);
        assert_eq!(recent[2], records[0]);
        assert_eq!(db.recent_model_calls(1).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn writer_batches_and_flushes_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let stop = CancellationToken::new();
        let config = CallLogConfig { capacity: 10_000, batch_size: 100, flush_interval: Duration::from_secs(3600) };
        let (writer, task) = CallLogWriter::start(db.clone(), config, stop.clone());
        for i in 0..250 {
            writer.record(record(&format!("r{i:04}"), i));
        }
        // Let the writer start a partial batch (waiting an hour for more), then stop it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(db.recent_model_calls(1000).await.unwrap().len(), 250, "{:?}", db.backend());
    }
}

#[tokio::test]
async fn writer_flushes_within_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let config = CallLogConfig { capacity: 100, batch_size: 100, flush_interval: Duration::from_millis(50) };
        let (writer, _task) = CallLogWriter::start(db.clone(), config, CancellationToken::new());
        writer.record(record("x", 1));
        let mut found = 0;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            found = db.recent_model_calls(10).await.unwrap().len();
            if found == 1 {
                break;
            }
        }
        assert_eq!(found, 1, "{:?}", db.backend());
    }
}

#[tokio::test]
async fn unsupported_url_is_a_clear_error() {
    let error = Db::connect("mysql://localhost/x").await.unwrap_err();
    assert!(error.to_string().contains("unsupported database URL"));
}
