//! Retention, data-subject requests and the compliance report, through the
//! running server: a person's data is exported and erased everywhere (the
//! whole database is searched for their id and address afterwards, on
//! SQLite and PostgreSQL) while the audit chain still verifies; retention
//! deletes what is older than a tenant keeps; who may do each.

use std::io::Read;

use agentry_db::Db;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const BOB: &str = "bob@example.com";

/// Every `(table, column)` whose text holds `needle` anywhere.
async fn cells_containing(db: &Db, needle: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (table, column) in db.schema_columns().await.unwrap() {
        let sql = match db.backend() {
            agentry_db::Backend::Sqlite => format!("SELECT COUNT(*) FROM {table} WHERE instr(CAST({column} AS TEXT), $1) > 0"),
            agentry_db::Backend::Postgres => format!("SELECT COUNT(*) FROM {table} WHERE strpos(CAST({column} AS TEXT), $1) > 0"),
        };
        let count: i64 = agentry_db::on_pool!(db, pool => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone())).bind(needle).fetch_one(pool).await).unwrap();
        if count > 0 {
            found.push((table, column));
        }
    }
    found
}

async fn execute(db: &Db, sql: &'static str, value: i64) {
    agentry_db::on_pool!(db, pool => sqlx::query(sql).bind(value).execute(pool).await.map(drop)).unwrap();
}

/// Raw usage records before `before_ms`, and rollups of days before its day.
async fn old_usage(db: &Db, before_ms: i64) -> (i64, i64) {
    let day = chrono::DateTime::from_timestamp_millis(before_ms).unwrap().format("%Y-%m-%d").to_string();
    agentry_db::on_pool!(db, pool => {
        let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM model_calls WHERE created_at_ms < $1").bind(before_ms).fetch_one(pool).await?;
        let rollups: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_daily WHERE day <= $1").bind(&day).fetch_one(pool).await?;
        Ok::<_, sqlx::Error>((records, rollups))
    })
    .unwrap()
}

/// Wait for a job to end; its final view.
async fn finished(app: &TestApp, token: &str, job: &Value) -> Value {
    let id = job["id"].as_str().unwrap_or_else(|| panic!("a job: {job}"));
    for _ in 0..400 {
        let (_, view) = send(app, token, Method::GET, &format!("/api/v1/jobs/{id}"), None).await;
        if matches!(view["status"].as_str(), Some("succeeded" | "failed" | "dead" | "cancelled")) {
            return view;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not end");
}

/// Bob, a `user` member, leaves data in every kind of store a member can
/// reach, and the admin leaves data about him. His user id and key.
async fn bob_everywhere(app: &TestApp, admin: &str) -> (String, String) {
    let bob = app.add_member(admin, "acme", BOB, "user").await;
    let session = app.token(BOB).await;
    let (status, key) = send(app, &session, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "bob's laptop" }))).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    let (status, _) = send(app, &session, Method::POST, "/v1/chat/completions", Some(json!({ "model": "mock-echo", "messages": user_message("my name is Bob") }))).await;
    assert_eq!(status, 200);
    let (status, _) = send(app, &key, Method::POST, "/v1/chat/completions", Some(json!({ "model": "mock-echo", "messages": user_message("hello from Bob") }))).await;
    assert_eq!(status, 200);
    let (_, thread) = send(app, &session, Method::POST, "/api/v1/threads", Some(json!({ "title": "Bob's plans" }))).await;
    let (status, run) =
        send(app, &session, Method::POST, &format!("/api/v1/threads/{}/runs", thread["id"].as_str().unwrap()), Some(json!({ "agent": "math", "input": "2+2" }))).await;
    assert_eq!(status, 200, "{run}");
    let (_, collection) = send(app, admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "shared" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();
    let (status, accepted) =
        send(app, &session, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(json!({ "text": "Bob's notes on otters.", "title": "Otters" }))).await;
    assert_eq!(status, 202, "{accepted}");
    wait_ingested(app, &session, &accepted).await;
    let (status, admins_doc) =
        send(app, admin, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(json!({ "text": "The admin's notes on seals.", "title": "Seals" }))).await;
    assert_eq!(status, 202);
    wait_ingested(app, admin, &admins_doc).await;
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"mock-echo\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}\n".to_vec()).file_name("bob.jsonl"))
        .text("purpose", "batch");
    let response = app.with(Method::POST, "/v1/files", &session).multipart(form).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (status, _) = send(app, admin, Method::POST, "/api/v1/costs/budgets", Some(json!({ "scope": "user", "scope_id": bob, "period": "daily", "limit_usd": 5.0 }))).await;
    assert!(status == 200 || status == 201, "budget: {status}");
    let (status, group) = send(app, admin, Method::POST, "/api/v1/tenants/acme/groups", Some(json!({ "name": "otter team" }))).await;
    assert_eq!(status, 201, "{group}");
    let (status, _) = send(app, admin, Method::PUT, &format!("/api/v1/tenants/acme/groups/{}/members/{bob}", group["id"].as_str().unwrap()), Some(json!({}))).await;
    assert!(status < 300, "group member: {status}");
    // Usage records are written in batches: wait until Bob's are in.
    app.model_calls(2).await;
    (bob, key)
}

async fn erasure_leaves_nothing_that_names_the_person(postgres_url: Option<String>) {
    let app = spawn_app_with(TestOptions { postgres_url, ..mock_knowledge() }).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (bob, key) = bob_everywhere(&app, &admin).await;
    let (_, collections) = send(&app, &admin, Method::GET, "/api/v1/collections", None).await;
    let collection = collections["data"][0]["id"].as_str().unwrap().to_owned();
    let db = Db::connect(&app.database_url).await.unwrap();
    assert!(cells_containing(&db, &bob).await.len() > 10, "the fixture must leave Bob's id in many places: {:?}", cells_containing(&db, &bob).await);
    let (_, before) = send(&app, &admin, Method::GET, "/api/v1/usage/summary", None).await;

    let (status, job) = send(&app, &admin, Method::POST, &format!("/api/v1/tenants/acme/users/{bob}/erase"), None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["kind"], "erasure");
    let job = finished(&app, &admin, &job).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    for needle in [bob.as_str(), BOB] {
        assert_eq!(cells_containing(&db, needle).await, Vec::<(String, String)>::new(), "cells still holding {needle}");
    }
    let (_, verified) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit/verify", None).await;
    assert_eq!(verified["valid"], true, "{verified}");
    assert!(verified["erased_events"].as_i64().unwrap() > 0, "{verified}");
    let (_, platform) = send(&app, MASTER_KEY, Method::GET, "/api/v1/admin/audit/verify", None).await;
    assert_eq!(platform["valid"], true, "{platform}");
    // Gone for good: no sign-in, no key; the totals of the tenant's usage are unchanged.
    assert_eq!(app.login(BOB, PASSWORD).await.status(), 401);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let (status, _) = send(&app, &key, Method::GET, "/v1/models", None).await;
    assert_eq!(status, 401);
    let (_, after) = send(&app, &admin, Method::GET, "/api/v1/usage/summary", None).await;
    assert_eq!(before["totals"], after["totals"], "usage totals must survive the erasure");
    // The admin's own document is still there.
    let (_, documents) = send(&app, &admin, Method::GET, &format!("/api/v1/collections/{collection}/documents"), None).await;
    let titles: Vec<&str> = documents["data"].as_array().unwrap().iter().filter_map(|d| d["title"].as_str()).collect();
    assert_eq!(titles, ["Seals"], "{documents}");
}

#[tokio::test]
async fn erasure_leaves_nothing_that_names_the_person_on_sqlite() {
    erasure_leaves_nothing_that_names_the_person(None).await;
}

#[tokio::test]
async fn erasure_leaves_nothing_that_names_the_person_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    erasure_leaves_nothing_that_names_the_person(Some(url)).await;
}

/// The names of the entries of a zip archive, and one entry's text.
fn entries(bytes: &[u8]) -> (Vec<String>, impl Fn(&str) -> String + '_) {
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a zip archive");
    let names = archive.file_names().map(str::to_owned).collect();
    let read = move |name: &str| {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        archive.by_name(name).unwrap_or_else(|_| panic!("no {name}")).read_to_string(&mut text).unwrap();
        text
    };
    (names, read)
}

#[tokio::test]
async fn a_data_export_holds_the_persons_data_and_only_theirs() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (bob, key) = bob_everywhere(&app, &admin).await;
    let carol = app.add_member(&admin, "acme", "carol@example.com", "user").await;
    let (_, carols_thread) = send(&app, &app.token("carol@example.com").await, Method::POST, "/api/v1/threads", Some(json!({ "title": "Carol's secret" }))).await;
    assert!(carols_thread["id"].is_string());
    let path = format!("/api/v1/tenants/acme/users/{bob}/data-export");

    let response = app.with(Method::GET, &path, &admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/zip");
    assert!(response.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"agentry-export-acme-"));
    let bytes = response.bytes().await.unwrap();
    let (names, read) = entries(&bytes);
    for expected in [
        "manifest.json",
        "rows/threads.owner.json",
        "rows/runs.owner.json",
        "rows/api_keys.user_id.json",
        "rows/model_calls.user_id.json",
        "rows/memberships.user_id.json",
        "thread_messages.json",
    ] {
        assert!(names.iter().any(|n| n == expected || n.ends_with(&format!("/{expected}"))), "{expected} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("files/") && n.ends_with("bob.jsonl")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("documents/")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("account/")), "an administrator's export leaves the account's own rows out: {names:?}");
    let manifest: Value = serde_json::from_str(&read("manifest.json")).unwrap();
    assert_eq!(manifest["user_id"], bob.as_str());
    assert!(read("rows/threads.owner.json").contains("Bob's plans"));
    let everything: String = names.iter().map(|n| read(n)).collect();
    assert!(!everything.contains("Carol's secret") && !everything.contains(&carol), "another member's data leaked into the export");
    assert!(!everything.contains("secret_hash") && !everything.contains("password_hash"), "secrets are never exported");
    assert!(names.iter().any(|n| n == "rows/audit_events.actor_id.json"), "an administrator who reads the audit log gets the events naming Bob: {names:?}");

    // Bob, signed in, gets his own, with his account's rows.
    let session = app.token(BOB).await;
    let response = app.with(Method::GET, &path, &session).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let bytes = response.bytes().await.unwrap();
    let (names, read) = entries(&bytes);
    assert!(names.iter().any(|n| n == "account/sessions.user_id.json"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("audit_events") || n.contains("events.data")), "the audit log and others' events are not Bob's to read: {names:?}");
    assert!(!read("account/users.id.json").contains("password_hash"));

    // Bob's API key is not Bob at a browser; Carol may not even learn that Bob's exists; nobody reads across tenants.
    assert_error(app.with(Method::GET, &path, &key).send().await.unwrap(), 403, "permission_denied").await;
    let carol_session = app.token("carol@example.com").await;
    assert_error(app.with(Method::GET, &path, &carol_session).send().await.unwrap(), 404, "not_found").await;
    let (status, other) = send(&app, MASTER_KEY, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "globex", "name": "Globex" }))).await;
    assert_eq!(status, 201, "{other}");
    let (status, _) = send(&app, MASTER_KEY, Method::GET, &format!("/api/v1/tenants/globex/users/{bob}/data-export"), None).await;
    assert_eq!(status, 404, "Globex holds nothing about Bob");
    let (status, _) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/users/no-such-user/data-export", None).await;
    assert_eq!(status, 404);
    let (_, audit) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit?action=user.data_export", None).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 2, "{audit}");
}

#[tokio::test]
async fn erasure_is_bounded_by_what_the_caller_holds() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let admin_id = app.with(Method::GET, "/api/v1/auth/me", &admin).send().await.unwrap().json::<Value>().await.unwrap()["user"]["id"].as_str().unwrap().to_owned();
    let bob = app.add_member(&admin, "acme", BOB, "user").await;
    let (status, role) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/people", Some(json!({ "permissions": ["manage_users", "read_documents"] }))).await;
    assert!(status < 300, "{role}");
    app.add_member(&admin, "acme", "people@example.com", "people").await;
    let people = app.token("people@example.com").await;
    let session = app.token(BOB).await;

    // A plain member cannot; a people manager cannot erase someone whose role holds more than theirs.
    assert_error(app.with(Method::POST, &format!("/api/v1/tenants/acme/users/{admin_id}/erase"), &session).send().await.unwrap(), 403, "permission_denied").await;
    assert_error(app.with(Method::POST, &format!("/api/v1/tenants/acme/users/{bob}/erase"), &people).send().await.unwrap(), 403, "permission_denied").await;
    // Nor export anyone whose role holds more than theirs.
    assert_error(app.with(Method::GET, &format!("/api/v1/tenants/acme/users/{admin_id}/data-export"), &people).send().await.unwrap(), 403, "permission_denied").await;
    // Nobody erases their own data; the platform administrator's is not a tenant's to erase.
    let body = assert_error(app.with(Method::POST, &format!("/api/v1/tenants/acme/users/{admin_id}/erase"), &admin).send().await.unwrap(), 400, "invalid_request").await;
    assert_eq!(body["param"], "user_id", "{body}");
    let (status, _) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/users/no-such-user/erase", None).await;
    assert_eq!(status, 404);
    // The audit log says an erasure was asked for, by whom, without naming whose.
    let (status, job) = send(&app, &admin, Method::POST, &format!("/api/v1/tenants/acme/users/{bob}/erase"), None).await;
    assert_eq!(status, 202);
    assert_eq!(finished(&app, &admin, &job).await["status"], "succeeded");
    let (_, audit) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit?action=user.erase", None).await;
    let event = &audit["data"][0];
    assert_eq!(event["resource"], format!("job:{}", job["id"].as_str().unwrap()), "{audit}");
    assert!(!audit.to_string().contains(&bob));
    // A job's payload named Bob while it ran; it no longer does.
    let (_, view) = send(&app, &admin, Method::GET, &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()), None).await;
    assert!(!view.to_string().contains(&bob), "{view}");
}

#[tokio::test]
async fn retention_deletes_what_is_older_than_the_tenant_keeps() {
    let mut options = mock_knowledge();
    options.privacy.audit_min_days = 30;
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (_, shown) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/retention", None).await;
    let never = json!({ "threads_days": null, "runs_days": null, "document_versions_days": null, "usage_days": null, "audit_days": null });
    assert_eq!(shown, json!({ "settings": never, "audit_min_days": 30, "updated_at_ms": null }));
    // The operator's minimum bounds audit retention; days are 1-36500.
    let (status, body) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/retention", Some(json!({ "audit_days": 7 }))).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("audit_days")), "{body}");
    let (status, body) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/retention", Some(json!({ "threads_days": 0 }))).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("threads_days")), "{body}");
    let (status, body) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/retention", Some(json!({ "thread_days": 3 }))).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
    app.add_member(&admin, "acme", "user@example.com", "user").await;
    let user = app.token("user@example.com").await;
    assert_error(app.with(Method::PUT, "/api/v1/tenants/acme/retention", &user).json(&json!({})).send().await.unwrap(), 403, "permission_denied").await;

    // Old and new threads, runs, document versions and usage.
    let mut threads = Vec::new();
    for title in ["old", "new"] {
        let (_, thread) = send(&app, &admin, Method::POST, "/api/v1/threads", Some(json!({ "title": title }))).await;
        let id = thread["id"].as_str().unwrap().to_owned();
        let (status, _) = send(&app, &admin, Method::POST, &format!("/api/v1/threads/{id}/runs"), Some(json!({ "agent": "math", "input": "1+1" }))).await;
        assert_eq!(status, 200);
        threads.push(id);
    }
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let documents = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let (_, first) = send(&app, &admin, Method::POST, &documents, Some(json!({ "text": "Version one.", "title": "Doc" }))).await;
    wait_ingested(&app, &admin, &first).await;
    let document = first["document"]["id"].as_str().unwrap().to_owned();
    let (_, second) = send(&app, &admin, Method::POST, &documents, Some(json!({ "text": "Version two.", "title": "Doc", "document_id": document }))).await;
    wait_ingested(&app, &admin, &second).await;
    let (status, _) = send(&app, &admin, Method::POST, "/v1/chat/completions", Some(json!({ "model": "mock-echo", "messages": user_message("hi") }))).await;
    assert_eq!(status, 200);
    app.model_calls(1).await;
    let db = Db::connect(&app.database_url).await.unwrap();
    let ten_days_ago = chrono::Utc::now().timestamp_millis() - 10 * 86_400_000;
    execute(&db, "UPDATE threads SET updated_at_ms = $1 WHERE title = 'old'", ten_days_ago).await;
    execute(&db, "UPDATE runs SET created_at_ms = $1 WHERE input LIKE '%1+1%' AND thread_id IN (SELECT id FROM threads WHERE title = 'old')", ten_days_ago).await;
    execute(&db, "UPDATE document_versions SET created_at_ms = $1 WHERE version = 1", ten_days_ago).await;
    execute(&db, "UPDATE model_calls SET created_at_ms = $1", ten_days_ago).await;
    // Rollups of the current and previous month stay for budgets and invoices: these are older.
    let hundred_days_ago = chrono::DateTime::from_timestamp_millis(ten_days_ago - 90 * 86_400_000).unwrap().format("%Y-%m-%d").to_string();
    agentry_db::on_pool!(&db, pool => sqlx::query("UPDATE usage_daily SET day = $1").bind(&hundred_days_ago).execute(pool).await.map(drop)).unwrap();

    let before = old_usage(&db, ten_days_ago + 1).await;
    assert!(before.0 > 0 && before.1 > 0, "{before:?}");
    let settings = json!({ "threads_days": 5, "runs_days": 5, "document_versions_days": 5, "usage_days": 5, "audit_days": 30 });
    let (status, stored) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/retention", Some(settings)).await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["settings"]["threads_days"], 5);
    assert!(stored["updated_at_ms"].is_i64());
    let (status, job) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/retention/run", None).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!((job["kind"].as_str(), job["owner"].as_str()), (Some("retention"), Some("system")));
    assert_eq!(finished(&app, &admin, &job).await["status"], "succeeded");

    let (status, _) = send(&app, &admin, Method::GET, &format!("/api/v1/threads/{}", threads[0]), None).await;
    assert_eq!(status, 404, "the idle thread is gone");
    let (status, _) = send(&app, &admin, Method::GET, &format!("/api/v1/threads/{}", threads[1]), None).await;
    assert_eq!(status, 200, "the recent thread stays");
    let (_, runs) = send(&app, &admin, Method::GET, "/api/v1/runs", None).await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 1, "{runs}");
    let (_, versions) = send(&app, &admin, Method::GET, &format!("/api/v1/documents/{document}/versions"), None).await;
    let kept: Vec<i64> = versions["data"].as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(kept, [2], "{versions}");
    assert_eq!(old_usage(&db, ten_days_ago + 1).await, (0, 0), "usage records and rollups past retention are gone");
    let (_, verified) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit/verify", None).await;
    assert_eq!(verified["valid"], true, "{verified}");
}

#[tokio::test]
async fn the_compliance_report_names_what_to_fix() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    app.add_member(&admin, "acme", "user@example.com", "user").await;
    let (_, key) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "forgotten" }))).await;
    let db = Db::connect(&app.database_url).await.unwrap();
    execute(&db, "UPDATE api_keys SET created_at_ms = $1", chrono::Utc::now().timestamp_millis() - 120 * 86_400_000).await;

    let (status, report) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/compliance/report", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["tenant"], "acme");
    let admins: Vec<&str> = report["admins"].as_array().unwrap().iter().map(|a| a["email"].as_str().unwrap()).collect();
    assert_eq!(admins, [ADMIN_EMAIL]);
    assert_eq!((report["mfa"]["members"].as_u64(), report["mfa"]["with_mfa"].as_u64()), (Some(2), Some(0)), "{report}");
    assert_eq!(report["api_keys"]["stale"][0]["id"], key["id"], "{report}");
    assert_eq!(report["audit_chain"]["valid"], true);
    assert!(report["audit_chain"].get("anchor").is_none(), "the report carries no signed anchor");
    assert_eq!(report["last_backup"], Value::Null);
    let findings = report["findings"].to_string();
    for expected in ["administrator(s) have no second factor", "unused for 90 days", "no retention is set", "no backup was recorded"] {
        assert!(findings.contains(expected), "{expected}: {findings}");
    }
    let user = app.token("user@example.com").await;
    assert_error(app.with(Method::GET, "/api/v1/tenants/acme/compliance/report", &user).send().await.unwrap(), 403, "permission_denied").await;
}
