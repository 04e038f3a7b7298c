//! Bad input and bad credentials get the right status and the error envelope.

use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, MASTER_KEY, TestOptions, assert_error, spawn_app, spawn_app_with, user_message};

#[tokio::test]
async fn missing_and_wrong_keys_are_401() {
    let app = spawn_app().await;
    let body = json!({ "model": "gpt-ok", "messages": user_message("hi") });
    let missing = app.client.post(app.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    let error = assert_error(missing, 401, "missing_api_key").await;
    assert_eq!(error["type"], "authentication_error");
    let wrong = app.client.post(app.url("/v1/chat/completions")).bearer_auth("sk-wrong").json(&body).send().await.unwrap();
    assert_error(wrong, 401, "invalid_api_key").await;
    let prefix = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&MASTER_KEY[..10]).json(&body).send().await.unwrap();
    assert_error(prefix, 401, "invalid_api_key").await;
    let models = app.client.get(app.url("/v1/models")).send().await.unwrap();
    assert_error(models, 401, "missing_api_key").await;
    assert_eq!(app.upstream.hits("gpt-ok"), 0);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    let response = app.post("/v1/chat/completions").header("content-type", "application/json").body("{\"model\": ").send().await.unwrap();
    assert_error(response, 400, "invalid_json").await;
}

#[tokio::test]
async fn wrong_types_and_missing_fields_name_the_param() {
    let app = spawn_app().await;
    let wrong_type = app.chat(json!({ "model": "gpt-ok", "messages": user_message("hi"), "temperature": "hot" })).await;
    let error = assert_error(wrong_type, 400, "invalid_request").await;
    assert_eq!(error["param"], "temperature");
    let missing = app.chat(json!({ "model": "gpt-ok" })).await;
    let error = assert_error(missing, 400, "invalid_request").await;
    assert!(error["message"].as_str().unwrap().contains("messages"), "{error}");
    let bad_role = app.chat(json!({ "model": "gpt-ok", "messages": [{ "role": "wizard", "content": "x" }] })).await;
    let error = assert_error(bad_role, 400, "invalid_request").await;
    assert_eq!(error["param"], "messages[0].role");
}

#[tokio::test]
async fn out_of_range_values_are_400() {
    let app = spawn_app().await;
    for (field, value) in [("temperature", json!(3.5)), ("top_p", json!(1.5)), ("max_tokens", json!(0)), ("n", json!(2))] {
        let mut body = json!({ "model": "gpt-ok", "messages": user_message("hi") });
        body[field] = value;
        let error = assert_error(app.chat(body).await, 400, "invalid_request").await;
        assert_eq!(error["param"], field);
    }
    let empty = app.chat(json!({ "model": "gpt-ok", "messages": [] })).await;
    assert_error(empty, 400, "invalid_request").await;
    assert_eq!(app.upstream.hits("gpt-ok"), 0, "invalid requests never reach the upstream");
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "gpt-9000", "messages": user_message("hi") })).await;
    let error = assert_error(response, 404, "model_not_found").await;
    assert_eq!(error["param"], "model");
    let response = app.get("/v1/models/gpt-9000").send().await.unwrap();
    assert_error(response, 404, "model_not_found").await;
    let embedding_model_for_chat = app.chat(json!({ "model": "embed-ok", "messages": user_message("hi") })).await;
    assert_error(embedding_model_for_chat, 404, "model_not_found").await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app_with(TestOptions { max_body_bytes: 4096, ..TestOptions::default() }).await;
    let big = "x".repeat(10_000);
    let response = app.chat(json!({ "model": "gpt-ok", "messages": user_message(&big) })).await;
    assert_error(response, 413, "payload_too_large").await;
}

#[tokio::test]
async fn unknown_route_and_wrong_method_use_the_envelope() {
    let app = spawn_app().await;
    let response = app.get("/v1/nothing-here").send().await.unwrap();
    assert_error(response, 404, "not_found").await;
    let response = app.get("/v1/chat/completions").send().await.unwrap();
    assert_error(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn a_query_or_path_the_router_cannot_read_says_which_and_why() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let response = app.with(reqwest::Method::GET, "/api/v1/costs/stats?from=yesterday", &admin).send().await.unwrap();
    let error = assert_error(response, 400, "invalid_request").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("from") && m.contains("query")), "{error}");
    let response = app.with(reqwest::Method::GET, "/api/v1/documents/some-id/versions/99999999999999999999999", &admin).send().await.unwrap();
    let error = assert_error(response, 400, "invalid_request").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("99999999999999999999999")), "{error}");
}

#[tokio::test]
async fn vision_input_to_a_text_model_is_a_clear_400() {
    let app = spawn_app().await;
    let messages = json!([{ "role": "user", "content": [
        { "type": "text", "text": "what is this?" },
        { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } }
    ] }]);
    let response = app.chat(json!({ "model": "gpt-ok", "messages": messages })).await;
    let error = assert_error(response, 400, "unsupported_parameter").await;
    assert!(error["message"].as_str().unwrap().contains("images"), "{error}");
}

#[tokio::test]
async fn embeddings_input_errors() {
    let app = spawn_app().await;
    for input in [json!([]), json!(""), json!([[1, 2, 3]])] {
        let response = app.post("/v1/embeddings").json(&json!({ "model": "embed-ok", "input": input })).send().await.unwrap();
        let error = assert_error(response, 400, "invalid_request").await;
        assert_eq!(error["param"], "input");
    }
    let response = app.post("/v1/embeddings").json(&json!({ "model": "embed-ok", "input": "x", "encoding_format": "hex" })).send().await.unwrap();
    assert_error(response, 400, "invalid_request").await;
}
