//! Agents over other ecosystems' protocols, spoken on the wire: the MCP
//! server at `/mcp` (JSON-RPC over Streamable HTTP) and A2A (the public agent
//! card and JSON-RPC at `/a2a`, protocol 1.0 and the 0.3 names). The
//! official Python clients run against the same server in `sdk_clients.rs`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn rpc(app: &TestApp, token: &str, path: &str, method: &str, params: Value) -> (u16, Value) {
    let body = json!({ "jsonrpc": "2.0", "id": "1", "method": method, "params": params });
    let response = app.with(Method::POST, path, token).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn text_of(result: &Value) -> String {
    result["content"].as_array().into_iter().flatten().filter_map(|c| c["text"].as_str()).collect()
}

#[tokio::test]
async fn mcp_lists_and_calls_what_the_caller_may_use() {
    let app = spawn_app().await;
    let tenant = app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    let (status, init) =
        rpc(&app, &token, "/mcp", "initialize", json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } })).await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "the client's known version is echoed");
    assert_eq!(init["result"]["serverInfo"]["name"], "agentry");
    let notified = app.with(Method::POST, "/mcp", &token).json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).send().await.unwrap();
    assert_eq!(notified.status(), 202);
    let (_, listed) = rpc(&app, &token, "/mcp", "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in ["knowledge_search", "agent_general", "agent_math", "agent_rag", "agent_code", "agent_vision"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    assert!(listed["result"]["tools"].as_array().unwrap().iter().all(|t| t["inputSchema"]["type"] == "object"));
    let (_, called) = rpc(&app, &token, "/mcp", "tools/call", json!({ "name": "agent_math", "arguments": { "input": "What is 2^10?" } })).await;
    assert_eq!(called["result"]["isError"], false, "{called}");
    assert!(text_of(&called["result"]).contains("1024"), "{called}");
    let (_, bad) = rpc(&app, &token, "/mcp", "tools/call", json!({ "name": "agent_math", "arguments": {} })).await;
    assert_eq!(bad["result"]["isError"], true, "{bad}");
    let (_, unknown) = rpc(&app, &token, "/mcp", "tools/call", json!({ "name": "nope", "arguments": {} })).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    let (_, discover) = rpc(&app, &token, "/mcp", "server/discover", json!({})).await;
    assert_eq!(discover["error"]["code"], -32601, "{discover}");
    assert_eq!(app.with(Method::GET, "/mcp", &token).send().await.unwrap().status(), 405);
    let response = app.client.post(app.url("/mcp")).json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list" })).send().await.unwrap();
    assert_eq!(response.status(), 401);
    // A viewer sees no agents it may not use.
    app.add_member(&token, &tenant, "viewer@example.com", "viewer").await;
    let viewer = app.token("viewer@example.com").await;
    let (_, listed) = rpc(&app, &viewer, "/mcp", "tools/list", json!({})).await;
    let names: Vec<&str> = listed["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["knowledge_search"]);
    let (_, refused) = rpc(&app, &viewer, "/mcp", "tools/call", json!({ "name": "agent_math", "arguments": { "input": "1+1" } })).await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
}

fn message(text: &str, extra: Value) -> Value {
    let mut message = json!({ "messageId": "m1", "role": "ROLE_USER", "parts": [{ "text": text }] });
    if let (Some(target), Some(fields)) = (message.as_object_mut(), extra.as_object()) {
        target.extend(fields.clone());
    }
    json!({ "message": message, "configuration": {} })
}

#[tokio::test]
async fn a2a_card_tasks_streams_and_the_older_names() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    let card: Value = app.client.get(app.url("/.well-known/agent-card.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
    assert_eq!(card["supportedInterfaces"][0]["url"], app.url("/a2a"));
    assert_eq!(card["securityRequirements"][0]["schemes"]["bearer"], json!({}));
    let skills: Vec<&str> = card["skills"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(skills, ["auto", "general", "rag", "math", "code", "vision"]);

    let (_, sent) = rpc(&app, &token, "/a2a", "SendMessage", message("What is 3/4 + 1/6?", json!({ "metadata": { "agent": "math" } }))).await;
    let task = &sent["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{sent}");
    assert!(task["artifacts"][0]["parts"][0]["text"].as_str().unwrap().contains("11/12"), "{sent}");
    assert!(task["status"]["timestamp"].as_str().unwrap().ends_with('Z'));
    let (task_id, context) = (task["id"].as_str().unwrap().to_owned(), task["contextId"].as_str().unwrap().to_owned());
    // The context is a thread: a follow-up continues it.
    let (_, again) = rpc(&app, &token, "/a2a", "SendMessage", message("and 2^20?", json!({ "contextId": context }))).await;
    assert_eq!(again["result"]["task"]["contextId"], context, "{again}");
    let messages: Value = app.with(Method::GET, &format!("/api/v1/threads/{context}/messages"), &token).send().await.unwrap().json().await.unwrap();
    assert_eq!(messages["data"].as_array().unwrap().len(), 4, "{messages}");
    let (_, got) = rpc(&app, &token, "/a2a", "GetTask", json!({ "id": task_id })).await;
    assert_eq!(got["result"]["id"], task_id, "a bare task: {got}");
    let (_, cancel) = rpc(&app, &token, "/a2a", "CancelTask", json!({ "id": task_id })).await;
    assert_eq!(cancel["error"]["code"], -32002, "{cancel}");
    let (_, missing) = rpc(&app, &token, "/a2a", "GetTask", json!({ "id": "no-such-task" })).await;
    assert_eq!(missing["error"]["code"], -32001, "{missing}");
    let (_, unknown_context) = rpc(&app, &token, "/a2a", "SendMessage", message("hi", json!({ "contextId": "nope" }))).await;
    assert_eq!(unknown_context["error"]["code"], -32602, "{unknown_context}");
    let (_, empty) = rpc(&app, &token, "/a2a", "SendMessage", json!({ "message": { "messageId": "x", "role": "ROLE_USER", "parts": [] } })).await;
    assert_eq!(empty["error"]["code"], -32602, "{empty}");

    // Streaming: the task, the answer in chunks, the final status; then the stream ends.
    let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "SendStreamingMessage", "params": message("Tell me about otters", json!({ "metadata": { "agent": "general" } })) });
    let response = app.with(Method::POST, "/a2a", &token).json(&body).send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let events: Vec<Value> = sse_data(&response.text().await.unwrap()).iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    assert!(events[0]["result"]["task"]["id"].is_string(), "{events:?}");
    let text: String = events.iter().filter_map(|e| e["result"]["artifactUpdate"]["artifact"]["parts"][0]["text"].as_str()).collect();
    assert_eq!(text, "echo: Tell me about otters");
    assert_eq!(events.last().unwrap()["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED", "{events:?}");

    // The 0.3 names and shapes.
    let old = json!({ "message": { "kind": "message", "messageId": "m", "role": "user", "parts": [{ "kind": "text", "text": "What is 6*7?" }] } });
    let (_, sent) = rpc(&app, &token, "/a2a", "message/send", old).await;
    assert_eq!((sent["result"]["kind"].as_str(), sent["result"]["status"]["state"].as_str()), (Some("task"), Some("completed")), "{sent}");
    assert!(sent["result"]["artifacts"][0]["parts"][0]["text"].as_str().unwrap().contains("42"), "{sent}");
    let (_, got) = rpc(&app, &token, "/a2a", "tasks/get", json!({ "id": sent["result"]["id"] })).await;
    assert_eq!(got["result"]["status"]["state"], "completed", "{got}");
    let (_, nope) = rpc(&app, &token, "/a2a", "tasks/resubscribe", json!({})).await;
    assert_eq!(nope["error"]["code"], -32601);
}

#[tokio::test]
async fn agents_call_tools_of_registered_mcp_servers() {
    let mut options = TestOptions::default();
    options.agents.outbound.allow = vec![agentry_core::outbound::AllowEntry::parse("127.0.0.1").unwrap()];
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    // This server's own /mcp stands in for an external MCP server.
    let server = json!({ "name": "self", "url": app.url("/mcp"), "headers": { "Authorization": format!("Bearer {token}") } });
    let response = app.with(Method::POST, "/api/v1/mcp-servers", &token).json(&server).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let view = response.text().await.unwrap();
    assert!(view.contains("\"header_names\":[\"Authorization\"]") && !view.contains(&token), "credentials are never shown: {view}");
    let tools: Value = app.with(Method::GET, "/api/v1/mcp-servers/self/tools", &token).send().await.unwrap().json().await.unwrap();
    assert!(tools["data"].as_array().unwrap().iter().any(|t| t["name"] == "agent_math"), "{tools}");
    let ghost = json!({ "name": "ghost-user", "instructions": "i", "tools": ["mcp:ghost"] });
    assert_eq!(app.with(Method::POST, "/api/v1/agents", &token).json(&ghost).send().await.unwrap().status(), 400);
    let bridge = json!({ "name": "bridge", "instructions": "Use the remote tools.", "model": "mock-tools", "tools": ["mcp:self/agent_math"] });
    assert_eq!(app.with(Method::POST, "/api/v1/agents", &token).json(&bridge).send().await.unwrap().status(), 201);
    let run = |input: &str| json!({ "agent": "bridge", "input": input });
    let ok: Value = app.with(Method::POST, "/api/v1/runs", &token).json(&run("call:self__agent_math {\"input\": \"What is 2^10?\"}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ok["tool_calls"][0]["tool"], "self__agent_math", "{ok}");
    assert_eq!(ok["tool_calls"][0]["status"], "succeeded", "{ok}");
    assert!(ok["output"].as_str().unwrap().contains("1024"), "{ok}");
    let rejected: Value = app.with(Method::POST, "/api/v1/runs", &token).json(&run("call:self__agent_math {}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(rejected["tool_calls"][0]["status"], "rejected", "{rejected}");
    let other: Value = app.with(Method::POST, "/api/v1/runs", &token).json(&run("call:self__agent_general {\"input\": \"hi\"}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(other["tool_calls"][0]["status"], "rejected", "only the listed tool is offered: {other}");
    assert_eq!(app.with(Method::DELETE, "/api/v1/mcp-servers/self", &token).send().await.unwrap().status(), 204);
    let gone = app.with(Method::POST, "/api/v1/runs", &token).json(&run("call:self__agent_math {\"input\": \"1+1\"}")).send().await.unwrap();
    assert_error(gone, 502, "upstream_error").await;

    // Without an allowlist entry, loopback servers are refused when registered.
    let guarded = spawn_app().await;
    guarded.bootstrap().await;
    let token = guarded.token(ADMIN_EMAIL).await;
    let response = guarded.with(Method::POST, "/api/v1/mcp-servers", &token).json(&json!({ "name": "local", "url": "http://127.0.0.1:9/mcp" })).send().await.unwrap();
    assert_error(response, 400, "invalid_request").await;
}
