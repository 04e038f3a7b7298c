//! The MCP server at `/mcp` (Streamable HTTP, stateless): JSON-RPC over
//! `POST`, each request answered with one `application/json` message (the
//! transport allows it and the official clients accept it), notifications
//! with `202`. No session id is issued, so clients never open the optional
//! `GET` stream; `GET`/`DELETE` answer `405`.
//!
//! Tools: `knowledge_search` (when the caller may read documents) and one
//! `agent_<name>` per agent the caller may use, which runs the agent and
//! returns its answer. Tool failures are results with `isError: true`;
//! protocol problems are JSON-RPC errors.
//!
//! Hand-written: the server side needs four methods over plain JSON, and an
//! MCP SDK would bring its own HTTP stack next to axum's.

use agentry_core::TenantAccess;
use agentry_core::agents::RunInput;
use agentry_core::agents::tools::ToolContext;
use agentry_types::{ChatMessage, Permission, Role};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use crate::middleware::RequestId;
use crate::openai::call_context;
use crate::state::AppState;

/// Handshake versions we speak, newest first; a client's offer is echoed when known.
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const AGENT_TOOL_PREFIX: &str = "agent_";

pub fn router() -> Router<AppState> {
    Router::new().route("/mcp", post(handle).get(not_allowed).delete(not_allowed))
}

async fn not_allowed() -> Response {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "POST")]).into_response()
}

fn error(id: &Value, code: i64, message: impl Into<String>) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })).into_response()
}

fn result(id: &Value, result: Value) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
}

fn tool_result(text: String, is_error: bool) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}

async fn handle(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Extension(request_id): Extension<RequestId>, body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, error(&Value::Null, -32700, "parse error: the body is not JSON")).into_response();
    };
    let Some(object) = message.as_object() else {
        return (StatusCode::BAD_REQUEST, error(&Value::Null, -32600, "one JSON-RPC message per request (batches are not supported)")).into_response();
    };
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        // A response or something else the client posts: acknowledged, nothing to do.
        return StatusCode::ACCEPTED.into_response();
    };
    let Some(id) = object.get("id") else {
        return StatusCode::ACCEPTED.into_response();
    };
    let params = object.get("params").cloned().unwrap_or(Value::Null);
    match method {
        "initialize" => {
            let offered = params["protocolVersion"].as_str().unwrap_or_default();
            let version = VERSIONS.iter().find(|v| **v == offered).unwrap_or(&VERSIONS[0]);
            let info = json!({
                "protocolVersion": version,
                "capabilities": { "tools": { "listChanged": false } },
                "serverInfo": { "name": "agentry", "version": env!("CARGO_PKG_VERSION") },
                "instructions": "Agentry: search the tenant's knowledge and run its agents.",
            });
            result(id, info)
        }
        "ping" => result(id, json!({})),
        "tools/list" => match tools(&state, &access).await {
            Ok(tools) => result(id, json!({ "tools": tools })),
            Err(message) => error(id, -32603, message),
        },
        "tools/call" => {
            let Some(name) = params["name"].as_str() else { return error(id, -32602, "'params.name' is required") };
            let arguments = params.get("arguments").cloned().unwrap_or_else(|| json!({}));
            call(&state, &access, request_id, id, name, arguments).await
        }
        other => error(id, -32601, format!("method '{other}' is not supported")),
    }
}

/// The tools the caller may use.
async fn tools(state: &AppState, access: &TenantAccess) -> Result<Vec<Value>, String> {
    let mut tools = Vec::new();
    if access.can(Permission::ReadDocuments)
        && let Some(search) = state.agents.tools().get("knowledge_search")
    {
        tools.push(json!({ "name": search.name(), "description": search.description(), "inputSchema": search.parameters() }));
    }
    let agents = state.agents.list_agents(access).await.map_err(|e| e.to_string())?;
    for agent in agents.into_iter().filter(|a| a.usable) {
        tools.push(json!({
            "name": format!("{AGENT_TOOL_PREFIX}{}", agent.spec.name),
            "description": format!("Ask the '{}' agent. {}", agent.spec.name, agent.spec.description),
            "inputSchema": {
                "type": "object",
                "properties": { "input": { "type": "string", "minLength": 1, "description": "The question or task." } },
                "required": ["input"],
                "additionalProperties": false,
            },
        }));
    }
    Ok(tools)
}

async fn call(state: &AppState, access: &TenantAccess, request_id: RequestId, id: &Value, name: &str, arguments: Value) -> Response {
    if let Some(agent) = name.strip_prefix(AGENT_TOOL_PREFIX) {
        let Some(input) = arguments.get("input").and_then(Value::as_str).filter(|i| !i.trim().is_empty()) else {
            return result(id, tool_result("'input' must be a non-empty string".into(), true));
        };
        let ctx = call_context(request_id, "/mcp", Some(access));
        let run = RunInput { agent: Some(agent.to_owned()), messages: vec![ChatMessage::text(Role::User, input)] };
        return match state.agents.run_to_end(access, &ctx, None, run).await {
            Ok(run) if run.status == agentry_types::RunStatus::Succeeded => result(id, tool_result(run.output.unwrap_or_default(), false)),
            Ok(run) => result(id, tool_result(run.error.unwrap_or_else(|| format!("the run {}", run.status)), true)),
            Err(error) => result(id, tool_result(error.to_string(), true)),
        };
    }
    let tool = match state.agents.tools().get(name) {
        Some(tool) if name == "knowledge_search" && access.can(Permission::ReadDocuments) => tool,
        _ => return error(id, -32602, format!("unknown tool '{name}'")),
    };
    if let Err(problem) = state.agents.tools().validate(name, &arguments) {
        return result(id, tool_result(problem.to_string(), true));
    }
    let ctx = ToolContext { access, collections: &[] };
    match tool.call(&ctx, arguments).await {
        Ok(output) => result(id, tool_result(output.text, false)),
        Err(problem) => result(id, tool_result(problem.to_string(), true)),
    }
}
