//! A2A (Agent2Agent): the public agent card at
//! `/.well-known/agent-card.json` (the platform's agents as skills, bearer
//! auth declared) and the JSON-RPC endpoint `POST /a2a` speaking protocol
//! 1.0 (`SendMessage`, `SendStreamingMessage`, `GetTask`, `CancelTask`;
//! ProtoJSON shapes: `ROLE_USER`, `TASK_STATE_COMPLETED`, parts without
//! `kind`) and the older 0.3 names (`message/send`, `message/stream`,
//! `tasks/get`, `tasks/cancel`) in 0.3 shapes.
//!
//! An A2A task is an agent run; its `contextId` is a thread (created on the
//! first message, continued when a later message names it). The agent is
//! `metadata.agent` on the message or the request, else the router picks.
//! Errors are JSON-RPC errors with HTTP 200, as A2A clients expect.
//!
//! Hand-written: the protocol is four JSON-RPC methods over JSON; the
//! handlers translate to and from `Agents` and hold no state of their own.

use std::convert::Infallible;
use std::net::SocketAddr;

use agentry_core::TenantAccess;
use agentry_core::agents::{AgentKind, Error, RunEvent, RunInput, RunView, StartedRun, ThreadInput};
use agentry_types::RunStatus;
use agentry_types::{ChatMessage, Role};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::middleware::RequestId;
use crate::openai::call_context;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/agent-card.json", get(card)).route("/a2a", post(rpc))
}

/// Which protocol version's shapes a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V1,
    V03,
}

/// The card's URLs use `identity.public_url` when set, else the origin the
/// client reached (forwarded headers only from `trusted_proxies`).
async fn card(State(state): State<AppState>, peer: Option<Extension<ConnectInfo<SocketAddr>>>, headers: HeaderMap) -> Response {
    let base = match &state.identity.settings().public_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => state.trusted_proxies.origin(peer.map(|c| c.0.0), &headers),
    };
    let mut skills = vec![json!({
        "id": "auto", "name": "Auto", "tags": ["router"],
        "description": "Routes the message to the right agent (set metadata.agent to choose one).",
    })];
    for kind in AgentKind::BUILT_IN {
        let spec = agentry_core::agents::AgentSpec::built_in(kind, "", Default::default());
        skills.push(json!({ "id": kind.as_str(), "name": kind.as_str(), "description": spec.description, "tags": [kind.as_str()] }));
    }
    Json(json!({
        "name": "Agentry",
        "description": "Agentry's agents: general chat, knowledge answers with citations, exact math, code and vision. \
                        Custom agents of your tenant are reachable by name in metadata.agent.",
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [{ "url": format!("{base}/a2a"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0" }],
        "provider": { "organization": "Agentry", "url": base },
        "capabilities": { "streaming": true, "pushNotifications": false },
        "securitySchemes": { "bearer": { "httpAuthSecurityScheme": {
            "scheme": "Bearer", "description": "An Agentry API key or access token of the tenant.",
        } } },
        "securityRequirements": [{ "schemes": { "bearer": {} } }],
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": skills,
    }))
    .into_response()
}

/// A JSON-RPC error answer (HTTP 200).
fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message.into() } })).into_response()
}

fn rpc_result(id: &Value, result: Value) -> Response {
    Json(json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
}

/// The error table rendered as JSON-RPC: a request the caller got wrong
/// is invalid params, one it may not make is an invalid request, the rest
/// internal.
fn agents_error(id: &Value, error: Error) -> Response {
    let code = match error.code().status() {
        400 | 404 | 413 | 422 => -32602,
        401 | 403 | 409 | 429 => -32600,
        _ => -32603,
    };
    rpc_error(id, code, error.public_message())
}

async fn rpc(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Extension(request_id): Extension<RequestId>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else { return rpc_error(&Value::Null, -32700, "the body is not JSON") };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = request.get("method").and_then(Value::as_str) else { return rpc_error(&id, -32600, "'method' is required") };
    let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
    let a2a = A2a { state: &state, access: &access, request_id };
    match method {
        "SendMessage" => a2a.send(&id, &params, Dialect::V1, false).await,
        "SendStreamingMessage" => a2a.send(&id, &params, Dialect::V1, true).await,
        "message/send" => a2a.send(&id, &params, Dialect::V03, false).await,
        "message/stream" => a2a.send(&id, &params, Dialect::V03, true).await,
        "GetTask" => a2a.get(&id, &params, Dialect::V1).await,
        "tasks/get" => a2a.get(&id, &params, Dialect::V03).await,
        "CancelTask" => a2a.cancel(&id, &params, Dialect::V1).await,
        "tasks/cancel" => a2a.cancel(&id, &params, Dialect::V03).await,
        other => rpc_error(&id, -32601, format!("method '{other}' is not supported")),
    }
}

struct A2a<'a> {
    state: &'a AppState,
    access: &'a TenantAccess,
    request_id: RequestId,
}

impl A2a<'_> {
    async fn send(&self, id: &Value, params: &Value, dialect: Dialect, stream: bool) -> Response {
        let message = &params["message"];
        let text: Vec<&str> = message["parts"].as_array().into_iter().flatten().filter_map(|p| p["text"].as_str()).collect();
        if text.is_empty() || text.iter().all(|t| t.trim().is_empty()) {
            return rpc_error(id, -32602, "the message needs at least one non-empty text part");
        }
        let agent = message["metadata"]["agent"].as_str().or_else(|| params["metadata"]["agent"].as_str()).map(str::to_owned);
        let thread = match message["contextId"].as_str() {
            Some(context) => match self.state.agents.thread(self.access, context).await {
                Ok(thread) => thread.id,
                Err(Error::NotFound(_)) => return rpc_error(id, -32602, format!("unknown contextId '{context}'")),
                Err(error) => return agents_error(id, error),
            },
            None => {
                let title: String = text.join(" ").chars().take(80).collect();
                match self.state.agents.create_thread(self.access, ThreadInput { title: Some(title), ..Default::default() }).await {
                    Ok(thread) => thread.id,
                    Err(error) => return agents_error(id, error),
                }
            }
        };
        let input = RunInput { agent, messages: vec![ChatMessage::text(Role::User, text.join("\n"))] };
        let ctx = call_context(self.request_id.clone(), "/a2a", Some(self.access));
        let started = match self.state.agents.start_run(self.access, &ctx, Some(&thread), input).await {
            Ok(started) => started,
            Err(error) => return agents_error(id, error),
        };
        if stream {
            return self.stream(id, started, &thread, dialect).await;
        }
        let return_immediately = match dialect {
            Dialect::V1 => params["configuration"]["returnImmediately"].as_bool().unwrap_or(false),
            Dialect::V03 => !params["configuration"]["blocking"].as_bool().unwrap_or(true),
        };
        if !return_immediately {
            started.live.follow(0).count().await;
        }
        match self.state.agents.run(self.access, &started.id).await {
            Ok(run) => {
                let task = task_json(&run, dialect);
                rpc_result(id, if dialect == Dialect::V1 { json!({ "task": task }) } else { task })
            }
            Err(error) => agents_error(id, error),
        }
    }

    /// The run's events as A2A stream events; the response ends with the task.
    async fn stream(&self, id: &Value, started: StartedRun, context: &str, dialect: Dialect) -> Response {
        let first = match self.state.agents.run(self.access, &started.id).await {
            Ok(run) => task_json(&run, dialect),
            Err(error) => return agents_error(id, error),
        };
        let (task_id, context, rpc_id) = (started.id.clone(), context.to_owned(), id.clone());
        let wrap = move |result: Value| json!({ "jsonrpc": "2.0", "id": rpc_id, "result": result });
        let opening = wrap(if dialect == Dialect::V1 { json!({ "task": first }) } else { first });
        let mut appended = false;
        let events = started.live.follow(0).filter_map(move |(_, event)| {
            let update = match &*event {
                RunEvent::Token { text } => {
                    let append = std::mem::replace(&mut appended, true);
                    Some(artifact_update(&task_id, &context, text, append, dialect))
                }
                RunEvent::Done { .. } => Some(status_update(&task_id, &context, RunStatus::Succeeded, None, dialect)),
                RunEvent::Error { code, message, .. } => {
                    let status = if code == "cancelled" { RunStatus::Cancelled } else { RunStatus::Failed };
                    Some(status_update(&task_id, &context, status, Some(message), dialect))
                }
                _ => None,
            };
            futures::future::ready(update.map(&wrap))
        });
        let frames = futures::stream::once(futures::future::ready(opening)).chain(events).map(|payload| Ok::<_, Infallible>(Event::default().data(payload.to_string())));
        Sse::new(frames).keep_alive(KeepAlive::default()).into_response()
    }

    async fn get(&self, id: &Value, params: &Value, dialect: Dialect) -> Response {
        let Some(task) = params["id"].as_str() else { return rpc_error(id, -32602, "'params.id' is required") };
        match self.state.agents.run(self.access, task).await {
            Ok(run) => rpc_result(id, task_json(&run, dialect)),
            Err(Error::NotFound(_)) => rpc_error(id, -32001, format!("task '{task}' not found")),
            Err(error) => agents_error(id, error),
        }
    }

    async fn cancel(&self, id: &Value, params: &Value, dialect: Dialect) -> Response {
        let Some(task) = params["id"].as_str() else { return rpc_error(id, -32602, "'params.id' is required") };
        match self.state.agents.run(self.access, task).await {
            Ok(run) if run.status.is_finished() => {
                return rpc_error(id, -32002, format!("task '{task}' has ended ({}) and cannot be canceled", run.status));
            }
            Ok(_) => {}
            Err(Error::NotFound(_)) => return rpc_error(id, -32001, format!("task '{task}' not found")),
            Err(error) => return agents_error(id, error),
        }
        match self.state.agents.cancel_run(self.access, task).await {
            Ok(run) => rpc_result(id, task_json(&run, dialect)),
            Err(error) => agents_error(id, error),
        }
    }
}

/// A run status in the dialect's task-state vocabulary.
fn state_name(status: RunStatus, dialect: Dialect) -> &'static str {
    match (status, dialect) {
        (RunStatus::Succeeded, Dialect::V1) => "TASK_STATE_COMPLETED",
        (RunStatus::Failed, Dialect::V1) => "TASK_STATE_FAILED",
        (RunStatus::Cancelled, Dialect::V1) => "TASK_STATE_CANCELED",
        (RunStatus::Pending | RunStatus::Running, Dialect::V1) => "TASK_STATE_WORKING",
        (RunStatus::Succeeded, Dialect::V03) => "completed",
        (RunStatus::Failed, Dialect::V03) => "failed",
        (RunStatus::Cancelled, Dialect::V03) => "canceled",
        (RunStatus::Pending | RunStatus::Running, Dialect::V03) => "working",
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(now_rfc3339, |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn text_part(text: &str, dialect: Dialect) -> Value {
    match dialect {
        Dialect::V1 => json!({ "text": text }),
        Dialect::V03 => json!({ "kind": "text", "text": text }),
    }
}

fn message_json(message_id: &str, role_is_user: bool, text: &str, task: &str, context: &str, dialect: Dialect) -> Value {
    let role = match (role_is_user, dialect) {
        (true, Dialect::V1) => "ROLE_USER",
        (false, Dialect::V1) => "ROLE_AGENT",
        (true, Dialect::V03) => "user",
        (false, Dialect::V03) => "agent",
    };
    let mut message = json!({ "messageId": message_id, "role": role, "parts": [text_part(text, dialect)], "taskId": task, "contextId": context });
    if dialect == Dialect::V03 {
        message["kind"] = json!("message");
    }
    message
}

fn status_json(status: RunStatus, error: Option<&str>, task: &str, context: &str, at: String, dialect: Dialect) -> Value {
    let mut out = json!({ "state": state_name(status, dialect), "timestamp": at });
    if let Some(error) = error {
        out["message"] = message_json(&format!("{task}-status"), false, error, task, context, dialect);
    }
    out
}

/// A run as an A2A task: the answer (and any citations) as artifacts, the input as history.
fn task_json(run: &RunView, dialect: Dialect) -> Value {
    let context = run.thread_id.clone().unwrap_or_default();
    let at = ms_rfc3339(run.finished_at_ms.or(run.started_at_ms).unwrap_or(run.created_at_ms));
    let mut artifacts = Vec::new();
    if let Some(output) = &run.output {
        artifacts.push(json!({ "artifactId": format!("{}-answer", run.id), "name": "answer", "parts": [text_part(output, dialect)] }));
    }
    if !run.citations.is_empty() {
        let part = match dialect {
            Dialect::V1 => json!({ "data": run.citations }),
            Dialect::V03 => json!({ "kind": "data", "data": { "citations": run.citations } }),
        };
        artifacts.push(json!({ "artifactId": format!("{}-citations", run.id), "name": "citations", "parts": [part] }));
    }
    let history: Vec<Value> = run
        .input
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, m)| {
            let text = serde_json::from_value::<ChatMessage>(m.clone()).map(|m| m.content_text()).unwrap_or_default();
            message_json(&format!("{}-in-{i}", run.id), true, &text, &run.id, &context, dialect)
        })
        .collect();
    let mut task = json!({
        "id": run.id,
        "contextId": context,
        "status": status_json(run.status, run.error.as_deref(), &run.id, &context, at, dialect),
        "artifacts": artifacts,
        "history": history,
        "metadata": { "agent": run.agent, "agentType": run.agent_type },
    });
    if dialect == Dialect::V03 {
        task["kind"] = json!("task");
    }
    task
}

fn artifact_update(task: &str, context: &str, text: &str, append: bool, dialect: Dialect) -> Value {
    let artifact = json!({ "artifactId": format!("{task}-answer"), "name": "answer", "parts": [text_part(text, dialect)] });
    match dialect {
        Dialect::V1 => json!({ "artifactUpdate": { "taskId": task, "contextId": context, "artifact": artifact, "append": append } }),
        Dialect::V03 => json!({ "kind": "artifact-update", "taskId": task, "contextId": context, "artifact": artifact, "append": append, "lastChunk": false }),
    }
}

fn status_update(task: &str, context: &str, status: RunStatus, error: Option<&str>, dialect: Dialect) -> Value {
    let status = status_json(status, error, task, context, now_rfc3339(), dialect);
    match dialect {
        Dialect::V1 => json!({ "statusUpdate": { "taskId": task, "contextId": context, "status": status } }),
        Dialect::V03 => json!({ "kind": "status-update", "taskId": task, "contextId": context, "status": status, "final": true }),
    }
}
