//! The storage suite, run against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use agentry_db::knowledge::{CollectionRow, DocumentRow, JobRow, VersionRow};
use agentry_db::model_calls::CallLogConfig;
use agentry_db::{CallLogWriter, Db, ModelCallRecord};
use agentry_types::{DocumentStatus, JobKind, JobStatus};
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

/// A collection `c1` of tenant `t1` with document `d1` at version 1 and its queued index job `j1`.
fn queued_document(title: &str, source: &str, format: &str, size_bytes: i64, run_after_ms: i64) -> (CollectionRow, DocumentRow, VersionRow, JobRow) {
    let collection = CollectionRow {
        id: "c1".into(),
        tenant_id: "t1".into(),
        name: "docs".into(),
        description: String::new(),
        chunk_max_tokens: 250,
        chunk_overlap_tokens: 32,
        created_at_ms: 0,
        updated_at_ms: 0,
        quality: "{}".into(),
    };
    let document = DocumentRow {
        id: "d1".into(),
        tenant_id: "t1".into(),
        collection_id: "c1".into(),
        title: title.into(),
        source: source.into(),
        metadata: "{}".into(),
        acl: "{}".into(),
        current_version: None,
        latest_version: 1,
        status: DocumentStatus::Queued,
        error: None,
        created_by: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        summary: None,
    };
    let version = VersionRow {
        document_id: "d1".into(),
        version: 1,
        content_hash: Some("h".into()),
        format: Some(format.into()),
        size_bytes,
        source_url: None,
        status: DocumentStatus::Queued,
        error: None,
        chunk_count: 0,
        created_at_ms: 0,
        summary: None,
        summary_status: None,
        summary_error: None,
        origin: "upload".into(),
        connector: None,
        schedule_id: None,
        collected_by: None,
        discovered_from: None,
        fetched_at_ms: None,
        parent_version: None,
        quality_check: None,
    };
    let job = JobRow {
        id: "j1".into(),
        tenant_id: "t1".into(),
        document_id: "d1".into(),
        version: 1,
        status: JobStatus::Queued,
        attempts: 0,
        run_after_ms,
        error: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        kind: JobKind::Index,
        owner: Some("user:u1".into()),
        max_attempts: 5,
        claims: 0,
    };
    (collection, document, version, job)
}

#[tokio::test]
async fn migrations_apply_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        db.migrate().await.unwrap();
        assert_eq!(db.applied_migrations().await.unwrap(), (1..=22).collect::<Vec<i64>>(), "{:?}", db.backend());
        db.ping().await.unwrap();
    }
}

/// Every column that names a person is in the map that drives the data
/// export and the erasure, and the map names only columns that exist: a
/// store added later cannot be forgotten by either.
#[tokio::test]
async fn every_column_that_names_a_person_is_in_the_personal_data_map() {
    use agentry_db::privacy::{EXPORTED_CHILDREN, PERSON_COLUMN_NAMES, PERSONAL_COLUMNS};
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let schema = db.schema_columns().await.unwrap();
        let has = |table: &str, column: &str| schema.iter().any(|(t, c)| t == table && c == column);
        let unmapped: Vec<&(String, String)> = schema
            .iter()
            .filter(|(table, column)| PERSON_COLUMN_NAMES.contains(&column.as_str()) && !PERSONAL_COLUMNS.iter().any(|c| c.table == table && c.column == column))
            .collect();
        assert!(unmapped.is_empty(), "columns naming a person missing from agentry_db::privacy::PERSONAL_COLUMNS ({:?}): {unmapped:?}", db.backend());
        for c in PERSONAL_COLUMNS {
            assert!(has(c.table, c.column), "{}.{} is mapped but does not exist ({:?})", c.table, c.column, db.backend());
            for (child, parent_id) in c.children {
                assert!(has(child, parent_id), "{child}.{parent_id} ({:?})", db.backend());
            }
        }
        for (child, parent_id, parent, parent_column) in EXPORTED_CHILDREN {
            assert!(has(child, parent_id) && has(parent, parent_column), "{child} of {parent} ({:?})", db.backend());
        }
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

/// A full batch (the one statement shape kept prepared) is written, and
/// written once when the same batch is flushed again.
#[tokio::test]
async fn a_full_batch_is_written_once_even_when_flushed_twice() {
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let full = CallLogConfig::default().batch_size;
        let batch: Vec<_> = (0..full).map(|i| record(&format!("f{i:04}"), i as i64)).collect();
        db.insert_model_calls(&batch).await.unwrap();
        db.insert_model_calls(&batch).await.unwrap();
        assert_eq!(db.recent_model_calls(10 * full as i64).await.unwrap().len(), full, "{:?}", db.backend());
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
    use agentry_db::knowledge::{NewChunk, NewVersion, VersionContent};

    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        db.insert_tenant(&TenantRow { id: "t1".into(), slug: "t1".into(), name: "T1".into(), mfa_required: false, created_at_ms: 0 }).await.unwrap();
        let (collection, document, version, job) = queued_document("Doc", "doc.txt", "text", 5, 1_000);
        db.insert_collection(&collection).await.unwrap();
        assert!(matches!(db.insert_collection(&CollectionRow { id: "c2".into(), ..collection }).await, Err(agentry_db::DbError::Conflict { .. })));
        db.insert_document(&document, NewVersion { version: &version, content: Some(b"hello"), job: &job }).await.unwrap();
        assert!(db.claim_ingest_job(999, 60_000, 5).await.unwrap().is_none(), "not due yet");
        let claimed = db.claim_ingest_job(1_000, 60_000, 5).await.unwrap().unwrap();
        assert_eq!((claimed.id.as_str(), claimed.attempts, claimed.status.as_str()), ("j1", 1, "running"));
        assert!(db.claim_ingest_job(2_000, 60_000, 5).await.unwrap().is_none(), "leased");
        // The worker "died": after the lease the job is claimed again.
        let again = db.claim_ingest_job(61_001, 60_000, 5).await.unwrap().unwrap();
        assert_eq!(again.attempts, 2);
        let chunk = NewChunk { ordinal: 0, content_hash: "c".into(), text: "hello".into(), heading_path: "[]".into(), page: None, token_count: 1, embedding: vec![0, 0, 128, 63] };
        let first = db.store_chunks(&again, std::slice::from_ref(&chunk)).await.unwrap();
        // A re-run replaces what a crashed attempt stored.
        let ids = db.store_chunks(&again, std::slice::from_ref(&chunk)).await.unwrap();
        assert_ne!(first, ids);
        assert_eq!(db.chunk_ids("d1", Some(1)).await.unwrap(), ids);
        assert!(db.visible_chunks("t1", &ids).await.unwrap().is_empty(), "not visible before the version is current");
        let summary_job = JobRow { id: "j1s".into(), kind: JobKind::Summary, run_after_ms: 70_000, ..job.clone() };
        assert_eq!(db.finish_ingest(&again, 1, Some(&summary_job), 70_000).await.unwrap(), None);
        let visible = db.visible_chunks("t1", &ids).await.unwrap();
        assert_eq!(visible.len(), 1);
        assert!(db.visible_chunks("other", &ids).await.unwrap().is_empty(), "tenant scoped");
        let stored = db.document("t1", "d1").await.unwrap().unwrap();
        assert_eq!((stored.current_version, stored.status.as_str()), (Some(1), "succeeded"));
        assert_eq!(db.embeddings_by_hash("d1").await.unwrap(), vec![("c".to_owned(), vec![0, 0, 128, 63])]);
        // Finishing queued the version's summary job in the same transaction.
        assert_eq!(db.versions_of_document("d1").await.unwrap()[0].summary_status.as_deref(), Some("queued"));
        let summarizing = db.claim_ingest_job(200_000, 60_000, 5).await.unwrap().unwrap();
        assert_eq!((summarizing.id.as_str(), summarizing.kind.as_str()), ("j1s", "summary"));
        let summary_chunk = NewChunk { ordinal: agentry_db::knowledge::SUMMARY_ORDINAL, content_hash: "s".into(), text: "In short.".into(), ..chunk.clone() };
        let (stale, first_summary) = db.replace_summary_chunk(&summarizing, &summary_chunk).await.unwrap();
        assert!(stale.is_empty());
        let (stale, summary_id) = db.replace_summary_chunk(&summarizing, &summary_chunk).await.unwrap();
        assert_eq!(stale, vec![first_summary], "a re-run replaces the earlier attempt's summary chunk");
        // A failed attempt at a summary never fails the document.
        db.fail_ingest(&summarizing, "model down", agentry_db::knowledge::IngestRetry::Never, 200_001).await.unwrap();
        assert_eq!(db.document("t1", "d1").await.unwrap().unwrap().status, DocumentStatus::Succeeded);
        assert_eq!(db.versions_of_document("d1").await.unwrap()[0].summary_status.as_deref(), Some("failed"));
        db.finish_summary(&summarizing, "In short.", 200_002).await.unwrap();
        let listed = db.versions_of_document("d1").await.unwrap();
        assert_eq!((listed[0].summary.as_deref(), listed[0].summary_status.as_deref(), listed[0].summary_error.as_deref()), (Some("In short."), Some("succeeded"), None));
        assert_eq!(db.document("t1", "d1").await.unwrap().unwrap().summary.as_deref(), Some("In short."));
        let stored_chunks = db.version_chunks("d1", 1).await.unwrap();
        assert_eq!(stored_chunks.iter().map(|c| (c.id, c.ordinal)).collect::<Vec<_>>(), vec![(summary_id, -1), (ids[0], 0)]);
        assert_eq!(db.visible_chunks("t1", &[summary_id]).await.unwrap().len(), 1, "the summary is a chunk of the current version");
        let ids = db.chunk_ids("d1", Some(1)).await.unwrap();
        assert!(db.claim_ingest_job(300_000, 60_000, 5).await.unwrap().is_none(), "finished jobs are not claimed");

        // A version uploaded by URL has no bytes until the worker stores what it fetched, once.
        let url = "https://example.com/doc.md";
        let pending = VersionRow { version: 2, content_hash: None, format: None, size_bytes: 0, source_url: Some(url.into()), ..version };
        let job2 = JobRow { id: "j2".into(), version: 2, ..job };
        db.add_version("t1", NewVersion { version: &pending, content: None, job: &job2 }, "Doc", Some(url), 80_000).await.unwrap();
        assert_eq!(db.document("t1", "d1").await.unwrap().unwrap().source, url);
        assert_eq!(db.version_content("d1", 2).await.unwrap(), Some(VersionContent::Pending { url: url.into() }));
        assert!(db.store_fetched_content("d1", 2, "markdown", "h2", b"# Doc", 5).await.unwrap());
        assert!(!db.store_fetched_content("d1", 2, "text", "h3", b"other", 6).await.unwrap(), "stored once");
        assert_eq!(db.version_content("d1", 2).await.unwrap(), Some(VersionContent::Stored { format: "markdown".into(), bytes: b"# Doc".to_vec() }));
        let listed = db.versions_of_document("d1").await.unwrap();
        assert_eq!((listed[1].format.as_deref(), listed[1].size_bytes, listed[1].source_url.as_deref()), (Some("markdown"), 5, Some(url)));
        assert_eq!(db.delete_document("t1", "d1").await.unwrap(), Some(ids));
        assert!(db.document("t1", "d1").await.unwrap().is_none());
    }
}

/// A job whose worker died on its last allowed attempt is never claimed
/// again: the next claim makes it dead (and fails its document) with the reason.
#[tokio::test]
async fn jobs_out_of_attempts_are_failed_not_claimed() {
    use agentry_db::identity::TenantRow;
    use agentry_db::knowledge::NewVersion;

    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        db.insert_tenant(&TenantRow { id: "t1".into(), slug: "t1".into(), name: "T1".into(), mfa_required: false, created_at_ms: 0 }).await.unwrap();
        let (collection, document, version, job) = queued_document("Crashy", "crash.json", "json", 2, 0);
        db.insert_collection(&collection).await.unwrap();
        db.insert_document(&document, NewVersion { version: &version, content: Some(b"{}"), job: &job }).await.unwrap();
        // Each claim's worker "dies": the lease runs out and the job is claimed again…
        let mut now = 1_000;
        for attempt in 1..=3 {
            let claimed = db.claim_ingest_job(now, 1_000, 3).await.unwrap().unwrap();
            assert_eq!(claimed.attempts, attempt, "{:?}", db.backend());
            now += 2_000;
        }
        // …until its attempts are used up: then it is dead, not claimed.
        assert!(db.claim_ingest_job(now, 1_000, 3).await.unwrap().is_none(), "{:?}", db.backend());
        let failed = db.ingest_job("t1", "j1").await.unwrap().unwrap();
        assert_eq!((failed.status.as_str(), failed.attempts), ("dead", 3));
        let reason = failed.error.unwrap_or_default();
        assert!(reason.contains("gave up after 3 attempts") && reason.contains("crashed"), "{reason}");
        let stored = db.document("t1", "d1").await.unwrap().unwrap();
        assert_eq!((stored.status.as_str(), stored.error.as_deref()), ("failed", Some(reason.as_str())));
        assert_eq!(db.versions_of_document("d1").await.unwrap()[0].status, DocumentStatus::Failed);
        assert!(db.give_up_exhausted_jobs(now + 10_000, 3).await.unwrap().is_empty(), "failed once");
        assert!(db.claim_ingest_job(now + 10_000, 1_000, 3).await.unwrap().is_none());
        // A running job whose lease has not run out is left alone, even on its last attempt.
        let job2 = JobRow { id: "j2".into(), version: 2, ..job.clone() };
        let version2 = VersionRow { version: 2, ..version.clone() };
        db.add_version("t1", NewVersion { version: &version2, content: Some(b"[]"), job: &job2 }, "Crashy", None, now).await.unwrap();
        let last = db.claim_ingest_job(now, 60_000, 1).await.unwrap().unwrap();
        assert_eq!((last.id.as_str(), last.attempts), ("j2", 1));
        assert!(db.give_up_exhausted_jobs(now + 1, 1).await.unwrap().is_empty(), "still leased");
        assert_eq!(db.ingest_job("t1", "j2").await.unwrap().unwrap().status, JobStatus::Running);
    }
}

/// Groups are tenant scoped, unique by name, idempotent to join, and a user
/// who leaves the tenant leaves its groups (and only its groups).
#[tokio::test]
async fn groups_are_tenant_scoped_and_follow_membership() {
    use agentry_db::groups::GroupRow;
    use agentry_db::identity::TenantRow;

    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let backend = db.backend();
        for tenant in ["t1", "t2"] {
            db.insert_tenant(&TenantRow { id: tenant.into(), slug: tenant.into(), name: tenant.into(), mfa_required: false, created_at_ms: 0 }).await.unwrap();
        }
        for (id, email) in [("u1", "a@example.com"), ("u2", "b@example.com")] {
            db.insert_user(&user(id, email)).await.unwrap();
            for tenant in ["t1", "t2"] {
                db.upsert_membership(tenant, id, "user", 0).await.unwrap();
            }
        }
        let group = |id: &str, tenant: &str, name: &str| GroupRow {
            id: id.into(),
            tenant_id: tenant.into(),
            name: name.into(),
            description: String::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        db.insert_group(&group("g1", "t1", "finance")).await.unwrap();
        db.insert_group(&group("g2", "t1", "legal")).await.unwrap();
        db.insert_group(&group("g3", "t2", "finance")).await.unwrap();
        assert!(matches!(db.insert_group(&group("g4", "t1", "finance")).await, Err(agentry_db::DbError::Conflict { .. })), "{backend:?}");
        assert!(matches!(db.update_group("t1", "g2", Some("finance"), None, 2).await, Err(agentry_db::DbError::Conflict { .. })), "{backend:?}");
        assert!(db.update_group("t1", "g2", Some("legal-team"), Some("contracts"), 2).await.unwrap());
        assert!(!db.update_group("t2", "g2", Some("x"), None, 2).await.unwrap(), "other tenant");
        let listed: Vec<String> = db.groups_of_tenant("t1").await.unwrap().into_iter().map(|g| g.name).collect();
        assert_eq!(listed, ["finance", "legal-team"], "{backend:?}");
        assert_eq!(db.group("t1", "g2").await.unwrap().unwrap().description, "contracts");
        assert!(db.group("t2", "g1").await.unwrap().is_none(), "other tenant");

        assert!(db.add_group_member("t1", "g1", "u1", 5).await.unwrap());
        assert!(!db.add_group_member("t1", "g1", "u1", 6).await.unwrap(), "idempotent");
        assert!(!db.add_group_member("t2", "g1", "u2", 6).await.unwrap(), "not the tenant's group");
        db.add_group_member("t1", "g2", "u1", 7).await.unwrap();
        db.add_group_member("t1", "g1", "u2", 8).await.unwrap();
        db.add_group_member("t2", "g3", "u1", 9).await.unwrap();
        let members = db.group_members("t1", "g1").await.unwrap();
        assert_eq!(members.iter().map(|m| (m.user_id.as_str(), m.email.as_str(), m.added_at_ms)).collect::<Vec<_>>(), [("u1", "a@example.com", 5), ("u2", "b@example.com", 8)]);
        assert!(db.group_members("t2", "g1").await.unwrap().is_empty(), "other tenant");
        assert_eq!(db.group_ids_of_user("t1", "u1").await.unwrap(), ["g1", "g2"], "{backend:?}");
        assert_eq!(db.group_ids_of_user("t2", "u1").await.unwrap(), ["g3"]);

        assert!(!db.remove_group_member("t2", "g1", "u2").await.unwrap(), "other tenant");
        assert!(db.remove_group_member("t1", "g1", "u2").await.unwrap());
        assert!(!db.remove_group_member("t1", "g1", "u2").await.unwrap());
        assert!(db.group_ids_of_user("t1", "u2").await.unwrap().is_empty());

        // Leaving t1 leaves t1's groups, not t2's.
        assert!(db.delete_membership("t1", "u1").await.unwrap());
        assert!(db.group_ids_of_user("t1", "u1").await.unwrap().is_empty(), "{backend:?}");
        assert!(db.group_members("t1", "g2").await.unwrap().is_empty());
        db.upsert_membership("t1", "u1", "user", 10).await.unwrap();
        assert!(db.group_ids_of_user("t1", "u1").await.unwrap().is_empty(), "rejoining the tenant does not restore groups");
        assert_eq!(db.group_ids_of_user("t2", "u1").await.unwrap(), ["g3"]);

        // Deleting a group takes its member rows with it.
        db.add_group_member("t1", "g1", "u1", 11).await.unwrap();
        assert!(!db.delete_group("t2", "g1").await.unwrap(), "other tenant");
        assert!(db.delete_group("t1", "g1").await.unwrap());
        assert!(db.group("t1", "g1").await.unwrap().is_none());
        assert!(db.group_ids_of_user("t1", "u1").await.unwrap().is_empty(), "{backend:?}");
    }
}

/// Audit rows keep their key id, fields hash and erasure marker (migration
/// 0012); rows without them (written before it) read back as legacy rows;
/// a taken `(chain, seq)` is a conflict, never a fork.
#[tokio::test]
async fn audit_rows_keep_key_ids_and_fields_hashes() {
    use agentry_db::DbError;
    use agentry_db::audit::{AuditFilter, AuditRow};
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let row = |seq: i64, key_id: Option<&str>| AuditRow {
            chain: "t1".into(),
            seq,
            at_ms: 1_700_000_000_000 + seq,
            actor_type: "user".into(),
            actor_id: Some("u1".into()),
            action: "member.add".into(),
            resource: None,
            outcome: "success".into(),
            ip: Some("10.0.0.1".into()),
            user_agent: None,
            request_id: None,
            metadata: "{}".into(),
            prev_hash: "0".repeat(64),
            hash: format!("{seq:064}"),
            key_id: key_id.map(str::to_owned),
            fields_hash: key_id.map(|_| "f".repeat(64)),
            erased_at_ms: key_id.map(|_| 1_800_000_000_000),
        };
        let legacy = row(1, None);
        let keyed = row(2, Some("0123456789abcdef"));
        db.insert_audit_event(&legacy).await.unwrap();
        db.insert_audit_event(&keyed).await.unwrap();
        assert!(matches!(db.insert_audit_event(&row(2, None)).await, Err(DbError::Conflict { .. })), "{:?}", db.backend());
        assert_eq!(db.audit_events("t1", &AuditFilter::default(), 10).await.unwrap(), vec![legacy, keyed.clone()], "{:?}", db.backend());
        assert_eq!(db.audit_head("t1").await.unwrap(), Some((2, keyed.hash)));
    }
}

#[tokio::test]
async fn stored_secrets_are_listed_and_rewritten_in_one_compare_and_set_transaction() {
    use agentry_db::DbError;
    use agentry_db::agents::McpServerRow;
    use agentry_db::identity::{SigningKeyRow, TenantRow};
    use agentry_db::secrets::{SecretSlot, SecretUpdate, StoredSecret};

    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let backend = db.backend();
        assert!(db.stored_secrets().await.unwrap().is_empty(), "{backend:?}");
        db.insert_tenant(&TenantRow { id: "t1".into(), slug: "t1".into(), name: "t1".into(), mfa_required: false, created_at_ms: 0 }).await.unwrap();
        for id in ["u1", "u2"] {
            db.insert_user(&user(id, &format!("{id}@example.com"))).await.unwrap();
        }
        db.set_totp("u1", Some("totp-clear"), true, 1).await.unwrap();
        db.insert_signing_key(&SigningKeyRow { kid: "k1".into(), private_der: "der-clear".into(), public_key: "pub".into(), created_at_ms: 1, retired_at_ms: Some(2) })
            .await
            .unwrap();
        let server = McpServerRow { tenant_id: "t1".into(), name: "files".into(), url: "https://mcp.example.com".into(), headers: "{}".into(), created_by: None, created_at_ms: 1 };
        db.insert_mcp_server(&server).await.unwrap();

        let slots =
            [SecretSlot::SigningKey { kid: "k1".into() }, SecretSlot::TotpSecret { user_id: "u1".into() }, SecretSlot::McpHeaders { tenant_id: "t1".into(), name: "files".into() }];
        let listed = db.stored_secrets().await.unwrap();
        let expected: Vec<StoredSecret> = slots.iter().cloned().zip(["der-clear", "totp-clear", "{}"]).map(|(slot, value)| StoredSecret { slot, value: value.into() }).collect();
        assert_eq!(listed, expected, "retired keys included, users without TOTP left out: {backend:?}");

        let sealed = |value: &str| format!("enc:v1:k:{value}");
        let updates: Vec<SecretUpdate> = listed.iter().map(|s| SecretUpdate { slot: s.slot.clone(), old: s.value.clone(), new: sealed(&s.value) }).collect();
        // A failing step before commit writes nothing.
        let aborted = db.rewrite_secrets(&updates, || Err("key file not written".into())).await;
        assert!(matches!(&aborted, Err(DbError::Aborted(m)) if m == "key file not written"), "{aborted:?}");
        assert_eq!(db.stored_secrets().await.unwrap(), expected, "{backend:?}");
        // A value changed since it was listed is left alone.
        let mut stale = updates.clone();
        stale[1].old = "something else".into();
        assert_eq!(db.rewrite_secrets(&stale, || Ok(())).await.unwrap(), 2, "{backend:?}");
        let values: Vec<String> = db.stored_secrets().await.unwrap().into_iter().map(|s| s.value).collect();
        assert_eq!(values, vec![sealed("der-clear"), "totp-clear".to_owned(), sealed("{}")], "{backend:?}");
        assert!(db.mfa("u1").await.unwrap().unwrap().totp_enabled, "only the secret changes");
        assert_eq!(db.rewrite_secrets(&updates, || Ok(())).await.unwrap(), 1, "{backend:?}");
        assert_eq!(db.mfa("u1").await.unwrap().unwrap().totp_secret.as_deref(), Some(sealed("totp-clear").as_str()));
    }
}

#[tokio::test]
async fn sessions_that_ended_long_ago_are_deleted_and_live_ones_kept() {
    use agentry_db::identity::SessionRow;
    let dir = tempfile::tempdir().unwrap();
    for db in agentry_db::test_support::test_databases(dir.path()).await {
        db.migrate().await.unwrap();
        let user_id = "u1".to_owned();
        db.insert_user(&user(&user_id, "u1@example.com")).await.unwrap();
        let now = 10 * 86_400_000;
        let session = |id: &str, expires_at_ms: i64, revoked_at_ms: Option<i64>| SessionRow {
            id: format!("{user_id}-{id}"),
            user_id: user_id.clone(),
            ip: Some("192.0.2.1".into()),
            user_agent: Some("test".into()),
            created_at_ms: 0,
            last_used_at_ms: 0,
            expires_at_ms,
            revoked_at_ms,
            revoke_reason: revoked_at_ms.map(|_| "signed out".into()),
            mfa: false,
        };
        for (row, refresh) in [
            (session("expired", 1_000, None), "r1"),
            (session("revoked", now + 86_400_000, Some(2_000)), "r2"),
            (session("live", now + 86_400_000, None), "r3"),
            (session("just-ended", now - 1_000, None), "r4"),
        ] {
            db.insert_session(&row, &format!("{user_id}-{refresh}")).await.unwrap();
        }
        assert_eq!(db.delete_sessions_ended_before(now - 86_400_000).await.unwrap(), 2, "{:?}", db.backend());
        let left: Vec<String> = db.sessions_of_user(&user_id, 0).await.unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.iter().all(|id| id.ends_with("live") || id.ends_with("just-ended")), "{left:?}");
    }
}

/// An active, verified user without a password.
fn user(id: &str, email: &str) -> agentry_db::identity::UserRow {
    agentry_db::identity::UserRow {
        id: id.into(),
        email: email.into(),
        display_name: email.into(),
        password_hash: None,
        is_active: true,
        platform_admin: false,
        failed_logins: 0,
        locked_until_ms: None,
        created_at_ms: 0,
        updated_at_ms: 0,
        email_verified: true,
    }
}
