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
        assert_eq!(db.applied_migrations().await.unwrap(), vec![1, 2, 3, 4, 5, 6, 7, 8], "{:?}", db.backend());
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

/// A claimed ingestion job is invisible to other workers until its lease
/// ends; then it is claimed again (a crashed worker's job is not lost), and
/// a finished job's version becomes current in one step.
#[tokio::test]
async fn ingestion_jobs_are_leased_and_reclaimed() {
    use agentry_db::identity::TenantRow;
    use agentry_db::knowledge::{CollectionRow, DocumentRow, JobRow, NewChunk, NewVersion, VersionContent, VersionRow};

    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        db.insert_tenant(&TenantRow { id: "t1".into(), slug: "t1".into(), name: "T1".into(), mfa_required: false, created_at_ms: 0 }).await.unwrap();
        let collection = CollectionRow {
            id: "c1".into(),
            tenant_id: "t1".into(),
            name: "docs".into(),
            description: String::new(),
            chunk_max_tokens: 250,
            chunk_overlap_tokens: 32,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        db.insert_collection(&collection).await.unwrap();
        assert!(matches!(db.insert_collection(&CollectionRow { id: "c2".into(), ..collection }).await, Err(agentry_db::DbError::Conflict { .. })));
        let document = DocumentRow {
            id: "d1".into(),
            tenant_id: "t1".into(),
            collection_id: "c1".into(),
            title: "Doc".into(),
            source: "doc.txt".into(),
            metadata: "{}".into(),
            acl: "{}".into(),
            current_version: None,
            latest_version: 1,
            status: "queued".into(),
            error: None,
            created_by: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let version = VersionRow {
            document_id: "d1".into(),
            version: 1,
            content_hash: Some("h".into()),
            format: Some("text".into()),
            size_bytes: 5,
            source_url: None,
            status: "queued".into(),
            error: None,
            chunk_count: 0,
            created_at_ms: 0,
        };
        let job = JobRow {
            id: "j1".into(),
            tenant_id: "t1".into(),
            document_id: "d1".into(),
            version: 1,
            status: "queued".into(),
            attempts: 0,
            run_after_ms: 1_000,
            error: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        db.insert_document(&document, NewVersion { version: &version, content: Some(b"hello"), job: &job }).await.unwrap();
        assert!(db.claim_ingest_job(999, 60_000).await.unwrap().is_none(), "not due yet");
        let claimed = db.claim_ingest_job(1_000, 60_000).await.unwrap().unwrap();
        assert_eq!((claimed.id.as_str(), claimed.attempts, claimed.status.as_str()), ("j1", 1, "running"));
        assert!(db.claim_ingest_job(2_000, 60_000).await.unwrap().is_none(), "leased");
        // The worker "died": after the lease the job is claimed again.
        let again = db.claim_ingest_job(61_001, 60_000).await.unwrap().unwrap();
        assert_eq!(again.attempts, 2);
        let chunk = NewChunk {
            ordinal: 0,
            content_hash: "c".into(),
            text: "hello".into(),
            heading_path: "[]".into(),
            page: None,
            token_count: 1,
            embedding: vec![0, 0, 128, 63],
        };
        let first = db.store_chunks(&again, std::slice::from_ref(&chunk)).await.unwrap();
        // A re-run replaces what a crashed attempt stored.
        let ids = db.store_chunks(&again, &[chunk]).await.unwrap();
        assert_ne!(first, ids);
        assert_eq!(db.chunk_ids("d1", Some(1)).await.unwrap(), ids);
        assert!(db.visible_chunks("t1", &ids).await.unwrap().is_empty(), "not visible before the version is current");
        assert_eq!(db.finish_ingest(&again, 1, 70_000).await.unwrap(), None);
        let visible = db.visible_chunks("t1", &ids).await.unwrap();
        assert_eq!(visible.len(), 1);
        assert!(db.visible_chunks("other", &ids).await.unwrap().is_empty(), "tenant scoped");
        let stored = db.document("t1", "d1").await.unwrap().unwrap();
        assert_eq!((stored.current_version, stored.status.as_str()), (Some(1), "succeeded"));
        assert_eq!(db.embeddings_by_hash("d1").await.unwrap(), vec![("c".to_owned(), vec![0, 0, 128, 63])]);
        assert!(db.claim_ingest_job(200_000, 60_000).await.unwrap().is_none(), "finished jobs are not claimed");

        // A version uploaded by URL has no bytes until the worker stores what it fetched, once.
        let url = "https://example.com/doc.md";
        let pending = VersionRow { version: 2, content_hash: None, format: None, size_bytes: 0, source_url: Some(url.into()), ..version };
        let job2 = JobRow { id: "j2".into(), version: 2, ..job };
        db.add_version("t1", NewVersion { version: &pending, content: None, job: &job2 }, "Doc", Some(url), 80_000).await.unwrap();
        assert_eq!(db.document("t1", "d1").await.unwrap().unwrap().source, url);
        assert_eq!(db.version_content("d1", 2).await.unwrap(), Some(VersionContent::Pending { url: url.into() }));
        assert!(db.store_fetched_content("d1", 2, "markdown", "h2", b"# Doc").await.unwrap());
        assert!(!db.store_fetched_content("d1", 2, "text", "h3", b"other").await.unwrap(), "stored once");
        assert_eq!(db.version_content("d1", 2).await.unwrap(), Some(VersionContent::Stored { format: "markdown".into(), bytes: b"# Doc".to_vec() }));
        let listed = db.versions_of_document("d1").await.unwrap();
        assert_eq!((listed[1].format.as_deref(), listed[1].size_bytes, listed[1].source_url.as_deref()), (Some("markdown"), 5, Some(url)));
        assert_eq!(db.delete_document("t1", "d1").await.unwrap(), Some(ids));
        assert!(db.document("t1", "d1").await.unwrap().is_none());
    }
}
