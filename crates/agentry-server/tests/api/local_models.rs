//! The embedded default: real answers from the local GGUF chat model and
//! real embeddings from MiniLM, through the running server.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApp, TestOptions, spawn_app_with, sse_data, user_message};

async fn local_app() -> TestApp {
    spawn_app_with(TestOptions { local_models: true, router_timeout_secs: 120.0, ..TestOptions::default() }).await
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn local_chat_answers_plain_and_streamed() {
    let app = local_app().await;
    let request = json!({
        "model": "local-chat",
        "messages": user_message("What is the capital of France? Answer in one word."),
        "max_tokens": 24,
        "temperature": 0,
    });
    let body: Value = app.chat(request.clone()).await.json().await.unwrap();
    let content = body["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
    assert!(!content.trim().is_empty(), "{body}");
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 10, "{usage}");
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 24);
    assert!(["stop", "length"].contains(&body["choices"][0]["finish_reason"].as_str().unwrap()));

    let mut streamed = request;
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({ "include_usage": true });
    let text = app.chat(streamed).await.text().await.unwrap();
    let frames = sse_data(&text);
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1].iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    let streamed_content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(streamed_content, content, "greedy decoding streams the same text");
    assert_eq!(chunks.last().unwrap()["usage"], body["usage"]);
}

#[tokio::test]
async fn local_chat_refuses_tools_and_images_clearly() {
    let app = local_app().await;
    let tools = json!([{ "type": "function", "function": { "name": "f", "parameters": { "type": "object" } } }]);
    let response = app.chat(json!({ "model": "local-chat", "messages": user_message("hi"), "tools": tools })).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "tools");
}

#[tokio::test]
async fn local_embeddings_are_real_sentence_vectors() {
    let app = local_app().await;
    let inputs = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."];
    let body = app.embeddings(json!({ "model": "local-embed", "input": inputs })).await;
    let vectors: Vec<Vec<f64>> = body["data"].as_array().unwrap().iter().map(|d| d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect();
    assert_eq!(vectors.len(), 3);
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "unit norm: {norm}");
    }
    let paraphrase = cosine(&vectors[0], &vectors[1]);
    let unrelated = cosine(&vectors[0], &vectors[2]);
    assert!(paraphrase > unrelated + 0.2, "paraphrase {paraphrase} vs unrelated {unrelated}");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
}

#[tokio::test]
async fn ready_reports_local_models() {
    let app = local_app().await;
    let ready: Value = app.client.get(app.url("/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["local_models"], json!(["local-chat", "local-embed"]));
    let models: Value = app.get("/v1/models").send().await.unwrap().json().await.unwrap();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "local-chat"));
}

#[tokio::test]
async fn a_long_generation_does_not_stall_other_requests() {
    let app = local_app().await;
    let long = app.post("/v1/chat/completions").json(&json!({
        "model": "local-chat",
        "messages": user_message("Write a long story about a lighthouse keeper."),
        "max_tokens": 200,
        "temperature": 0,
    }));
    let generation = tokio::spawn(async move { long.send().await.unwrap().text().await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let health = app.client.get(app.url("/health")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        assert!(started.elapsed() < std::time::Duration::from_millis(500), "health stalled behind inference: {:?}", started.elapsed());
    }
    let body: Value = serde_json::from_str(&generation.await.unwrap()).unwrap();
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

/// The agents on the embedded default: the RAG agent retrieves with MiniLM
/// (the real relevance threshold) and answers with the local chat model.
#[tokio::test]
async fn agents_answer_on_the_local_models() {
    let mut options = TestOptions { local_models: true, router_timeout_secs: 120.0, ..TestOptions::default() };
    options.agents = agentry_core::agents::AgentsSettings { max_output_tokens: 48, ..Default::default() };
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    let call = |method: reqwest::Method, path: &str, body: Value| app.with(method, path, &token).json(&body).send();
    let collection: Value = call(reqwest::Method::POST, "/api/v1/collections", json!({ "name": "it" })).await.unwrap().json().await.unwrap();
    let text = "Password resets: to reset your password, open the sign-in page and choose the forgotten password link. \
                A reset email arrives within five minutes.";
    let path = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let accepted: Value = call(reqwest::Method::POST, &path, json!({ "text": text, "title": "Accounts" })).await.unwrap().json().await.unwrap();
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    for _ in 0..600 {
        let status: Value = app.with(reqwest::Method::GET, &format!("/api/v1/ingest-jobs/{job}"), &token).send().await.unwrap().json().await.unwrap();
        if status["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let run: Value = call(reqwest::Method::POST, "/api/v1/runs", json!({ "agent": "auto", "input": "How do I reset my password?" })).await.unwrap().json().await.unwrap();
    assert_eq!((run["agent"].as_str(), run["status"].as_str()), (Some("rag"), Some("succeeded")), "routed by the knowledge probe: {run}");
    assert_eq!(run["routing"]["routed_by"], "knowledge", "{run}");
    assert!(!run["output"].as_str().unwrap().trim().is_empty(), "{run}");
    assert_eq!(run["citations"][0]["document_id"], accepted["document"]["id"], "{run}");
    let unknown: Value =
        call(reqwest::Method::POST, "/api/v1/runs", json!({ "agent": "rag", "input": "Which volcano erupted on Io in 1979?" })).await.unwrap().json().await.unwrap();
    assert_eq!(unknown["output"], agentry_core::agents::RAG_UNKNOWN, "{unknown}");
    let general = call(reqwest::Method::POST, "/api/v1/runs", json!({ "agent": "general", "input": "Say hello.", "stream": true })).await.unwrap().text().await.unwrap();
    assert!(general.contains("\"type\":\"token\"") && general.contains("\"type\":\"done\""), "{general}");
}
