//! The OpenAI-compatible Batch API through the server: a JSONL file is
//! uploaded and checked line by line, a batch over it answers every line
//! like a direct call (chat, embeddings, `agent:<name>`) into output and
//! error files in OpenAI's line format; lines wait out rate limits, fail
//! with `insufficient_quota` once a budget is spent (the batch does not),
//! a cancelled batch reports the lines it never ran; bad input gets the
//! standard envelope; and files and batches are their owner's (another
//! member gets a 404, `manage_tenant` sees all).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

fn chat_line(custom_id: &str, model: &str, text: &str) -> String {
    json!({ "custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": { "model": model, "messages": user_message(text), "max_tokens": 9 } }).to_string()
}

/// `POST /v1/files` with `purpose=batch`: the status and the answer.
async fn upload(app: &TestApp, token: &str, lines: &[String]) -> (u16, Value) {
    upload_bytes(app, token, format!("{}\n", lines.join("\n")).into_bytes(), "batch").await
}

async fn upload_bytes(app: &TestApp, token: &str, bytes: Vec<u8>, purpose: &str) -> (u16, Value) {
    // The file first, as the Node SDK sends it: the purpose is checked after the bytes are in.
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name("requests.jsonl")).text("purpose", purpose.to_owned());
    let response = app.with(Method::POST, "/v1/files", token).multipart(form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn create_batch(app: &TestApp, token: &str, file_id: &str, endpoint: &str) -> Value {
    let body = json!({ "input_file_id": file_id, "endpoint": endpoint, "completion_window": "24h", "metadata": { "job": "nightly" } });
    let (status, batch) = send(app, token, Method::POST, "/v1/batches", Some(body)).await;
    assert_eq!(status, 200, "{batch}");
    batch
}

async fn until_ended(app: &TestApp, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, batch) = send(app, token, Method::GET, &format!("/v1/batches/{id}"), None).await;
        assert_eq!(status, 200, "{batch}");
        if matches!(batch["status"].as_str(), Some("completed" | "failed" | "expired" | "cancelled")) {
            return batch;
        }
        assert!(Instant::now() < deadline, "the batch never ended: {batch}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A file's lines, parsed.
async fn lines_of(app: &TestApp, token: &str, file_id: &Value) -> Vec<Value> {
    let Some(id) = file_id.as_str() else { return Vec::new() };
    let response = app.with(Method::GET, &format!("/v1/files/{id}/content"), token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn by_custom_id(lines: &[Value]) -> std::collections::HashMap<String, Value> {
    lines.iter().map(|line| (line["custom_id"].as_str().unwrap().to_owned(), line.clone())).collect()
}

#[tokio::test]
async fn a_batch_answers_every_line_once_into_output_and_error_files() {
    every_line_once(TestOptions::default()).await;
}

#[tokio::test]
async fn a_batch_answers_every_line_once_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    every_line_once(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await;
}

async fn every_line_once(options: TestOptions) {
    let app = spawn_app_with(options).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, body) = send(&app, &admin, Method::POST, "/api/v1/agents", Some(json!({ "name": "helper", "instructions": "i", "model": "mock-echo" }))).await;
    assert_eq!(status, 201, "{body}");
    app.add_member(&admin, &tenant, "member@example.com", "user").await;
    app.add_member(&admin, &tenant, "nosy@example.com", "user").await;
    let member = app.token("member@example.com").await;
    let nosy = app.token("nosy@example.com").await;

    let lines = [chat_line("a", "mock-echo", "first"), chat_line("b", "nope", "second"), chat_line("c", "agent:helper", "third"), chat_line("d", "mock-echo", "fourth")];
    let (status, file) = upload(&app, &member, &lines).await;
    assert_eq!(status, 200, "{file}");
    assert_eq!((file["object"].as_str(), file["purpose"].as_str(), file["status"].as_str()), (Some("file"), Some("batch"), Some("processed")), "{file}");
    let file_id = file["id"].as_str().unwrap();
    let batch = create_batch(&app, &member, file_id, "/v1/chat/completions").await;
    assert_eq!((batch["object"].as_str(), batch["request_counts"]["total"].as_i64(), batch["metadata"]["job"].as_str()), (Some("batch"), Some(4), Some("nightly")), "{batch}");
    let batch_id = batch["id"].as_str().unwrap();

    let done = until_ended(&app, &member, batch_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"], json!({ "total": 4, "completed": 3, "failed": 1 }), "{done}");
    for stamp in ["created_at", "in_progress_at", "finalizing_at", "completed_at", "expires_at"] {
        assert!(done[stamp].as_i64().is_some_and(|t| t > 1_700_000_000), "{stamp}: {done}");
    }
    let output = by_custom_id(&lines_of(&app, &member, &done["output_file_id"]).await);
    assert_eq!(output.len(), 3, "{output:?}");
    for (id, text) in [("a", "echo: first"), ("c", "echo: third"), ("d", "echo: fourth")] {
        let line = &output[id];
        assert_eq!(line["response"]["status_code"], 200, "{line}");
        assert_eq!(line["response"]["body"]["object"], "chat.completion", "{line}");
        assert_eq!(line["response"]["body"]["choices"][0]["message"]["content"], text, "{line}");
        assert!(line["id"].as_str().unwrap().starts_with("batch_req_"), "{line}");
        assert_eq!(line["error"], Value::Null);
    }
    let errors = lines_of(&app, &member, &done["error_file_id"]).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0]["custom_id"].as_str(), errors[0]["response"]["status_code"].as_i64()), (Some("b"), Some(404)), "{}", errors[0]);
    assert_eq!(errors[0]["response"]["body"]["error"]["code"], "model_not_found", "{}", errors[0]);

    // Each answered line was recorded once, for the member, on the endpoint it called.
    let calls = app.model_calls(3).await;
    let batch_calls: Vec<_> = calls.iter().filter(|c| c.request_id.starts_with("batch_req_") && c.status == "success").collect();
    assert_eq!(batch_calls.len(), 3, "{calls:?}");
    assert!(batch_calls.iter().all(|c| c.endpoint == "/v1/chat/completions" && c.user_id.is_some()), "{batch_calls:?}");

    // The job shows its progress.
    let (_, jobs) = send(&app, &member, Method::GET, "/api/v1/jobs?kind=batch", None).await;
    let job = jobs["data"].as_array().unwrap().iter().find(|j| j["subject_id"] == batch_id).cloned().unwrap_or_else(|| panic!("{jobs}"));
    assert_eq!(job["status"], "succeeded", "{job}");

    // Another member sees none of it; manage_tenant sees all of it.
    let output_id = done["output_file_id"].as_str().unwrap();
    for (method, path) in [
        (Method::GET, format!("/v1/batches/{batch_id}")),
        (Method::POST, format!("/v1/batches/{batch_id}/cancel")),
        (Method::GET, format!("/v1/files/{file_id}")),
        (Method::GET, format!("/v1/files/{output_id}/content")),
        (Method::DELETE, format!("/v1/files/{file_id}")),
    ] {
        let (status, body) = send(&app, &nosy, method, &path, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    for path in ["/v1/batches", "/v1/files"] {
        let (status, theirs) = send(&app, &nosy, Method::GET, path, None).await;
        assert_eq!((status, theirs["data"].as_array().map(Vec::len)), (200, Some(0)), "{path}: {theirs}");
        let (_, all) = send(&app, &admin, Method::GET, path, None).await;
        assert!(!all["data"].as_array().unwrap().is_empty(), "{path}: {all}");
    }
    let (status, seen) = send(&app, &admin, Method::GET, &format!("/v1/batches/{batch_id}"), None).await;
    assert_eq!((status, seen["id"].as_str()), (200, Some(batch_id)));

    // OpenAI's list form pages with `after`.
    let (_, files) = send(&app, &member, Method::GET, "/v1/files?limit=1", None).await;
    assert_eq!((files["object"].as_str(), files["has_more"].as_bool(), files["data"].as_array().map(Vec::len)), (Some("list"), Some(true), Some(1)), "{files}");
    let (_, next) = send(&app, &member, Method::GET, &format!("/v1/files?limit=10&after={}", files["last_id"].as_str().unwrap()), None).await;
    assert_eq!(next["data"].as_array().map(Vec::len), Some(2), "{next}");

    // An ended batch is not cancelled; a file is deleted for good.
    let (status, body) = send(&app, &member, Method::POST, &format!("/v1/batches/{batch_id}/cancel"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, deleted) = send(&app, &member, Method::DELETE, &format!("/v1/files/{file_id}"), None).await;
    assert_eq!((status, deleted["deleted"].as_bool()), (200, Some(true)), "{deleted}");
    let (status, _) = send(&app, &member, Method::GET, &format!("/v1/files/{file_id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn embeddings_lines_and_lines_that_wait_out_a_rate_limit() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    // One call at a time: eight lines in flight would be refused without waiting.
    let response = app.with(Method::PUT, "/api/v1/admin/rate-limits/tiers/single", &admin).json(&json!({ "concurrent": 1 })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = app.with(Method::PUT, "/api/v1/rate-limits/assignments", &admin).json(&json!({ "scope": "tenant", "tier": "single" })).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let lines: Vec<String> = (0..6)
        .map(|i| json!({ "custom_id": format!("e{i}"), "method": "POST", "url": "/v1/embeddings", "body": { "model": "mock-embed", "input": format!("text {i}") } }).to_string())
        .collect();
    let (status, file) = upload(&app, &admin, &lines).await;
    assert_eq!(status, 200, "{file}");
    let file_id = file["id"].as_str().unwrap();
    // A file of embeddings lines is not a chat batch.
    let body = json!({ "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h" });
    let (status, refused) = send(&app, &admin, Method::POST, "/v1/batches", Some(body)).await;
    assert_eq!((status, refused["error"]["param"].as_str()), (400, Some("endpoint")), "{refused}");

    let batch = create_batch(&app, &admin, file_id, "/v1/embeddings").await;
    let done = until_ended(&app, &admin, batch["id"].as_str().unwrap()).await;
    assert_eq!((done["status"].as_str(), done["request_counts"]["completed"].as_i64()), (Some("completed"), Some(6)), "{done}");
    assert_eq!(done["error_file_id"], Value::Null, "{done}");
    let output = lines_of(&app, &admin, &done["output_file_id"]).await;
    assert_eq!(output.len(), 6);
    assert!(output.iter().all(|l| l["response"]["body"]["object"] == "list" && l["response"]["body"]["data"][0]["embedding"].is_array()), "{output:?}");
}

#[tokio::test]
async fn a_budget_spent_mid_batch_fails_the_remaining_lines_not_the_batch() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    // Two calls of `priced` with max_tokens 9 fit ($0.009 each).
    let (status, budget) = send(&app, &admin, Method::POST, "/api/v1/costs/budgets", Some(json!({ "scope": "tenant", "period": "daily", "limit_usd": 0.0225 }))).await;
    assert!(status < 300, "{budget}");
    let lines: Vec<String> = (0..5).map(|i| chat_line(&format!("p{i}"), "priced", "a b c d e f g h")).collect();
    let (_, file) = upload(&app, &admin, &lines).await;
    let batch = create_batch(&app, &admin, file["id"].as_str().unwrap(), "/v1/chat/completions").await;
    let done = until_ended(&app, &admin, batch["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["request_counts"], json!({ "total": 5, "completed": 2, "failed": 3 }), "{done}");
    let errors = lines_of(&app, &admin, &done["error_file_id"]).await;
    assert!(errors.iter().all(|e| e["response"]["status_code"] == 429 && e["response"]["body"]["error"]["code"] == "insufficient_quota"), "{errors:?}");
}

#[tokio::test]
async fn a_cancelled_batch_reports_each_line_once_answered_or_not_run() {
    cancelled(TestOptions::default()).await;
}

#[tokio::test]
async fn a_cancelled_batch_reports_each_line_once_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    cancelled(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await;
}

async fn cancelled(options: TestOptions) {
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let lines: Vec<String> = (0..40).map(|i| chat_line(&format!("s{i}"), "mock-slow-400", "slowly")).collect();
    let (_, file) = upload(&app, &admin, &lines).await;
    let file_id = file["id"].as_str().unwrap();
    let batch = create_batch(&app, &admin, file_id, "/v1/chat/completions").await;
    let id = batch["id"].as_str().unwrap();
    // Its input cannot be deleted while it runs.
    let (status, body) = send(&app, &admin, Method::DELETE, &format!("/v1/files/{file_id}"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, cancelling) = send(&app, &admin, Method::POST, &format!("/v1/batches/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelling}");
    assert!(matches!(cancelling["status"].as_str(), Some("cancelling" | "cancelled")), "{cancelling}");
    let done = until_ended(&app, &admin, id).await;
    assert_eq!(done["status"], "cancelled", "{done}");
    let output = lines_of(&app, &admin, &done["output_file_id"]).await;
    let errors = lines_of(&app, &admin, &done["error_file_id"]).await;
    assert!(!output.is_empty() && output.len() < 40, "{}", output.len());
    assert!(errors.iter().all(|e| e["error"]["code"] == "batch_cancelled"), "{errors:?}");
    let ids: Vec<&str> = output.iter().chain(&errors).map(|l| l["custom_id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!((ids.len(), unique.len()), (40, 40), "every line once: {ids:?}");
    assert_eq!(done["request_counts"]["completed"].as_u64(), Some(output.len() as u64), "{done}");
}

#[tokio::test]
async fn bad_files_and_batches_get_the_standard_envelope_and_leave_nothing() {
    let mut options = TestOptions::default();
    options.files.max_bytes = 4096;
    options.batches.max_lines = 3;
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let good = chat_line("a", "mock-echo", "hi");
    let embed = json!({ "custom_id": "b", "method": "POST", "url": "/v1/embeddings", "body": {} }).to_string();
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (b"not json\n".to_vec(), "batch", 400, "line 1: not a request object"),
        (format!("{good}\n\n{good}\n").into_bytes(), "batch", 400, "line 3: custom_id 'a' is used by an earlier line"),
        (format!("{good}\n{embed}\n").into_bytes(), "batch", 400, "line 2: 'url' is /v1/embeddings but earlier lines call /v1/chat/completions"),
        (format!("{}\n", chat_line("x", "m", "y").replace("POST", "GET")).into_bytes(), "batch", 400, "'method' must be \"POST\""),
        ((0..4).map(|i| chat_line(&format!("l{i}"), "m", "t") + "\n").collect::<String>().into_bytes(), "batch", 400, "line 4: a batch takes at most 3 requests"),
        (b"\n\n".to_vec(), "batch", 400, "no request lines"),
        (format!("{good}\n").into_bytes(), "fine-tune", 400, "'purpose' must be \"batch\""),
        (vec![b'x'; 5000], "batch", 413, "files.max_bytes"),
    ];
    for (bytes, purpose, status, message) in cases {
        let (got, body) = upload_bytes(&app, &admin, bytes, purpose).await;
        assert_eq!(got, status, "{message}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(message), "{message}: {body}");
    }
    // A form without the file, or without a purpose; a body that is not a form.
    let form = reqwest::multipart::Form::new().text("purpose", "batch");
    let response = app.with(Method::POST, "/v1/files", &admin).multipart(form).send().await.unwrap();
    assert_error(response, 400, "invalid_request").await;
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(good.clone().into_bytes()).file_name("a.jsonl"));
    let response = app.with(Method::POST, "/v1/files", &admin).multipart(form).send().await.unwrap();
    let body = assert_error(response, 400, "invalid_request").await;
    assert!(body["message"].as_str().unwrap().contains("purpose"), "{body}");
    let response = app.with(Method::POST, "/v1/files", &admin).json(&json!({ "purpose": "batch" })).send().await.unwrap();
    assert_error(response, 400, "invalid_request").await;
    // Nothing of the refused uploads is listed.
    let (_, files) = send(&app, &admin, Method::GET, "/v1/files", None).await;
    assert_eq!(files["data"].as_array().map(Vec::len), Some(0), "{files}");

    let (_, file) = upload(&app, &admin, &[good]).await;
    let file_id = file["id"].as_str().unwrap();
    for (body, param) in [
        (json!({ "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "1h" }), "completion_window"),
        (json!({ "input_file_id": "file-nope", "endpoint": "/v1/chat/completions", "completion_window": "24h" }), "input_file_id"),
        (json!({ "input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h", "metadata": { "n": 1 } }), "metadata"),
    ] {
        let (status, refused) = send(&app, &admin, Method::POST, "/v1/batches", Some(body)).await;
        assert_eq!((status, refused["error"]["param"].as_str()), (400, Some(param)), "{refused}");
    }
    let (status, _) = send(&app, &admin, Method::POST, "/v1/batches", Some(json!({ "input_file_id": file_id, "endpoint": "/v1/files", "completion_window": "24h" }))).await;
    assert_eq!(status, 400);
    // The master key names no tenant: files and batches belong to one.
    let response = app.with(Method::GET, "/v1/batches", MASTER_KEY).send().await.unwrap();
    let body = assert_error(response, 400, "invalid_request").await;
    assert!(body["message"].as_str().unwrap().contains("X-Agentry-Tenant"), "{body}");
    let (status, body) = send(&app, &admin, Method::GET, "/v1/files?order=asc", None).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("order")), "{body}");
}
