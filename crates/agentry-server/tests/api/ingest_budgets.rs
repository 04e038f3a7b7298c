//! Ingestion bombs through the running server: a document built to expand
//! when parsed (a JSON key repeated for every array element) fails its job
//! at once with the reason, without retries; titles and chunk sizes have
//! limits the API states. (Jobs whose worker died on their last attempt
//! are covered in agentry-db's storage suite.)

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// ~100 KB of JSON whose 10 KB key repeats for each of 45,000 array
/// elements when flattened: ~450 MB of text without a budget.
fn json_bomb() -> Vec<u8> {
    let key = "k".repeat(10_000);
    format!("{{\"{key}\": [{}1]}}", "1,".repeat(45_000)).into_bytes()
}

async fn upload(app: &TestApp, token: &str, collection: &str, name: &str, bytes: Vec<u8>, title: Option<&str>) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()));
    if let Some(title) = title {
        form = form.text("title", title.to_owned());
    }
    let response = app.with(Method::POST, &format!("/api/v1/collections/{collection}/documents"), token).multipart(form).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn collection(app: &TestApp, token: &str) -> String {
    let (status, created) = send(app, token, Method::POST, "/api/v1/collections", Some(json!({ "name": "bombs" }))).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_json_bomb_fails_its_job_at_once_with_the_reason() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let collection = collection(&app, &admin).await;

    let bomb = json_bomb();
    assert!(bomb.len() < 110_000);
    let started = Instant::now();
    let (status, accepted) = upload(&app, &admin, &collection, "bomb.json", bomb, None).await;
    assert_eq!(status, 202, "{accepted}");
    let job_id = accepted["job_id"].as_str().unwrap().to_owned();
    let job = loop {
        let (status, job) = send(&app, &admin, Method::GET, &format!("/api/v1/ingest-jobs/{job_id}"), None).await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "failed" || job["status"] == "succeeded" {
            break job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the bomb's job is still {} after a minute", job["status"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job["status"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "over a budget is not retried: {job}");
    let reason = job["error"].as_str().unwrap_or_default();
    assert!(reason.contains("too large to process") && reason.contains("extracted text") && reason.contains("4 MiB"), "{reason}");
    let (_, document) = send(&app, &admin, Method::GET, &format!("/api/v1/documents/{}", accepted["document"]["id"].as_str().unwrap()), None).await;
    assert_eq!((document["status"].as_str(), document["error"].as_str()), (Some("failed"), Some(reason)), "{document}");

    // The same shape at an honest size is ingested.
    let honest = format!("{{\"title\": \"Small\", \"items\": [{}1]}}", "1,".repeat(50)).into_bytes();
    let (status, accepted) = upload(&app, &admin, &collection, "small.json", honest, None).await;
    assert_eq!(status, 202, "{accepted}");
    wait_ingested(&app, &admin, &accepted).await;
}

#[tokio::test]
async fn titles_and_chunk_sizes_have_stated_limits() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let collection = collection(&app, &admin).await;

    // A given title over 300 characters is refused; one taken from a long file name is cut.
    let (status, refused) = upload(&app, &admin, &collection, "a.txt", b"text".to_vec(), Some(&"t".repeat(301))).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["param"], "title", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("300"), "{refused}");
    let (status, json_refused) =
        send(&app, &admin, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(json!({ "text": "x", "title": "t".repeat(5000) }))).await;
    assert_eq!((status, json_refused["error"]["param"].as_str()), (400, Some("title")), "{json_refused}");
    let (status, accepted) = upload(&app, &admin, &collection, &format!("{}.txt", "n".repeat(1000)), b"text".to_vec(), Some(&"t".repeat(300))).await;
    assert_eq!(status, 202, "{accepted}");
    let (status, derived) = upload(&app, &admin, &collection, &format!("{}.txt", "n".repeat(1000)), b"other".to_vec(), None).await;
    assert_eq!(status, 202, "{derived}");
    assert_eq!(derived["document"]["title"].as_str().map(|t| t.chars().count()), Some(300), "{derived}");

    // Chunks of a token, or overlapping all but a token, are refused.
    for chunking in [json!({ "max_tokens": 1, "overlap_tokens": 0 }), json!({ "max_tokens": 31 }), json!({ "max_tokens": 64, "overlap_tokens": 40 })] {
        let (status, body) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": format!("c{chunking}"), "chunking": chunking }))).await;
        assert_eq!(status, 400, "{chunking}: {body}");
        assert_eq!(body["error"]["param"], "chunking", "{body}");
    }
    let (status, body) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "ok", "chunking": { "max_tokens": 32, "overlap_tokens": 16 } }))).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn tiny_chunks_and_bad_parse_limits_are_refused_at_startup() {
    let mut settings: agentry_server::configuration::Settings = serde_json::from_value(json!({})).unwrap();
    settings.knowledge.chunk_max_tokens = 1;
    let error = settings.validate().unwrap_err();
    assert!(error.to_string().contains("knowledge.chunk_max_tokens") && error.to_string().contains("32"), "{error}");
    let mut settings: agentry_server::configuration::Settings = serde_json::from_value(json!({})).unwrap();
    settings.knowledge.parse.max_title_chars = 0;
    assert!(settings.validate().unwrap_err().to_string().contains("knowledge.parse"));
    let parsed: agentry_server::configuration::Settings = serde_json::from_value(json!({ "knowledge": { "parse": { "max_text_bytes": 8388608 } } })).unwrap();
    assert_eq!(parsed.knowledge.parse.max_text_bytes, 8 * 1024 * 1024);
    assert_eq!(parsed.knowledge.parse.max_chunks, 50_000);
}
