//! Traces: the `agentry` binary with `telemetry.otlp_endpoint` set sends
//! the spans of a RAG agent run to an OTLP/HTTP receiver started here, as
//! one tree under the caller's `traceparent` (request → authentication, and
//! the run → search, database, model call → provider call), with the GenAI
//! attributes; the trace id comes back in `x-trace-id` and in the JSON logs,
//! and the upstream model receives the trace context.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use parking_lot::Mutex;
use prost::Message;
use serde_json::{Value, json};

use crate::helpers::{free_port, test_models_dir};

const BIN: &str = env!("CARGO_BIN_EXE_agentry");
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    upstream_traceparents: Vec<String>,
}

type Shared = Arc<Mutex<Received>>;

async fn traces(State(received): State<Shared>, body: Bytes) -> Response {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
    let spans = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
    received.lock().spans.extend(spans);
    ([("content-type", "application/x-protobuf")], Vec::<u8>::new()).into_response()
}

/// A chat completions upstream that notes the trace context it is sent.
async fn completions(State(received): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(parent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        received.lock().upstream_traceparents.push(parent.to_owned());
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let answer = "Refunds take five days [1].";
    if request["stream"] == true {
        let chunk = json!({ "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "gpt-test",
            "choices": [{ "index": 0, "delta": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27 } });
        return ([("content-type", "text/event-stream")], format!("data: {chunk}\n\ndata: [DONE]\n\n")).into_response();
    }
    axum::Json(json!({ "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-test",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": answer }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27 } }))
    .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref()).map(|v| match v {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        other => format!("{other:?}"),
    })
}

#[tokio::test]
async fn a_rag_run_is_one_trace_under_the_callers_traceparent() {
    let received: Shared = Arc::default();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}", receiver.local_addr().unwrap());
    let app = Router::new().route("/v1/traces", post(traces)).route("/v1/chat/completions", post(completions)).with_state(received.clone());
    tokio::spawn(async move { axum::serve(receiver, app).await });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let tokenizer = test_models_dir().join("all-minilm-l6-v2/tokenizer.json");
    let config = format!(
        r#"
listen = "127.0.0.1:{port}"
offline = true
log_format = "json"
[local]
enabled = false
[knowledge]
embedding_model = "mock-embed"
tokenizer = "{tokenizer}"
[agents]
default_model = "upstream-chat"
rag_min_similarity = -1.0
[telemetry]
otlp_endpoint = "{receiver_url}"
service_name = "agentry-test"
[[providers]]
type = "mock"
name = "mock"
[[providers]]
type = "openai_compat"
name = "upstream"
base_url = "{receiver_url}/v1"
[[models]]
name = "mock-embed"
provider = "mock"
kind = "embedding"
[[models]]
name = "upstream-chat"
provider = "upstream"
upstream_model = "gpt-test"
"#,
        tokenizer = tokenizer.display()
    );
    let config_file = dir.path().join("agentry.toml");
    std::fs::write(&config_file, config).unwrap();
    let data_dir = dir.path().join("data");
    let common = ["--config", config_file.to_str().unwrap(), "--data-dir", data_dir.to_str().unwrap()];
    let bootstrap = Command::new(BIN)
        .args(common)
        .args(["admin", "bootstrap", "--tenant", "acme", "--email", "ops@example.com"])
        .env("AGENTRY_BOOTSTRAP_PASSWORD", "a long password 123")
        .output()
        .unwrap();
    assert!(bootstrap.status.success(), "{}", String::from_utf8_lossy(&bootstrap.stderr));
    let mut server = Command::new(BIN).args(common).arg("serve").stderr(Stdio::piped()).spawn().unwrap();
    let stderr = server.stderr.take().unwrap();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let lines = log.clone();
    std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).for_each(|line| lines.lock().push(line)));

    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let login: Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": "ops@example.com", "password": "a long password 123" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let collection: Value = client.post(format!("{base}/api/v1/collections")).bearer_auth(&token).json(&json!({ "name": "policies" })).send().await.unwrap().json().await.unwrap();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"Refunds take five days.".to_vec()).file_name("refunds.txt"));
    let accepted: Value = client
        .post(format!("{base}/api/v1/collections/{}/documents", collection["id"].as_str().unwrap()))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        let status: Value = client.get(format!("{base}/api/v1/ingest-jobs/{job}")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        if status["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let response = client
        .post(format!("{base}/api/v1/runs"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .json(&json!({ "agent": "rag", "input": "How long do refunds take?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers().get("x-trace-id").and_then(|v| v.to_str().ok()), Some(TRACE_ID), "the trace id is returned");
    let run: Value = response.json().await.unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");

    // SIGTERM: the server flushes the spans it has not sent yet as it stops.
    Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    let stopped = tokio::task::spawn_blocking(move || server.wait()).await.unwrap().unwrap();
    assert!(stopped.success());

    let received = received.lock();
    let spans: Vec<&Span> = received.spans.iter().filter(|s| hex(&s.trace_id) == TRACE_ID).collect();
    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (hex(&s.span_id), *s)).collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let find = |name: &str| *spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name} in {names:?}"));
    let ancestors = |span: &Span| {
        let mut chain = Vec::new();
        let mut parent = hex(&span.parent_span_id);
        while let Some(up) = by_id.get(&parent) {
            chain.push(up.name.clone());
            parent = hex(&up.parent_span_id);
        }
        chain
    };

    let request = find("POST /api/v1/runs");
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN, "the request span is the child of the caller's span");
    assert_eq!(attribute(request, "http.route").as_deref(), Some("/api/v1/runs"));
    assert_eq!(attribute(request, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(ancestors(find("authenticate")), ["POST /api/v1/runs"]);
    let run_span = find("invoke_agent rag");
    assert_eq!(attribute(run_span, "gen_ai.agent.name").as_deref(), Some("rag"));
    assert!(ancestors(run_span).contains(&"POST /api/v1/runs".to_owned()), "the run continues the request's trace");
    let search = find("knowledge search");
    assert!(ancestors(search).contains(&"invoke_agent rag".to_owned()), "{:?}", ancestors(search));
    let chat = spans.iter().find(|s| s.name == "chat upstream-chat").unwrap_or_else(|| panic!("no model call in {names:?}"));
    assert!(ancestors(chat).contains(&"invoke_agent rag".to_owned()));
    assert_eq!(attribute(chat, "gen_ai.request.model").as_deref(), Some("upstream-chat"));
    assert_eq!(attribute(chat, "gen_ai.usage.input_tokens").as_deref(), Some("20"));
    assert_eq!(attribute(chat, "gen_ai.usage.output_tokens").as_deref(), Some("7"));
    assert!(attribute(chat, "agentry.cost_usd").is_some());
    let provider = spans.iter().find(|s| attribute(s, "gen_ai.provider.name").is_some() && attribute(s, "gen_ai.request.model").as_deref() == Some("upstream-chat")).unwrap();
    assert_eq!(ancestors(provider).first().map(String::as_str), Some("chat upstream-chat"), "a provider call under its model call");
    let database = spans.iter().filter(|s| s.name == "database").count();
    assert!(database > 0, "database spans: {names:?}");
    assert!(spans.iter().filter(|s| s.name == "database").any(|s| ancestors(s).contains(&"invoke_agent rag".to_owned())));

    assert!(
        received.upstream_traceparents.iter().any(|p| p.starts_with(&format!("00-{TRACE_ID}-"))),
        "the upstream model got the trace context: {:?}",
        received.upstream_traceparents
    );
    let logged = log.lock().iter().any(|line| line.contains(&format!("\"trace_id\":\"{TRACE_ID}\"")));
    assert!(logged, "JSON log lines carry the trace id");
}
