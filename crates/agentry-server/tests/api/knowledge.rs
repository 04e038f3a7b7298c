//! The knowledge base through the running server with the real local
//! embedding model: uploads (multipart and JSON) become durable jobs, search
//! is hybrid with filters and ACLs applied in the index, versions re-embed
//! only what changed, bad files fail with a reason. SQLite and PostgreSQL.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const GUIDE: &str = "# Employee handbook\n\n## Accounts\n\n\
    To reset your password, open the sign-in page and choose the forgotten password link; \
    a reset email arrives within five minutes.\n\n\
    ## Travel\n\n\
    Flights booked for business trips must be economy class unless the journey is longer than eight hours.\n";

async fn send(app: &TestApp, token: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.with(method, path, token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Poll a job until it ends; returns its final JSON.
async fn finished(app: &TestApp, token: &str, job: &str) -> Value {
    for _ in 0..600 {
        let (status, body) = send(app, token, Method::GET, &format!("/api/v1/ingest-jobs/{job}"), None).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == "succeeded" || body["status"] == "failed" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not finish");
}

async fn upload_multipart(app: &TestApp, token: &str, collection: &str, name: &str, bytes: Vec<u8>, fields: &[(&str, String)]) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    for (key, value) in fields {
        form = form.text(key.to_string(), value.clone());
    }
    let response = app.with(Method::POST, &format!("/api/v1/collections/{collection}/documents"), token).multipart(form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn search(app: &TestApp, token: &str, body: Value) -> Vec<Value> {
    let (status, found) = send(app, token, Method::POST, "/api/v1/search", Some(body)).await;
    assert_eq!(status, 200, "{found}");
    found["results"].as_array().cloned().unwrap_or_default()
}

fn documents_of(results: &[Value]) -> Vec<String> {
    results.iter().map(|r| r["document_id"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn knowledge_flow(app: &TestApp) {
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, collection) = send(app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "handbook" }))).await;
    assert_eq!(status, 201, "{collection}");
    let collection = collection["id"].as_str().unwrap().to_owned();

    // Multipart Markdown with metadata; accepted at once with a job.
    let fields = [("metadata", json!({ "year": 2024, "team": "people" }).to_string())];
    let (status, accepted) = upload_multipart(app, &admin, &collection, "guide.md", GUIDE.as_bytes().to_vec(), &fields).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["document"]["status"], "queued");
    let guide = accepted["document"]["id"].as_str().unwrap().to_owned();
    let job = finished(app, &admin, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");

    // JSON text upload, and HTML sent as base64 without a file name (sniffed).
    let (status, notes) = send(app, &admin, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(json!({
        "text": "The cafeteria serves lunch from noon until two in the afternoon.", "title": "Cafeteria", "metadata": { "year": 2019 },
    }))).await;
    assert_eq!(status, 202, "{notes}");
    use base64::Engine;
    let html = "<!doctype html><html><head><title>Security</title></head><body><h1>Security</h1><p>Laptops must use full-disk encryption.</p></body></html>";
    let (status, page) = send(app, &admin, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(json!({
        "content_base64": base64::engine::general_purpose::STANDARD.encode(html),
    }))).await;
    assert_eq!(status, 202, "{page}");
    for accepted in [&notes, &page] {
        assert_eq!(finished(app, &admin, accepted["job_id"].as_str().unwrap()).await["status"], "succeeded");
    }
    let (_, page_doc) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{}", page["document"]["id"].as_str().unwrap()), None).await;
    assert_eq!(page_doc["status"], "succeeded");
    assert_eq!(page_doc["current_version"], 1);

    // Hybrid search: the answer, with its heading path, score components and highlights.
    let results = search(app, &admin, json!({ "query": "how do I reset my password", "top_k": 3 })).await;
    let top = &results[0];
    assert_eq!(top["document_id"], guide.as_str(), "{results:?}");
    assert_eq!(top["heading_path"], json!(["Employee handbook", "Accounts"]), "{top}");
    assert!(top["keyword"]["rank"].is_number() && top["vector"]["rank"].is_number(), "{top}");
    let text = top["text"].as_str().unwrap();
    let highlighted: Vec<&str> = top["highlights"].as_array().unwrap().iter().map(|h| &text[h[0].as_u64().unwrap() as usize..h[1].as_u64().unwrap() as usize]).collect();
    assert!(highlighted.contains(&"reset") && highlighted.contains(&"password"), "{highlighted:?}");
    // Vector search finds a paraphrase with no word in common; keyword search does not.
    let paraphrase = json!({ "query": "midday meal hours", "mode": "vector", "top_k": 1 });
    assert_eq!(search(app, &admin, paraphrase).await[0]["title"], "Cafeteria");
    assert!(search(app, &admin, json!({ "query": "midday meal hours", "mode": "keyword" })).await.iter().all(|r| r["title"] != "Cafeteria"));
    // Metadata filters: equality and a numeric range.
    let recent = search(app, &admin, json!({ "query": "lunch password flights", "metadata": { "year": { "gte": 2020 } } })).await;
    assert_eq!(documents_of(&recent).iter().collect::<std::collections::HashSet<_>>().len(), 1, "{recent:?}");
    assert!(documents_of(&recent).iter().all(|d| d == &guide));
    assert!(search(app, &admin, json!({ "query": "password", "metadata": { "team": "finance" } })).await.is_empty());

    // The same bytes again: nothing to do. Changed bytes: version 2, only the changed chunk embedded.
    let resend = [("document_id", guide.clone())];
    let (status, same) = upload_multipart(app, &admin, &collection, "guide.md", GUIDE.as_bytes().to_vec(), &resend).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["unchanged"], true);
    let changed = GUIDE.replace("economy class", "premium economy");
    let (status, second) = upload_multipart(app, &admin, &collection, "guide.md", changed.into_bytes(), &resend).await;
    assert_eq!(status, 202, "{second}");
    assert_eq!(finished(app, &admin, second["job_id"].as_str().unwrap()).await["status"], "succeeded");
    let (_, versions) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{guide}/versions"), None).await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 2, "{versions}");
    let flights = search(app, &admin, json!({ "query": "premium economy flights", "mode": "keyword" })).await;
    assert_eq!(flights[0]["version"], 2, "{flights:?}");
    assert!(search(app, &admin, json!({ "query": "economy class", "mode": "keyword", "top_k": 10 })).await.iter().all(|r| r["version"] == 2));
    // The stored bytes of version 1, and restoring it: a third version, searchable again.
    let original = app.with(Method::GET, &format!("/api/v1/documents/{guide}/versions/1"), &admin).send().await.unwrap();
    assert_eq!(original.headers()["content-type"], "text/markdown; charset=utf-8");
    assert_eq!(original.text().await.unwrap(), GUIDE);
    assert_eq!(send(app, &admin, Method::GET, &format!("/api/v1/documents/{guide}/versions/9"), None).await.0, 404);
    let (status, restored) = send(app, &admin, Method::POST, &format!("/api/v1/documents/{guide}/versions/1/restore"), None).await;
    assert_eq!(status, 202, "{restored}");
    assert_eq!(finished(app, &admin, restored["job_id"].as_str().unwrap()).await["status"], "succeeded");
    let economy = search(app, &admin, json!({ "query": "economy class flights", "mode": "keyword", "top_k": 1 })).await;
    assert_eq!(economy[0]["version"], 3, "{economy:?}");
    assert!(economy[0]["text"].as_str().unwrap().contains("must be economy class"));
    let metrics = app.metrics().await;
    assert!(metrics.lines().any(|l| l.starts_with("chunks_reused_total") && !l.ends_with(" 0")), "unchanged chunks reuse their embeddings");

    // A document only admins may read: invisible to a member in search, lists and by id.
    let acl = [("acl", json!({ "roles": ["admin"] }).to_string())];
    let (_, secret) = upload_multipart(app, &admin, &collection, "salaries.txt", b"Salary bands for engineers are reviewed every March.".to_vec(), &acl).await;
    assert_eq!(finished(app, &admin, secret["job_id"].as_str().unwrap()).await["status"], "succeeded");
    let secret_id = secret["document"]["id"].as_str().unwrap().to_owned();
    app.add_member(&admin, &tenant, "member@example.com", "user").await;
    let member = app.token("member@example.com").await;
    assert_eq!(documents_of(&search(app, &admin, json!({ "query": "salary bands" })).await)[0], secret_id);
    assert!(!documents_of(&search(app, &member, json!({ "query": "salary bands", "top_k": 10 })).await).contains(&secret_id));
    assert_eq!(send(app, &member, Method::GET, &format!("/api/v1/documents/{secret_id}"), None).await.0, 404);
    let (_, listed) = send(app, &member, Method::GET, &format!("/api/v1/collections/{collection}/documents"), None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3, "{listed}");

    // A damaged PDF fails its document with a reason; binary junk is refused at upload.
    let (status, broken) = upload_multipart(app, &admin, &collection, "report.pdf", b"%PDF-1.7\nnot really a pdf".to_vec(), &[]).await;
    assert_eq!(status, 202, "{broken}");
    let failed = finished(app, &admin, broken["job_id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let (_, broken_doc) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{}", broken["document"]["id"].as_str().unwrap()), None).await;
    assert_eq!(broken_doc["status"], "failed");
    assert!(broken_doc["error"].as_str().is_some_and(|e| !e.is_empty()), "{broken_doc}");
    let (status, junk) = upload_multipart(app, &admin, &collection, "notes.txt", vec![0, 159, 146, 150, 0, 1, 2, 3], &[]).await;
    assert_eq!(status, 422, "{junk}");
    assert_eq!(junk["error"]["code"], "unprocessable_entity");

    // Bad searches are clear errors.
    for (body, param) in [
        (json!({ "query": "  " }), "query"),
        (json!({ "query": "x", "top_k": 0 }), "top_k"),
        (json!({ "query": "x", "fusion": { "k": -1, "keyword_weight": 1, "vector_weight": 1 } }), "fusion"),
    ] {
        let (status, error) = send(app, &admin, Method::POST, "/api/v1/search", Some(body)).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some(param)), "{error}");
    }
    assert_eq!(send(app, &admin, Method::POST, "/api/v1/search", Some(json!({ "query": "x", "collections": ["nope"] }))).await.0, 404);

    // Deleting a document removes it from search.
    assert_eq!(app.with(Method::DELETE, &format!("/api/v1/documents/{guide}"), &admin).send().await.unwrap().status(), 204);
    assert!(!documents_of(&search(app, &admin, json!({ "query": "reset password", "top_k": 10 })).await).contains(&guide));
}

#[tokio::test]
async fn knowledge_base_on_sqlite() {
    let app = spawn_app_with(TestOptions { local_models: true, ..TestOptions::default() }).await;
    knowledge_flow(&app).await;
}

#[tokio::test]
async fn knowledge_base_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let app = spawn_app_with(TestOptions { local_models: true, postgres_url: Some(url), ..TestOptions::default() }).await;
    knowledge_flow(&app).await;
}

/// The semantic answer cache over the API: a miss hands out a ticket, the
/// stored answer serves the same question asked differently, other models
/// and other readers' views do not share it, a document change retires it.
#[tokio::test]
async fn answer_cache_serves_similar_questions_until_a_document_changes() {
    let app = spawn_app_with(TestOptions { local_models: true, ..TestOptions::default() }).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "handbook" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();
    let documents = format!("/api/v1/collections/{collection}/documents");
    let (status, accepted) = send(&app, &admin, Method::POST, &documents, Some(json!({ "text": GUIDE, "title": "Handbook" }))).await;
    assert_eq!(status, 202, "{accepted}");
    finished(&app, &admin, accepted["job_id"].as_str().unwrap()).await;

    let lookup = |question: &str, model: &str| json!({ "question": question, "collections": [collection], "model": model });
    let (status, missed) = send(&app, &admin, Method::POST, "/api/v1/answer-cache/lookup", Some(lookup("How do I reset my password?", "local-chat"))).await;
    assert_eq!(status, 200, "{missed}");
    assert_eq!(missed["hit"], false);
    let ticket = missed["ticket"].as_str().unwrap().to_owned();
    let answer = json!({ "ticket": ticket, "answer": "Use the forgotten password link on the sign-in page [1].", "citations": [{ "document_id": accepted["document"]["id"] }] });
    let (status, _) = send(&app, &admin, Method::POST, "/api/v1/answer-cache", Some(answer.clone())).await;
    assert_eq!(status, 204);
    let (status, spent) = send(&app, &admin, Method::POST, "/api/v1/answer-cache", Some(answer)).await;
    assert_eq!(status, 404, "a ticket is spent once: {spent}");

    let (_, hit) = send(&app, &admin, Method::POST, "/api/v1/answer-cache/lookup", Some(lookup("how do i reset my password", "local-chat"))).await;
    assert_eq!(hit["hit"], true, "{hit}");
    assert_eq!(hit["answer"]["model"], "local-chat");
    assert!(hit["answer"]["answer"].as_str().unwrap().contains("forgotten password"));
    let (_, other_question) = send(&app, &admin, Method::POST, "/api/v1/answer-cache/lookup", Some(lookup("When does the cafeteria open?", "local-chat"))).await;
    assert_eq!(other_question["hit"], false);
    let (_, other_model) = send(&app, &admin, Method::POST, "/api/v1/answer-cache/lookup", Some(lookup("how do i reset my password", "gpt-4o"))).await;
    assert_eq!(other_model["hit"], false);

    // Storing answers others are served needs manage_agents.
    app.add_member(&admin, &tenant, "member@example.com", "user").await;
    let member = app.token("member@example.com").await;
    let (status, refused) = send(&app, &member, Method::POST, "/api/v1/answer-cache/lookup", Some(lookup("how do i reset my password", "local-chat"))).await;
    assert_eq!(status, 403, "{refused}");

    // A restricted document the admin's role may read changes the admin's view: a new scope.
    let restricted = json!({ "text": "Executive travel may be booked in business class.", "title": "Board", "acl": { "roles": ["admin"] } });
    let (status, board) = send(&app, &admin, Method::POST, &documents, Some(restricted)).await;
    assert_eq!(status, 202, "{board}");
    finished(&app, &admin, board["job_id"].as_str().unwrap()).await;
    let (_, after_change) = send(&app, &admin, Method::POST, "/api/v1/answer-cache/lookup", Some(lookup("how do i reset my password", "local-chat"))).await;
    assert_eq!(after_change["hit"], false, "a document change retires the answer: {after_change}");

    let (_, unknown) = send(&app, &admin, Method::POST, "/api/v1/answer-cache/lookup", Some(json!({ "question": "x", "collections": ["nope"], "model": "m" }))).await;
    assert_eq!(unknown["error"]["code"], "not_found", "{unknown}");
    let metrics = app.metrics().await;
    assert!(metrics.contains("semantic_cache_requests_total{result=\"hit\"}"), "{metrics}");
}
