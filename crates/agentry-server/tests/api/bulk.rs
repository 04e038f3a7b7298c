//! Native batches (`/api/v1/batches`) through the server: many agent runs
//! submitted as one run to completion with their progress and items; the
//! same idempotency key returns the same batch; a batch of documents
//! ingests its uploads and rejects the one the upload refuses; bad input
//! is refused whole; another member cannot see a batch; a cancelled batch
//! submits nothing more.

use reqwest::Method;
use serde_json::{Value, json};

use std::time::Duration;

use crate::events::{drain, subscribe};
use crate::helpers::*;
use crate::webhooks::{create_echo_agent, wait_for};

async fn settled(app: &TestApp, token: &str, id: &str, status: &str) -> Value {
    wait_for("the batch", async || {
        let (code, batch) = send(app, token, Method::GET, &format!("/api/v1/batches/{id}"), None).await;
        assert_eq!(code, 200, "{batch}");
        (batch["status"] == status).then_some(batch)
    })
    .await
}

async fn items(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(cursor) => format!("/api/v1/batches/{id}/items?limit=2&after={cursor}"),
            None => format!("/api/v1/batches/{id}/items?limit=2"),
        };
        let (status, page) = send(app, token, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        all.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => return all,
        }
    }
}

#[tokio::test]
async fn a_batch_of_agent_runs_completes_with_progress_and_items() {
    let app = spawn_app().await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    create_echo_agent(&app, &admin, &tenant).await;
    let mut progress = subscribe(&app, &admin, "acme", "?types=job.progress").await;
    let runs: Vec<Value> = (0..5).map(|i| json!({ "custom_id": format!("q{i}"), "agent": "echo", "input": format!("question {i}") })).collect();
    let body = json!({ "type": "agent_runs", "items": runs, "metadata": { "nightly": "yes" }, "idempotency_key": "nightly-1" });
    let (status, batch) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(body.clone())).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["id"].as_str().unwrap().to_owned();
    assert_eq!((batch["type"].as_str(), batch["progress"]["total"].as_i64(), batch["metadata"]["nightly"].as_str()), (Some("agent_runs"), Some(5), Some("yes")));
    let (status, again) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(body)).await;
    assert_eq!((status, again["id"].as_str()), (202, Some(id.as_str())), "the same key is the same batch: {again}");

    let done = settled(&app, &admin, &id, "completed").await;
    assert_eq!((done["progress"]["succeeded"].as_i64(), done["progress"]["done"].as_i64()), (Some(5), Some(5)), "{done}");
    let listed = items(&app, &admin, &id).await;
    assert_eq!(listed.iter().map(|i| i["custom_id"].as_str().unwrap()).collect::<Vec<_>>(), ["q0", "q1", "q2", "q3", "q4"]);
    // The submission's progress reached the submitter's live stream.
    let reported = drain(&mut progress, Duration::from_millis(500)).await;
    let last = reported.iter().rev().find(|e| e["data"]["subject_id"] == id.as_str()).unwrap_or_else(|| panic!("no job.progress for {id}: {reported:?}"));
    assert_eq!((last["data"]["kind"].as_str(), last["data"]["done"].as_i64(), last["data"]["total"].as_i64()), (Some("bulk_submit"), Some(5), Some(5)), "{last}");
    for item in &listed {
        assert_eq!(item["status"], "succeeded", "{item}");
        let (status, run) = send(&app, &admin, Method::GET, &format!("/api/v1/runs/{}", item["run_id"].as_str().unwrap()), None).await;
        assert_eq!((status, run["status"].as_str()), (200, Some("succeeded")), "{run}");
    }
    let (_, page) = send(&app, &admin, Method::GET, "/api/v1/batches", None).await;
    assert_eq!(page["data"].as_array().unwrap().iter().filter(|b| b["id"] == id.as_str()).count(), 1, "{page}");

    // Another member sees neither the batch nor its items.
    app.add_member(&admin, &tenant, "other@example.com", "user").await;
    let other = app.token("other@example.com").await;
    assert_eq!(send(&app, &other, Method::GET, &format!("/api/v1/batches/{id}"), None).await.0, 404);
    assert_eq!(send(&app, &other, Method::GET, &format!("/api/v1/batches/{id}/items"), None).await.0, 404);
    assert_eq!(send(&app, &other, Method::POST, &format!("/api/v1/batches/{id}/cancel"), None).await.0, 404);
    let (_, page) = send(&app, &other, Method::GET, "/api/v1/batches", None).await;
    assert!(page["data"].as_array().unwrap().is_empty(), "{page}");

    // Bad input is refused whole, naming the item.
    for (body, says) in [
        (json!({ "type": "agent_runs", "items": [] }), "1 to"),
        (json!({ "type": "agent_runs", "items": [{ "agent": "nope", "input": "x" }] }), "unknown agent"),
        (json!({ "type": "agent_runs", "items": [{ "agent": "echo", "input": " " }] }), "item 0"),
        (json!({ "type": "agent_runs", "items": [{ "custom_id": "a", "agent": "echo", "input": "x" }, { "custom_id": "a", "agent": "echo", "input": "y" }] }), "twice"),
    ] {
        let (status, refused) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(body)).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(says), "{says}: {refused}");
    }
}

#[tokio::test]
async fn a_batch_of_documents_ingests_and_rejects_what_the_upload_refuses() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "bulk" }))).await;
    let collection = collection["id"].as_str().unwrap();
    let (status, existing) = send(&app, &admin, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(json!({ "text": "Already here." }))).await;
    assert_eq!(status, 202, "{existing}");
    let uploads = json!([
        { "custom_id": "text", "document": { "text": "Rail journeys under four hours are preferred to domestic flights.", "title": "Travel" } },
        { "custom_id": "base64", "document": { "content_base64": "IyBTZWN1cml0eQoKTG9jayB5b3VyIGxhcHRvcC4K", "file_name": "security.md" } },
        { "custom_id": "binary", "document": { "content_base64": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } },
        { "custom_id": "same", "document": { "text": "Already here.", "document_id": existing["document"]["id"] } },
    ]);
    let (status, batch) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(json!({ "type": "documents", "collection_id": collection, "items": uploads }))).await;
    assert_eq!(status, 202, "{batch}");
    let id = batch["id"].as_str().unwrap();
    let done = settled(&app, &admin, id, "completed").await;
    assert_eq!((done["progress"]["succeeded"].as_i64(), done["progress"]["rejected"].as_i64()), (Some(3), Some(1)), "the unchanged upload counts as done: {done}");
    let listed = items(&app, &admin, id).await;
    assert_eq!(listed[2]["status"], "rejected");
    assert_eq!(listed[3]["status"], "unchanged", "{}", listed[3]);
    assert!(listed[2]["error"].as_str().unwrap().contains("unsupported"), "{}", listed[2]);
    for item in &listed[..2] {
        let (status, document) = send(&app, &admin, Method::GET, &format!("/api/v1/documents/{}", item["document_id"].as_str().unwrap()), None).await;
        assert_eq!((status, document["status"].as_str()), (200, Some("succeeded")), "{document}");
    }

    let chatty = json!({ "type": "documents", "collection_id": collection, "items": [{ "document": { "text": "x" } }], "metadata": { "big": "x".repeat(600) } });
    let (status, refused) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(chatty)).await;
    assert_eq!((status, refused["error"]["param"].as_str()), (400, Some("metadata")), "{refused}");
    let bad = json!({ "type": "documents", "collection_id": collection, "items": [{ "document": { "content_base64": "%%%" } }] });
    let (status, refused) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(bad)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("item 0"), "{refused}");
    let missing = json!({ "type": "documents", "collection_id": "nope", "items": [{ "document": { "text": "x" } }] });
    assert_eq!(send(&app, &admin, Method::POST, "/api/v1/batches", Some(missing)).await.0, 404);
}

#[tokio::test]
async fn a_cancelled_batch_submits_nothing_more() {
    let app = spawn_app().await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    create_echo_agent(&app, &admin, &tenant).await;
    let runs: Vec<Value> = (0..300).map(|i| json!({ "agent": "echo", "input": format!("question {i}") })).collect();
    let (status, batch) = send(&app, &admin, Method::POST, "/api/v1/batches", Some(json!({ "type": "agent_runs", "items": runs }))).await;
    assert_eq!(status, 202);
    let id = batch["id"].as_str().unwrap();
    let (status, cancelled) = send(&app, &admin, Method::POST, &format!("/api/v1/batches/{id}/cancel"), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    // An item being submitted when the cancel came may still run; nothing after it does.
    let settled = wait_for("nothing in flight", async || {
        let (_, batch) = send(&app, &admin, Method::GET, &format!("/api/v1/batches/{id}"), None).await;
        let progress = &batch["progress"];
        (progress["queued"] == 0 && progress["running"] == 0).then(|| batch.clone())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (_, later) = send(&app, &admin, Method::GET, &format!("/api/v1/batches/{id}"), None).await;
    assert_eq!(later["status"], "cancelled");
    let submitted = |batch: &Value| 300 - batch["progress"]["pending"].as_i64().unwrap();
    assert!(submitted(&later) <= submitted(&cancelled) + 1, "at most the item in flight when cancelled: {cancelled} then {later}");
    assert!(submitted(&later) < 300 && submitted(&settled) <= submitted(&later), "{settled} then {later}");
}
