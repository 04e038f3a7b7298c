//! Knowledge beyond the current text: automatic per-document summaries
//! (written by a configured model, stored, searchable by the document's
//! readers only), search over an earlier version of a document, and
//! deleting earlier versions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn collection(app: &TestApp, token: &str) -> String {
    let (status, collection) = send(app, token, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    assert_eq!(status, 201, "{collection}");
    format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap())
}

async fn search(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    send(app, token, Method::POST, "/api/v1/search", Some(body)).await
}

#[tokio::test]
async fn summaries_are_written_stored_and_searchable_by_readers_only() {
    let mut options = mock_knowledge();
    options.knowledge.summary_model = Some("mock-summarizer".into());
    let app = spawn_app_with(options).await;
    let tenant = app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    app.add_member(&token, &tenant, "reader@example.com", "user").await;
    let reader = app.token("reader@example.com").await;
    let documents = collection(&app, &token).await;

    let (_, open) = send(&app, &token, Method::POST, &documents, Some(json!({ "text": "Quokkas live on Rottnest Island.", "title": "Island" }))).await;
    let restricted = json!({ "text": "Quokka census numbers for the board.", "title": "Census", "acl": { "roles": ["admin"] } });
    let (_, secret) = send(&app, &token, Method::POST, &documents, Some(restricted)).await;
    for accepted in [&open, &secret] {
        wait_ingested(&app, &token, accepted).await;
    }
    let open_id = open["document"]["id"].as_str().unwrap();
    let secret_id = secret["document"]["id"].as_str().unwrap();
    for id in [open_id, secret_id] {
        let mut document = Value::Null;
        for _ in 0..200 {
            document = send(&app, &token, Method::GET, &format!("/api/v1/documents/{id}"), None).await.1;
            if !document["summary"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(document["summary"], "A note about marsupials of Rottnest.", "{document}");
    }
    let (_, versions) = send(&app, &token, Method::GET, &format!("/api/v1/documents/{open_id}/versions"), None).await;
    assert_eq!(versions["data"][0]["summary_status"], "succeeded", "{versions}");
    assert_eq!(versions["data"][0]["summary"], "A note about marsupials of Rottnest.", "{versions}");

    // The summary is searchable: "marsupials" is in no document's text.
    let (status, found) = search(&app, &token, json!({ "query": "marsupials", "mode": "keyword" })).await;
    assert_eq!(status, 200, "{found}");
    let hits = found["results"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{found}");
    assert!(hits.iter().all(|h| h["heading_path"] == json!(["Summary"])), "{found}");
    // A reader outside the ACL sees the open document's summary only.
    let (_, seen) = search(&app, &reader, json!({ "query": "marsupials", "mode": "keyword" })).await;
    let seen: Vec<&Value> = seen["results"].as_array().unwrap().iter().map(|h| &h["document_id"]).collect();
    assert_eq!(seen, vec![&json!(open_id)]);
    let (status, _) = send(&app, &reader, Method::GET, &format!("/api/v1/documents/{secret_id}"), None).await;
    assert_eq!(status, 404);
    let listed = send(&app, &reader, Method::GET, &documents, None).await.1;
    assert!(!listed.to_string().contains(secret_id), "{listed}");
    let counted = "documents_summarized_total{status=\"succeeded\"} 2";
    let metrics = app.metrics_with(counted).await;
    assert!(metrics.contains(counted), "{metrics}");
}

#[tokio::test]
async fn an_earlier_version_of_a_document_can_be_searched() {
    let app = spawn_app_with(mock_knowledge()).await;
    let tenant = app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    app.add_member(&token, &tenant, "reader@example.com", "user").await;
    let reader = app.token("reader@example.com").await;
    let documents = collection(&app, &token).await;
    let (_, first) = send(&app, &token, Method::POST, &documents, Some(json!({ "text": "The warranty lasts two years.", "title": "Warranty" }))).await;
    wait_ingested(&app, &token, &first).await;
    let id = first["document"]["id"].as_str().unwrap().to_owned();
    let (_, second) = send(&app, &token, Method::POST, &documents, Some(json!({ "text": "The warranty lasts five years.", "title": "Warranty", "document_id": id }))).await;
    wait_ingested(&app, &token, &second).await;

    let (_, current) = search(&app, &token, json!({ "query": "warranty years" })).await;
    let texts: Vec<&str> = current["results"].as_array().unwrap().iter().map(|h| h["text"].as_str().unwrap()).collect();
    assert_eq!(texts, vec!["The warranty lasts five years."], "search sees the current version: {current}");

    for mode in ["hybrid", "keyword", "vector"] {
        let (status, earlier) = search(&app, &reader, json!({ "query": "warranty years", "mode": mode, "document_ids": [id], "version": 1 })).await;
        assert_eq!(status, 200, "{earlier}");
        let hit = &earlier["results"][0];
        assert_eq!((hit["text"].as_str(), hit["version"].as_i64()), (Some("The warranty lasts two years."), Some(1)), "{mode}: {earlier}");
        assert_eq!(hit["document_id"], json!(id));
        if mode != "vector" {
            assert_eq!(hit["highlights"], json!([[4, 12], [23, 28]]), "{earlier}");
        }
    }
    let (status, earlier) = search(&app, &token, json!({ "query": "warranty", "document_ids": [id], "version": 1, "metadata": { "team": "x" } })).await;
    assert_eq!((status, earlier["results"].as_array().map(Vec::len)), (200, Some(0)), "the document's metadata filter still applies: {earlier}");

    let (status, error) = search(&app, &token, json!({ "query": "warranty", "version": 1 })).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("version")), "{error}");
    let (status, error) = search(&app, &token, json!({ "query": "warranty", "document_ids": [id], "version": 9 })).await;
    assert_eq!(status, 404, "{error}");

    // Earlier versions can be deleted; the current one stays until another replaces it.
    let version = |v: i32| format!("/api/v1/documents/{id}/versions/{v}");
    let (status, error) = send(&app, &token, Method::DELETE, &version(2), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")), "{error}");
    assert_eq!(send(&app, &token, Method::DELETE, &version(1), None).await.0, 204);
    assert_eq!(send(&app, &token, Method::DELETE, &version(1), None).await.0, 404);
    let (_, versions) = send(&app, &token, Method::GET, &format!("/api/v1/documents/{id}/versions"), None).await;
    assert_eq!(versions["data"].as_array().unwrap().iter().map(|v| v["version"].as_i64()).collect::<Vec<_>>(), vec![Some(2)]);
    let (status, _) = search(&app, &token, json!({ "query": "warranty", "document_ids": [id], "version": 1 })).await;
    assert_eq!(status, 404);
    let (_, current) = search(&app, &token, json!({ "query": "warranty years" })).await;
    assert_eq!(current["results"][0]["text"], "The warranty lasts five years.", "{current}");

    // A document outside the reader's ACL has no versions to search.
    let restricted = json!({ "text": "Board-only warranty terms.", "title": "Board", "acl": { "roles": ["admin"] } });
    let (_, board) = send(&app, &token, Method::POST, &documents, Some(restricted)).await;
    wait_ingested(&app, &token, &board).await;
    let board_id = board["document"]["id"].as_str().unwrap();
    let (status, error) = search(&app, &reader, json!({ "query": "warranty", "document_ids": [board_id], "version": 1 })).await;
    assert_eq!(status, 404, "{error}");
    let (status, found) = search(&app, &token, json!({ "query": "warranty", "document_ids": [board_id], "version": 1 })).await;
    assert_eq!((status, found["results"].as_array().map(Vec::len)), (200, Some(1)), "{found}");
}
