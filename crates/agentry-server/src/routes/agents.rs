//! Agents, threads and runs. A run is started three ways from one request
//! shape: wait for the result (`200` with the run), stream it (SSE, each
//! event with an `id:` for `Last-Event-ID` resumption through
//! `GET /api/v1/runs/{id}/events`, heartbeats while idle), or start it in
//! the background (`202`, then poll or cancel; queued as a durable job). Handlers call one `Agents`
//! function each; the run itself never depends on the connection. Also the
//! tenant's external MCP servers (register, list, discover tools, delete).

use std::convert::Infallible;
use std::time::Duration;

use agentry_core::TenantAccess;
use agentry_core::agents::mcp::McpServerInput;
use agentry_core::agents::{AgentDefinition, RunInput, StartedRun, ThreadInput, ThreadPatch};
use agentry_core::page::PageRequest;
use agentry_types::{ChatMessage, Role};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extractors::{ApiJson, PageQuery};
use crate::middleware::RequestId;
use crate::openai::call_context;
use crate::state::AppState;

/// How often an idle run stream sends an SSE comment, so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(list_agents).post(create_agent))
        .route("/api/v1/agents/{name}", get(agent).put(update_agent).delete(delete_agent))
        .route("/api/v1/agents/{name}/versions", get(agent_versions))
        .route("/api/v1/threads", get(threads).post(create_thread))
        .route("/api/v1/threads/{id}", get(thread).patch(update_thread).delete(delete_thread))
        .route("/api/v1/threads/{id}/messages", get(messages))
        .route("/api/v1/threads/{id}/runs", get(thread_runs).post(thread_run))
        .route("/api/v1/runs", get(runs).post(stateless_run))
        .route("/api/v1/runs/{id}", get(run))
        .route("/api/v1/runs/{id}/cancel", post(cancel))
        .route("/api/v1/runs/{id}/events", get(events))
        .route("/api/v1/mcp-servers", get(mcp_servers).post(register_mcp_server))
        .route("/api/v1/mcp-servers/{name}", axum::routing::delete(delete_mcp_server))
        .route("/api/v1/mcp-servers/{name}/tools", get(mcp_server_tools))
}

async fn mcp_servers(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": state.agents.mcp_servers(&access).await? })).into_response())
}

async fn register_mcp_server(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<McpServerInput>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.agents.register_mcp_server(&access, input).await?)).into_response())
}

async fn delete_mcp_server(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.agents.delete_mcp_server(&access, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn mcp_server_tools(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": state.agents.mcp_server_tools(&access, &name).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAgent {
    name: String,
    #[serde(flatten)]
    definition: AgentDefinition,
}

/// An [`AgentDefinition`] with a `name`: one object, not `allOf` of two
/// closed ones (which no body could satisfy).
impl utoipa::PartialSchema for NewAgent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let name = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z][a-z0-9_-]{0,63}$"))
            .description(Some("1-64 lowercase letters, digits, '-' and '_', starting with a letter; not a built-in agent's name."));
        match <AgentDefinition as utoipa::PartialSchema>::schema() {
            RefOr::T(Schema::Object(mut definition)) => {
                definition.properties.insert("name".into(), name.into());
                definition.required.insert(0, "name".into());
                RefOr::T(Schema::Object(definition))
            }
            other => other,
        }
    }
}

impl utoipa::ToSchema for NewAgent {
    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        <AgentDefinition as utoipa::ToSchema>::schemas(schemas);
    }
}

async fn list_agents(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.agents.agents(&access, &query.page()?).await?).into_response())
}

async fn create_agent(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(body): ApiJson<NewAgent>) -> Result<Response, ApiError> {
    let view = state.agents.create_agent(&access, &body.name, body.definition).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn agent(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.agents.agent(&access, &name).await?).into_response())
}

async fn update_agent(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(name): Path<String>,
    ApiJson(definition): ApiJson<AgentDefinition>,
) -> Result<Response, ApiError> {
    Ok(Json(state.agents.update_agent(&access, &name, definition).await?).into_response())
}

async fn delete_agent(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(name): Path<String>) -> Result<StatusCode, ApiError> {
    state.agents.delete_agent(&access, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn agent_versions(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": state.agents.agent_versions(&access, &name).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    q: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

async fn threads(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<ListQuery>) -> Result<Response, ApiError> {
    let page = PageRequest::parse(query.limit, query.after.as_deref())?;
    Ok(Json(state.agents.threads(&access, query.q.as_deref(), &page).await?).into_response())
}

async fn create_thread(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<ThreadInput>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(state.agents.create_thread(&access, input).await?)).into_response())
}

async fn thread(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.agents.thread(&access, &id).await?).into_response())
}

async fn update_thread(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ThreadPatch>,
) -> Result<Response, ApiError> {
    Ok(Json(state.agents.update_thread(&access, &id, patch).await?).into_response())
}

async fn delete_thread(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    state.agents.delete_thread(&access, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn messages(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": state.agents.thread_messages(&access, &id).await? })).into_response())
}

/// The input of a run: a string (one user message) or chat messages.
#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Messages(Vec<ChatMessage>),
}

/// [`Input`]'s schema: a string, or OpenAI chat messages (`role`, `content`).
fn input_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
    let message = utoipa::openapi::Ref::from_schema_name("ChatMessage");
    OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1))).item(ArrayBuilder::new().items(message).min_items(Some(1))).build().into()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunRequest {
    /// An agent name, or `auto` (default) for the router.
    agent: Option<String>,
    #[schema(schema_with = input_schema)]
    input: Input,
    #[serde(default)]
    stream: bool,
    /// Queue the run as a job and answer `202` at once (it survives a restart).
    #[serde(default)]
    background: bool,
    /// With `background`: a second request with the same key returns the
    /// run the first one queued instead of queuing another.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    idempotency_key: Option<String>,
}

impl RunRequest {
    fn into_input(self) -> Result<(RunInput, Mode), ApiError> {
        let mode = match (self.stream, self.background, self.idempotency_key) {
            (true, true, _) => return Err(ApiError::bad_request("'stream' and 'background' cannot both be true", "background")),
            (_, false, Some(_)) => return Err(ApiError::bad_request("'idempotency_key' is for background runs ('background': true)", "idempotency_key")),
            (true, false, None) => Mode::Stream,
            (false, true, key) => Mode::Background(key),
            (false, false, None) => Mode::Wait,
        };
        let messages = match self.input {
            Input::Text(text) => vec![ChatMessage::text(Role::User, text)],
            Input::Messages(messages) => messages,
        };
        Ok((RunInput { agent: self.agent, messages }, mode))
    }
}

enum Mode {
    Wait,
    Stream,
    /// With its idempotency key.
    Background(Option<String>),
}

async fn thread_run(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(request_id): Extension<RequestId>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<Response, ApiError> {
    start(&state, &access, request_id, Some(&id), body).await
}

async fn stateless_run(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Extension(request_id): Extension<RequestId>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<Response, ApiError> {
    start(&state, &access, request_id, None, body).await
}

async fn start(state: &AppState, access: &TenantAccess, request_id: RequestId, thread: Option<&str>, body: RunRequest) -> Result<Response, ApiError> {
    let (input, mode) = body.into_input()?;
    let endpoint = if thread.is_some() { "/api/v1/threads/{id}/runs" } else { "/api/v1/runs" };
    let ctx = call_context(request_id, endpoint, Some(access));
    let (id, mut response) = match mode {
        Mode::Wait => {
            let run = state.agents.run_to_end(access, &ctx, thread, input).await?;
            (run.id.clone(), Json(run).into_response())
        }
        Mode::Stream => {
            let StartedRun { id, live, .. } = state.agents.start_run(access, &ctx, thread, input).await?;
            (id, sse(live.follow(0)))
        }
        Mode::Background(key) => {
            let run = state.agents.queue_run(access, &ctx, thread, input, key).await?;
            (run.id.clone(), (StatusCode::ACCEPTED, Json(run)).into_response())
        }
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-agentry-run-id", value);
    }
    Ok(response)
}

/// A run's events as SSE: `id: <n>`, `data: {"type": …}`, heartbeats while idle.
fn sse(events: impl futures::Stream<Item = (usize, std::sync::Arc<agentry_core::agents::RunEvent>)> + Send + 'static) -> Response {
    let frames = events.map(|(n, event)| {
        let frame = Event::default().id(n.to_string());
        Ok::<_, Infallible>(frame.json_data(&*event).unwrap_or_else(|_| Event::default().id(n.to_string()).data("{}")))
    });
    Sse::new(frames).keep_alive(KeepAlive::new().interval(HEARTBEAT)).into_response()
}

async fn thread_runs(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ApiError> {
    Ok(Json(state.agents.runs(&access, Some(&id), &query.page()?).await?).into_response())
}

async fn runs(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(query): Query<PageQuery>) -> Result<Response, ApiError> {
    Ok(Json(state.agents.runs(&access, None, &query.page()?).await?).into_response())
}

async fn run(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.agents.run(&access, &id).await?).into_response())
}

async fn cancel(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(state.agents.cancel_run(&access, &id).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Resume after this event number (the `Last-Event-ID` header wins).
    after: Option<u32>,
}

async fn events(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = match headers.get("last-event-id") {
        Some(value) => {
            value.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| ApiError::bad_request("'Last-Event-ID' must be an event number", "Last-Event-ID"))?
        }
        None => query.after.map_or(0, |after| after as usize),
    };
    Ok(sse(state.agents.follow(&access, &id, after).await?))
}
