//! The OpenAI-compatible surface against OpenAI- and Anthropic-speaking upstreams.

use base64::Engine;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, sse_data, user_message};

#[tokio::test]
async fn chat_completion_has_openai_shape() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "gpt-4o", "messages": user_message("hi"), "max_tokens": 20 })).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["choices"][0]["index"], 0);
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from upstream");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"], json!({ "prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9 }));
    let sent = app.upstream.recorded.bodies.lock()[0].clone();
    assert_eq!(sent["model"], "gpt-ok", "public name is rewritten to the upstream model id");
    assert_eq!(sent["max_tokens"], 20);
    let headers = app.upstream.recorded.headers.lock()[0].clone();
    assert_eq!(headers["authorization"], "Bearer sk-upstream", "the provider's key goes upstream, never the client's");
}

#[tokio::test]
async fn streamed_completion_has_exact_sse_framing_and_usage_chunk() {
    let app = spawn_app().await;
    let response = app.chat(json!({ "model": "gpt-ok", "messages": user_message("hi"), "stream": true, "stream_options": { "include_usage": true } })).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let text = response.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text:?}");
    let frames = sse_data(&text);
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1].iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    let id = chunks[0]["id"].clone();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id, "one id for the whole stream");
        assert_eq!(chunk["model"], "gpt-ok");
        assert!(chunk.get("usage").is_some(), "include_usage puts usage (null until the end) on every chunk");
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello from upstream");
    let finish = chunks.iter().find(|c| !c["choices"][0]["finish_reason"].is_null()).unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], json!({ "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8 }));
}

#[tokio::test]
async fn streamed_completion_without_include_usage_has_no_usage_field() {
    let app = spawn_app().await;
    let text = app.chat(json!({ "model": "gpt-ok", "messages": user_message("hi"), "stream": true })).await.text().await.unwrap();
    let frames = sse_data(&text);
    for frame in &frames[..frames.len() - 1] {
        let chunk: Value = serde_json::from_str(frame).unwrap();
        assert!(chunk.get("usage").is_none(), "{chunk}");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn anthropic_upstream_maps_to_openai_shapes() {
    let app = spawn_app().await;
    let messages = json!([{ "role": "system", "content": "Be brief." }, { "role": "user", "content": "hi" }]);
    let body: Value = app.chat(json!({ "model": "claude-ok", "messages": messages, "stop": "END" })).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from Claude");
    assert_eq!(body["usage"]["prompt_tokens"], 11);
    assert_eq!(body["usage"]["completion_tokens"], 3);
    let sent = app.upstream.recorded.bodies.lock()[0].clone();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["messages"], json!([{ "role": "user", "content": [{ "type": "text", "text": "hi" }] }]));
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert!(sent["max_tokens"].as_u64().unwrap() > 0, "Anthropic requires max_tokens");

    let text = app.chat(json!({ "model": "claude-ok", "messages": messages, "stream": true, "stream_options": { "include_usage": true } })).await.text().await.unwrap();
    let frames = sse_data(&text);
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1].iter().map(|f| serde_json::from_str(f).unwrap()).collect();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello from Claude");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "length"), "max_tokens maps to length");
    assert_eq!(chunks.last().unwrap()["usage"], json!({ "prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14 }));
}

#[tokio::test]
async fn tools_and_response_format_pass_through_to_openai_upstreams() {
    let app = spawn_app().await;
    let tools = json!([{ "type": "function", "function": { "name": "add", "parameters": { "type": "object" } } }]);
    let body = json!({
        "model": "echo-params", "messages": user_message("hi"), "tools": tools, "tool_choice": "auto",
        "response_format": { "type": "json_object" }, "seed": 7, "user": "u-1", "stop": ["a", "b"], "top_p": 0.5,
    });
    let response: Value = app.chat(body).await.json().await.unwrap();
    let echoed: Value = serde_json::from_str(response["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["tools"], tools);
    assert_eq!(echoed["tool_choice"], "auto");
    assert_eq!(echoed["response_format"]["type"], "json_object");
    assert_eq!(echoed["seed"], 7);
    assert_eq!(echoed["user"], "u-1");
    assert_eq!(echoed["stop"], json!(["a", "b"]));
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let app = spawn_app().await;
    let body = app.embeddings(json!({ "model": "embed-ok", "input": ["a", "b"] })).await;
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][1]["embedding"], json!([0.6, 0.8, 1.0]));
    assert_eq!(body["usage"]["prompt_tokens"], 7);

    let body = app.embeddings(json!({ "model": "embed-ok", "input": "a", "encoding_format": "base64" })).await;
    let bytes = base64::engine::general_purpose::STANDARD.decode(body["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let floats: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(floats, vec![0.6, 0.8, 0.0]);
}

#[tokio::test]
async fn models_are_listed() {
    let app = spawn_app().await;
    let body: Value = app.get("/v1/models").send().await.unwrap().json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"gpt-4o") && ids.contains(&"claude-ok") && ids.contains(&"embed-ok"), "{ids:?}");
    let model: Value = app.get("/v1/models/claude-ok").send().await.unwrap().json().await.unwrap();
    assert_eq!(model["object"], "model");
    assert_eq!(model["owned_by"], "claude");
}

#[tokio::test]
async fn every_call_is_logged_with_tokens_and_cost() {
    let app = spawn_app().await;
    app.chat(json!({ "model": "gpt-4o", "messages": user_message("hi") })).await.text().await.unwrap();
    app.chat(json!({ "model": "gpt-ok", "messages": user_message("hi"), "stream": true, "stream_options": { "include_usage": true } })).await.text().await.unwrap();
    let calls = app.model_calls(2).await;
    assert_eq!(calls.len(), 2);
    let plain = calls.iter().find(|c| !c.stream).unwrap();
    assert_eq!(plain.model, "gpt-4o");
    assert_eq!((plain.input_tokens, plain.output_tokens), (5, 4));
    // 5 × $0.005/1K + 4 × $0.015/1K = $0.000085, in nano-USD.
    assert_eq!(plain.cost_nusd, 85_000, "built-in gpt-4o price");
    let streamed = calls.iter().find(|c| c.stream).unwrap();
    assert_eq!(streamed.status, "success");
    assert_eq!((streamed.input_tokens, streamed.output_tokens), (5, 3));
    assert!(streamed.ttft_ms.is_some());
}

/// An upstream that reports no usage is metered with the model's tokenizer, streamed or not.
#[tokio::test]
async fn tokens_are_counted_when_the_upstream_reports_none() {
    let app = spawn_app().await;
    let messages = user_message("Please count these words exactly");
    app.chat(json!({ "model": "no-usage", "messages": messages })).await.text().await.unwrap();
    app.chat(json!({ "model": "no-usage", "messages": messages, "stream": true })).await.text().await.unwrap();
    let calls = app.model_calls(2).await;
    let prompt: Vec<agentry_types::ChatMessage> = serde_json::from_value(messages).unwrap();
    let expected = (agentry_llm::tokens::count_prompt("no-usage", &prompt), agentry_llm::tokens::count("no-usage", "Hello from upstream"));
    assert_eq!(expected, (3 + 1 + 5 + 3, 3), "o200k: five words, three output tokens");
    for call in &calls {
        assert_eq!((call.input_tokens, call.output_tokens), (i64::from(expected.0), i64::from(expected.1)), "stream: {}", call.stream);
    }
    assert_eq!(calls.iter().filter(|c| c.stream).count(), 1);
}

#[tokio::test]
async fn mock_provider_is_deterministic() {
    let app = spawn_app().await;
    let body: Value = app.chat(json!({ "model": "mock-echo", "messages": user_message("one two three") })).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "echo: one two three");
    assert_eq!(body["usage"]["completion_tokens"], 4);
}
