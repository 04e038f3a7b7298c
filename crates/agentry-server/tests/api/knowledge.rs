//! The knowledge base through the running server with the real local
//! embedding model: uploads (multipart and JSON) become durable jobs, search
//! is hybrid with filters and ACLs applied in the index, versions re-embed
//! only what changed, bad files fail with a reason; documents by URL are
//! fetched by the worker through the outbound guard (refused on loopback
//! unless allowlisted). SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const GUIDE: &str = "# Employee handbook\n\n## Accounts\n\n\
    To reset your password, open the sign-in page and choose the forgotten password link; \
    a reset email arrives within five minutes.\n\n\
    ## Travel\n\n\
    Flights booked for business trips must be economy class unless the journey is longer than eight hours.\n";

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
    let (status, notes) = send(
        app,
        &admin,
        Method::POST,
        &format!("/api/v1/collections/{collection}/documents"),
        Some(json!({
            "text": "The cafeteria serves lunch from noon until two in the afternoon.", "title": "Cafeteria", "metadata": { "year": 2019 },
        })),
    )
    .await;
    assert_eq!(status, 202, "{notes}");
    use base64::Engine;
    let html = "<!doctype html><html><head><title>Security</title></head><body><h1>Security</h1><p>Laptops must use full-disk encryption.</p></body></html>";
    let (status, page) = send(
        app,
        &admin,
        Method::POST,
        &format!("/api/v1/collections/{collection}/documents"),
        Some(json!({
            "content_base64": base64::engine::general_purpose::STANDARD.encode(html),
        })),
    )
    .await;
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
    assert!(metrics.contains("cache_requests_total{cache=\"answer\",result=\"hit\"}"), "{metrics}");
}

/// Groups in document ACLs, on the mock embedder: the group's members see a
/// restricted document in search, lists and by id, nobody else does (not
/// even an admin outside the group); leaving the group hides it again; an
/// ACL naming an unknown group is refused; group administration errors.
/// SQLite, then PostgreSQL when configured.
#[tokio::test]
async fn documents_restricted_to_a_group_are_seen_by_its_members_only() {
    let mut databases = vec![None];
    databases.extend(agentry_db::test_support::fresh_postgres_url().await.map(Some));
    for postgres_url in databases {
        let app = spawn_app_with(TestOptions { postgres_url, ..mock_knowledge() }).await;
        group_acl_flow(&app).await;
    }
}

async fn group_acl_flow(app: &TestApp) {
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let alice_id = app.add_member(&admin, &tenant, "alice@example.com", "user").await;
    let bob_id = app.add_member(&admin, &tenant, "bob@example.com", "user").await;
    let (alice, bob) = (app.token("alice@example.com").await, app.token("bob@example.com").await);
    let groups = format!("/api/v1/tenants/{tenant}/groups");

    // Administration: names are trimmed and unique, only members join, unknown groups are 404, all of it needs manage_users.
    let (status, finance) = send(app, &admin, Method::POST, &groups, Some(json!({ "name": "  Finance ", "description": "Money" }))).await;
    assert_eq!((status, finance["name"].as_str()), (201, Some("Finance")), "{finance}");
    let group_id = finance["id"].as_str().unwrap().to_owned();
    let group = format!("{groups}/{group_id}");
    let (status, duplicate) = send(app, &admin, Method::POST, &groups, Some(json!({ "name": "Finance" }))).await;
    assert_eq!((status, duplicate["error"]["code"].as_str()), (409, Some("conflict")), "{duplicate}");
    for name in ["   ".to_owned(), "x".repeat(101)] {
        let (status, invalid) = send(app, &admin, Method::POST, &groups, Some(json!({ "name": name }))).await;
        assert_eq!((status, invalid["error"]["param"].as_str()), (400, Some("name")), "{invalid}");
    }
    for _ in 0..2 {
        assert_eq!(send(app, &admin, Method::PUT, &format!("{group}/members/{alice_id}"), None).await.0, 204, "idempotent");
    }
    let unknown = format!("{groups}/00000000-0000-0000-0000-000000000000");
    assert_eq!(send(app, &admin, Method::PUT, &format!("{unknown}/members/{alice_id}"), None).await.0, 404);
    assert_eq!(send(app, &admin, Method::GET, &unknown, None).await.0, 404);
    let (status, updated) = send(app, &admin, Method::PATCH, &group, Some(json!({ "description": "Finance team" }))).await;
    assert_eq!((status, updated["name"].as_str(), updated["description"].as_str()), (200, Some("Finance"), Some("Finance team")), "{updated}");
    let (_, shown) = send(app, &admin, Method::GET, &group, None).await;
    let members: Vec<&str> = shown["members"].as_array().unwrap().iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    assert_eq!(members, [alice_id.as_str()], "{shown}");
    assert_eq!(send(app, &admin, Method::GET, &groups, None).await.1["data"].as_array().unwrap().len(), 1);
    for (method, path) in [(Method::GET, groups.clone()), (Method::POST, groups.clone()), (Method::GET, group.clone()), (Method::PUT, format!("{group}/members/{bob_id}"))] {
        let body = (method == Method::POST).then(|| json!({ "name": "Sneaky" }));
        assert_eq!(send(app, &bob, method.clone(), &path, body).await.0, 403, "{method} {path} without manage_users");
    }

    // A document for the group: its members only. The uploader (outside the group) still gets the 202 answer.
    let (_, collection) = send(app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "ledgers" }))).await;
    let documents = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let restricted = json!({ "text": "Quarterly revenue forecasts are due on the fifth.", "title": "Forecasts", "acl": { "groups": [group_id] } });
    let (status, accepted) = send(app, &admin, Method::POST, &documents, Some(restricted)).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["document"]["acl"]["groups"], json!([group_id]));
    assert_eq!(finished(app, &alice, accepted["job_id"].as_str().unwrap()).await["status"], "succeeded");
    let doc_id = accepted["document"]["id"].as_str().unwrap().to_owned();
    let query = json!({ "query": "revenue forecasts", "mode": "keyword", "top_k": 10 });
    let sees = async |token: &str| {
        let found = documents_of(&search(app, token, query.clone()).await).contains(&doc_id);
        let (_, listed) = send(app, token, Method::GET, &documents, None).await;
        let listed = listed["data"].as_array().unwrap().iter().any(|d| d["id"] == doc_id.as_str());
        let by_id = send(app, token, Method::GET, &format!("/api/v1/documents/{doc_id}"), None).await.0;
        (found, listed, by_id)
    };
    assert_eq!(sees(&alice).await, (true, true, 200), "a member of the group");
    assert_eq!(sees(&bob).await, (false, false, 404), "not in the group");
    assert_eq!(sees(&admin).await, (false, false, 404), "an admin outside the group");

    // Leaving the group hides the document at once; removing someone not in it is 404.
    assert_eq!(send(app, &admin, Method::DELETE, &format!("{group}/members/{alice_id}"), None).await.0, 204);
    assert_eq!(send(app, &admin, Method::DELETE, &format!("{group}/members/{alice_id}"), None).await.0, 404);
    assert_eq!(sees(&alice).await, (false, false, 404), "left the group");
    // Leaving the tenant leaves its groups.
    assert_eq!(send(app, &admin, Method::PUT, &format!("{group}/members/{bob_id}"), None).await.0, 204);
    assert_eq!(send(app, &admin, Method::DELETE, &format!("/api/v1/tenants/{tenant}/users/{bob_id}"), None).await.0, 204);
    assert_eq!(send(app, &admin, Method::GET, &group, None).await.1["members"], json!([]));

    // A typo in an ACL must not hide a document from everyone: unknown groups are refused.
    let typo = json!({ "text": "Budget notes.", "acl": { "groups": ["no-such-group"] } });
    let (status, refused) = send(app, &admin, Method::POST, &documents, Some(typo)).await;
    assert_eq!((status, refused["error"]["code"].as_str(), refused["error"]["param"].as_str()), (400, Some("invalid_request"), Some("acl")), "{refused}");

    // Only members of the tenant join its groups (last: two tenants leave the admin without a default one for /api/v1/collections).
    let (status, _) = send(app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "globex", "name": "Globex" }))).await;
    assert_eq!(status, 201);
    let outsider = app.add_member(&admin, "globex", "carol@example.com", "user").await;
    let (status, refused) = send(app, &admin, Method::PUT, &format!("{group}/members/{outsider}"), None).await;
    assert_eq!((status, refused["error"]["param"].as_str()), (400, Some("user_id")), "not a member of this tenant: {refused}");
    assert_eq!(send(app, &admin, Method::DELETE, &group, None).await.0, 204);
    assert_eq!(send(app, &admin, Method::GET, &group, None).await.0, 404);
}

/// A tiny web site for URL uploads on 127.0.0.1: `pages` by path (path,
/// content type, body with `{base}` standing for the site's own
/// `http://127.0.0.1:port`), 404 otherwise; records every path it is asked for.
pub struct Site {
    port: u16,
    requested: Arc<parking_lot::Mutex<Vec<String>>>,
}

impl Site {
    pub async fn start(pages: &'static [(&'static str, &'static str, &'static str)]) -> Self {
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let requested = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = requested.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            log.lock().push(uri.path().to_owned());
            let page = pages.iter().find(|(path, _, _)| *path == uri.path());
            let base = base.clone();
            async move {
                match page {
                    Some((_, content_type, body)) => ([(axum::http::header::CONTENT_TYPE, *content_type)], body.replace("{base}", &base)).into_response(),
                    None => (axum::http::StatusCode::NOT_FOUND, "no such page").into_response(),
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { port, requested }
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port)
    }

    pub fn hits(&self) -> usize {
        self.requested.lock().len()
    }

    /// How many times `path` was asked for.
    pub fn hits_of(&self, path: &str) -> usize {
        self.requested.lock().iter().filter(|p| *p == path).count()
    }
}

const SECURITY_PAGE: &str = "<!doctype html><html><head><title>Security policy</title></head><body>\
    <h1>Security policy</h1><p>Every laptop must use full-disk encryption and lock after five idle minutes.</p></body></html>";
/// Served as text/plain: the `.md` in the URL's path makes it Markdown.
const TRAVEL_NOTES: &str = "# Travel\n\n## Trains\n\nRail journeys under four hours are preferred to domestic flights.\n";
pub const PAGES: &[(&str, &str, &str)] = &[("/policies/security.html", "text/html; charset=utf-8", SECURITY_PAGE), ("/notes/travel.md", "text/plain; charset=utf-8", TRAVEL_NOTES)];

async fn new_collection(app: &TestApp) -> (String, String) {
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, collection) = send(app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "web" }))).await;
    assert_eq!(status, 201, "{collection}");
    (admin, collection["id"].as_str().unwrap().to_owned())
}

/// With the default policy: a name that resolves to loopback is accepted
/// (names are judged when fetched) and then fails without a request made; a
/// literal loopback address or another scheme is refused at upload.
async fn url_refused_flow(app: &TestApp) {
    let site = Site::start(PAGES).await;
    let (admin, collection) = new_collection(app).await;
    let documents = format!("/api/v1/collections/{collection}/documents");
    let url = site.url("localhost", "/policies/security.html");
    let (status, accepted) = send(app, &admin, Method::POST, &documents, Some(json!({ "url": url }))).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!((accepted["document"]["source"].as_str(), accepted["document"]["status"].as_str()), (Some(url.as_str()), Some("queued")));
    let job = finished(app, &admin, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("not allowed"), "{job}");
    let id = accepted["document"]["id"].as_str().unwrap();
    let (_, document) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{id}"), None).await;
    assert_eq!(document["status"], "failed", "{document}");
    assert!(document["error"].as_str().unwrap().contains("knowledge.url_fetch.allow"), "{document}");
    let (_, versions) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{id}/versions"), None).await;
    assert_eq!(versions["data"][0]["source_url"], url.as_str(), "{versions}");
    assert_eq!(versions["data"][0]["format"], Value::Null, "nothing fetched: {versions}");
    let (status, unfetched) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{id}/versions/1"), None).await;
    assert_eq!(status, 409, "{unfetched}");

    for (body, says) in [
        (json!({ "url": site.url("127.0.0.1", "/policies/security.html") }), "address 127.0.0.1 is not allowed"),
        (json!({ "url": "file:///etc/passwd" }), "scheme"),
        (json!({ "url": "not a url" }), "not valid"),
    ] {
        let (status, error) = send(app, &admin, Method::POST, &documents, Some(body)).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some("url")), "{error}");
        assert!(error["error"]["message"].as_str().unwrap().contains(says), "{error}");
    }
    let (status, both) = send(app, &admin, Method::POST, &documents, Some(json!({ "url": url, "text": "x" }))).await;
    assert_eq!(status, 400, "{both}");
    let (status, named) = send(app, &admin, Method::POST, &documents, Some(json!({ "url": url, "file_name": "a.md" }))).await;
    assert_eq!((status, named["error"]["param"].as_str()), (400, Some("file_name")), "{named}");
    assert_eq!(site.hits(), 0, "nothing was fetched");
}

/// With 127.0.0.1 allowlisted: pages are fetched by the worker, their format
/// decided from the bytes, the path and the content type, and searchable;
/// uploading the URL again fetches it again; a 404 fails with the status.
async fn url_fetch_flow(app: &TestApp) {
    let site = Site::start(PAGES).await;
    let (admin, collection) = new_collection(app).await;
    let documents = format!("/api/v1/collections/{collection}/documents");
    let mut ids = Vec::new();
    for (path, format) in [("/policies/security.html", "html"), ("/notes/travel.md", "markdown")] {
        let url = site.url("127.0.0.1", path);
        let (status, accepted) = send(app, &admin, Method::POST, &documents, Some(json!({ "url": url, "metadata": { "site": "intranet" } }))).await;
        assert_eq!(status, 202, "{accepted}");
        let job = finished(app, &admin, accepted["job_id"].as_str().unwrap()).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        let id = accepted["document"]["id"].as_str().unwrap().to_owned();
        let (_, document) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{id}"), None).await;
        assert_eq!((document["source"].as_str(), document["status"].as_str()), (Some(url.as_str()), Some("succeeded")), "{document}");
        let (_, versions) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{id}/versions"), None).await;
        let version = &versions["data"][0];
        assert_eq!((version["format"].as_str(), version["source_url"].as_str()), (Some(format), Some(url.as_str())), "{versions}");
        assert!(version["size_bytes"].as_i64().unwrap() > 0 && version["content_hash"].is_string(), "{versions}");
        ids.push(id);
    }
    assert_eq!(site.hits(), 2);
    let found = search(app, &admin, json!({ "query": "laptop disk encryption", "top_k": 1 })).await;
    assert_eq!(found[0]["document_id"], ids[0].as_str(), "{found:?}");
    let found = search(app, &admin, json!({ "query": "rail journeys instead of flights", "metadata": { "site": "intranet" }, "top_k": 1 })).await;
    assert_eq!(found[0]["document_id"], ids[1].as_str(), "{found:?}");
    assert_eq!(found[0]["heading_path"], json!(["Travel", "Trains"]), "Markdown headings: {found:?}");
    let stored = app.with(Method::GET, &format!("/api/v1/documents/{}/versions/1", ids[1]), &admin).send().await.unwrap();
    assert_eq!(stored.text().await.unwrap(), TRAVEL_NOTES);

    // The same URL again is fetched again: a new version, its embeddings reused.
    let again = json!({ "url": site.url("127.0.0.1", "/notes/travel.md"), "document_id": ids[1] });
    let (status, second) = send(app, &admin, Method::POST, &documents, Some(again)).await;
    assert_eq!(status, 202, "{second}");
    assert_eq!(finished(app, &admin, second["job_id"].as_str().unwrap()).await["status"], "succeeded");
    assert_eq!(site.hits(), 3);
    let (_, document) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{}", ids[1]), None).await;
    assert_eq!(document["current_version"], 2, "{document}");

    // A missing page fails its document with the status in the reason.
    let (status, missing) = send(app, &admin, Method::POST, &documents, Some(json!({ "url": site.url("127.0.0.1", "/gone.html") }))).await;
    assert_eq!(status, 202, "{missing}");
    let job = finished(app, &admin, missing["job_id"].as_str().unwrap()).await;
    assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("failed"), Some(1)), "a 404 is not retried: {job}");
    let (_, document) = send(app, &admin, Method::GET, &format!("/api/v1/documents/{}", missing["document"]["id"].as_str().unwrap()), None).await;
    assert_eq!(document["status"], "failed");
    assert!(document["error"].as_str().unwrap().contains("HTTP status 404"), "{document}");
}

fn allow_loopback() -> agentry_server::configuration::KnowledgeConfig {
    let mut knowledge = agentry_server::configuration::KnowledgeConfig::default();
    knowledge.url_fetch.allow = vec![agentry_core::outbound::AllowEntry::parse("127.0.0.1").unwrap()];
    knowledge
}

// The refusals never reach parsing or embedding: no local models needed.
#[tokio::test]
async fn knowledge_url_uploads_refused_on_sqlite() {
    url_refused_flow(&spawn_app_with(TestOptions::default()).await).await;
}

#[tokio::test]
async fn knowledge_url_uploads_refused_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    url_refused_flow(&spawn_app_with(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await).await;
}

#[tokio::test]
async fn knowledge_url_uploads_fetched_on_sqlite() {
    let app = spawn_app_with(TestOptions { local_models: true, knowledge: allow_loopback(), ..TestOptions::default() }).await;
    url_fetch_flow(&app).await;
}

#[tokio::test]
async fn knowledge_url_uploads_fetched_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let app = spawn_app_with(TestOptions { local_models: true, postgres_url: Some(url), knowledge: allow_loopback(), ..TestOptions::default() }).await;
    url_fetch_flow(&app).await;
}

#[test]
fn knowledge_url_fetch_settings_name_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentry.toml");
    for (toml, key) in [
        ("[knowledge.url_fetch]\nallow = [\"10.0.0.0/33\"]\n", "knowledge.url_fetch.allow"),
        ("[knowledge.url_fetch]\ntimeout_secs = 0\n", "knowledge.url_fetch.timeout_secs"),
        ("[knowledge.url_fetch]\nmax_redirect = 3\n", "max_redirect"),
    ] {
        std::fs::write(&path, toml).unwrap();
        let error = agentry_server::Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains(key), "{toml}: {error}");
    }
    std::fs::write(&path, "[knowledge]\nurl_fetch = { allow = [\"10.0.0.0/8\", \"wiki.internal\"], timeout_secs = 10, max_redirects = 2 }\n").unwrap();
    let settings = agentry_server::Settings::load(Some(&path)).unwrap();
    let policy = settings.knowledge.outbound_policy();
    assert_eq!((policy.allow.len(), policy.timeout, policy.max_redirects), (2, Duration::from_secs(10), 2));
    assert_eq!(policy.max_bytes, settings.knowledge.max_document_bytes);
}
