//! The agent runtime: the agent catalog (built-in and custom agents),
//! threads and their memory, the intent router, tools, and runs — started
//! here, executed by the run loop in their own task, followed through
//! their event log (live or resumed), cancelled, and recorded.
//!
//! Every model call goes through the [`Gateway`], so agent runs are
//! metered, limited and budgeted like direct calls (with the agent's name
//! on the record).
//!
//! Must not: know about HTTP (the server shapes JSON, SSE and the OpenAI
//! and A2A surfaces from [`RunEvent`]s).

pub mod catalog;
pub mod definitions;
pub mod events;
pub mod mcp;
mod memory;
pub mod protocol;
pub mod quality;
mod queued;
pub mod routing;
mod run;
pub mod threads;
pub mod tools;

use agentry_types::{JobKind, RunStatus, ToolCallStatus};
use std::sync::Arc;
use std::time::Duration;

use agentry_db::Db;
use agentry_db::agents::{RunRow, ToolCallRow};
use agentry_types::{ChatMessage, Role};
use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use definitions::{AgentDefinition, AgentKind, AgentSpec, RunLimits};
pub use events::{Citation, LiveRun, LiveRuns, RunEvent};
pub use run::{MATH_UNREADABLE, RAG_UNKNOWN};
pub use threads::{MessageView, ThreadInput, ThreadPatch, ThreadView, conversation_owner};

use crate::audit::Audit;
use crate::events::Events;
use crate::gateway::{CallContext, Gateway};
use crate::identity::TenantAccess;
use crate::jobs::Jobs;
use crate::knowledge::Knowledge;
use crate::outbound::{Outbound, OutboundPolicy};
use crate::page::{Cursor, Page, PageRequest};
use crate::secrets::Sealer;
use memory::ContextInput;
use routing::Route;
use tools::ToolRegistry;

pub use crate::error::Error;

/// Operator settings of the agent runtime (`[agents]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsSettings {
    /// Model of the built-in agents and of custom agents that name none.
    pub default_model: String,
    /// Model of the vision agent (must accept images); `default_model` when unset.
    pub vision_model: Option<String>,
    /// Model asked to classify a request when the keyword router is unsure; none: keywords and knowledge only.
    pub router_model: Option<String>,
    /// Model that grades how well a RAG answer's sources support it (0-1); none: the lexical support score.
    pub judge_model: Option<String>,
    /// Model calls per run (built-in agents; the default of custom ones).
    pub max_steps: u32,
    /// Tool calls per run (built-in agents; the default of custom ones).
    pub max_tool_calls: u32,
    /// Wall-clock limit of a run (built-in agents; the default of custom ones).
    pub timeout_secs: f64,
    /// Most tokens one model step of a run may generate.
    pub max_output_tokens: u32,
    /// How long a finished run's events stay available for `Last-Event-ID` resumption.
    pub resume_window_secs: u64,
    /// Passages the RAG agent retrieves.
    pub rag_top_k: usize,
    /// Cosine similarity a passage needs for the RAG agent to use it (below: "I don't know").
    pub rag_min_similarity: f64,
    /// The guard on every outbound call agents make (the `http_fetch` tool,
    /// MCP servers): allowlist, size, time.
    pub outbound: OutboundPolicy,
}

impl AgentsSettings {
    pub fn limits(&self) -> RunLimits {
        RunLimits { max_steps: self.max_steps, max_tool_calls: self.max_tool_calls, timeout_secs: self.timeout_secs }
    }

    /// Refuse settings a run could not work with.
    pub fn validate(&self) -> Result<(), String> {
        if self.default_model.trim().is_empty() {
            return Err("agents.default_model must not be empty".into());
        }
        if !(1..=50).contains(&self.max_steps) || self.max_tool_calls > 100 || !(self.timeout_secs > 0.0 && self.timeout_secs <= 3600.0) {
            return Err("agents: max_steps must be 1-50, max_tool_calls at most 100, timeout_secs in (0, 3600]".into());
        }
        if self.max_output_tokens == 0 {
            return Err("agents.max_output_tokens must be at least 1".into());
        }
        if !(1..=20).contains(&self.rag_top_k) || !(-1.0..=1.0).contains(&self.rag_min_similarity) {
            return Err("agents: rag_top_k must be 1-20 and rag_min_similarity in [-1, 1]".into());
        }
        Ok(())
    }
}

impl Default for AgentsSettings {
    fn default() -> Self {
        Self {
            default_model: "local-chat".into(),
            vision_model: None,
            router_model: None,
            judge_model: None,
            max_steps: RunLimits::default().max_steps,
            max_tool_calls: RunLimits::default().max_tool_calls,
            timeout_secs: RunLimits::default().timeout_secs,
            max_output_tokens: 1024,
            resume_window_secs: 600,
            rag_top_k: 5,
            rag_min_similarity: 0.35,
            outbound: OutboundPolicy { max_bytes: 2 * 1024 * 1024, timeout: Duration::from_secs(15), ..OutboundPolicy::default() },
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunInput {
    /// An agent name, or `None`/`auto` for the router.
    pub agent: Option<String>,
    /// On a thread: the new message(s). Stateless: the whole conversation.
    /// The last message must be the user's.
    pub messages: Vec<ChatMessage>,
}

/// A run that started: follow `live` for its events.
pub struct StartedRun {
    pub id: String,
    pub agent: String,
    pub agent_type: AgentKind,
    pub live: Arc<LiveRun>,
}

/// A run's record as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: String,
    pub thread_id: Option<String>,
    pub agent: String,
    pub agent_version: Option<i32>,
    pub agent_type: String,
    pub status: RunStatus,
    pub routing: Value,
    pub input: Value,
    pub output: Option<String>,
    pub error: Option<String>,
    pub model: Option<String>,
    pub model_calls: i32,
    pub usage: Value,
    pub quality_score: Option<f64>,
    /// The passages the answer cites, by their `[n]` markers.
    pub citations: Vec<Citation>,
    pub tool_calls: Vec<ToolCallView>,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// One tool call of a run, in the order the run made them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ToolCallView {
    pub seq: i32,
    pub tool: String,
    /// The arguments the model gave (a string when they were not JSON).
    pub arguments: Value,
    pub status: ToolCallStatus,
    pub result: Option<String>,
    pub duration_ms: i64,
}

impl From<ToolCallRow> for ToolCallView {
    fn from(c: ToolCallRow) -> Self {
        Self {
            arguments: serde_json::from_str(&c.arguments).unwrap_or(Value::String(c.arguments)),
            seq: c.seq,
            tool: c.tool,
            status: c.status,
            result: c.result,
            duration_ms: c.duration_ms,
        }
    }
}

fn run_view(row: RunRow, calls: Vec<ToolCallRow>) -> RunView {
    RunView {
        routing: serde_json::json!({ "routed_by": row.routed_by, "confidence": row.route_confidence }),
        input: serde_json::from_str(&row.input).unwrap_or_default(),
        usage: serde_json::json!({
            "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
            "total_tokens": row.prompt_tokens + row.completion_tokens,
        }),
        citations: serde_json::from_str(&row.citations).unwrap_or_default(),
        tool_calls: calls.into_iter().map(ToolCallView::from).collect(),
        id: row.id,
        thread_id: row.thread_id,
        agent: row.agent,
        agent_version: row.agent_version,
        agent_type: row.agent_type,
        status: row.status,
        output: row.output,
        error: row.error,
        model: row.model,
        model_calls: row.model_calls,
        quality_score: row.quality_score,
        created_at_ms: row.created_at_ms,
        started_at_ms: row.started_at_ms,
        finished_at_ms: row.finished_at_ms,
    }
}

const MAX_INPUT_MESSAGES: usize = 200;
const MAX_INPUT_CHARS: usize = 200_000;

/// The agent runtime. Cheap to clone.
#[derive(Clone)]
pub struct Agents {
    db: Db,
    gateway: Gateway,
    knowledge: Knowledge,
    audit: Audit,
    tools: ToolRegistry,
    outbound: Outbound,
    live: LiveRuns,
    settings: Arc<AgentsSettings>,
    /// Seals and opens registered MCP servers' headers.
    sealer: Sealer,
    /// Where background runs are queued.
    jobs: Jobs,
    /// Where the ends of runs are published.
    events: Events,
}

impl Agents {
    /// The runtime; background runs are queued on `jobs`, whose workers
    /// this registers the `agent_run` kind with.
    #[allow(clippy::too_many_arguments, reason = "one argument per service the runtime uses; each is required")]
    pub fn new(db: Db, gateway: Gateway, knowledge: Knowledge, audit: Audit, sealer: Sealer, jobs: Jobs, events: Events, settings: AgentsSettings) -> Result<Self, Error> {
        let outbound = Outbound::new(settings.outbound.clone()).map_err(|e| Error::Invalid { message: e.to_string(), param: Some("outbound".into()) })?;
        let tools = ToolRegistry::built_in(knowledge.clone(), outbound.clone()).map_err(|e| Error::Internal(e.to_string()))?;
        let live = LiveRuns::new(Duration::from_secs(settings.resume_window_secs));
        let agents = Self { db, gateway, knowledge, audit, tools, outbound, live, settings: Arc::new(settings), sealer, jobs, events };
        queued::register(&agents);
        Ok(agents)
    }

    pub fn settings(&self) -> &AgentsSettings {
        &self.settings
    }

    pub fn tools(&self) -> &ToolRegistry {
        &self.tools
    }

    /// Fail the runs a previous process left unfinished (background runs
    /// excepted: their jobs run them again); call once at startup.
    pub async fn recover(&self) -> Result<u64, Error> {
        Ok(self.db.fail_interrupted_runs(crate::identity::now_ms()).await?)
    }

    /// Check, route and start a run; it executes in its own task.
    pub async fn start_run(&self, access: &TenantAccess, call: &CallContext, thread_id: Option<&str>, input: RunInput) -> Result<StartedRun, Error> {
        let planned = self.plan(access, call, input).await?;
        let (run, started) = self.prepare(access, call, thread_id, planned, uuid::Uuid::now_v7().to_string(), None).await?;
        let agents = self.clone();
        // The run outlives the request, but its trace continues the request's.
        let caller = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(async move { agents.execute(run).await }, caller));
        Ok(started)
    }

    /// Check a run's input, route it, and check that the caller may use the
    /// agent and its model with that input.
    async fn plan(&self, access: &TenantAccess, call: &CallContext, input: RunInput) -> Result<Planned, Error> {
        let (system_text, messages) = checked_messages(input.messages)?;
        let question = messages.last().map(ChatMessage::content_text).unwrap_or_default();
        let has_image = messages.iter().any(|m| m.content.as_ref().is_some_and(|c| c.has_image()));
        let (spec, route) = match input.agent.as_deref().filter(|a| *a != "auto") {
            Some(name) => (self.resolve(access, name).await?, Route { kind: AgentKind::General, routed_by: "explicit", confidence: 1.0 }),
            None => {
                let route = self.route(access, call, &question, has_image).await;
                (self.built_in_spec(route.kind), route)
            }
        };
        access.require(spec.kind.permission())?;
        self.check_model(&spec, has_image)?;
        Ok(Planned { spec, route, system_text, messages, question, has_image })
    }

    /// Everything a planned run needs to execute as run `id`: its thread's
    /// history and memory, its MCP tools, and its live event log; records
    /// the run as running (a new row, or `queued`'s row restarted).
    async fn prepare(
        &self,
        access: &TenantAccess,
        call: &CallContext,
        thread_id: Option<&str>,
        planned: Planned,
        id: String,
        queued: Option<&RunRow>,
    ) -> Result<(run::Run, StartedRun), Error> {
        let Planned { spec, route, system_text, messages, question, has_image } = planned;
        let call = CallContext { agent: Some(spec.name.clone()), ..call.clone() };
        let thread = match thread_id {
            Some(id) => Some(self.owned_thread(access, id).await?),
            None => None,
        };
        let history = match &thread {
            Some(t) => self.db.messages(&t.id, t.summarized_through).await?,
            None => Vec::new(),
        };
        let shaped_by_thread = thread.as_ref().is_some_and(|t| !t.summary.trim().is_empty() || !matches!(t.pinned.trim(), "" | "[]"));
        let plain_question = messages.len() == 1 && messages.iter().all(|m| m.name.is_none() && m.tool_calls.is_none());
        let self_contained = history.is_empty() && plain_question && system_text.trim().is_empty() && !has_image && !shaped_by_thread;
        let context = ContextInput { model: &spec.model, instructions: &spec.instructions, extra_system: &system_text, thread: thread.as_ref(), history, input: &messages };
        let conversation = self.context(&call, context).await;
        let mcp_tools = self.resolve_mcp_tools(access.tenant_id(), &spec.tools).await?;
        let owner = conversation_owner(access)?;
        let now = crate::identity::now_ms();
        let live = self
            .live
            .start(&id, access.tenant_id(), &owner, thread_id)
            .ok_or_else(|| Error::Conflict(format!("thread '{}' already has a run in progress", thread_id.unwrap_or_default())))?;
        let recorded = match queued {
            Some(row) => self
                .db
                .restart_run(&row.id, now)
                .await
                .and_then(|restarted| restarted.then_some(()).ok_or(agentry_db::DbError::Conflict { context: "the queued run has already ended" })),
            None => self.db.insert_run(&new_run_row(&id, access, owner, thread_id, &spec, &route, &messages, now)).await,
        };
        if let Err(error) = recorded {
            self.live.finish(&live);
            return Err(error.into());
        }
        let started = StartedRun { id: id.clone(), agent: spec.name.clone(), agent_type: spec.kind, live: Arc::clone(&live) };
        let run =
            run::Run { id, spec, access: access.clone(), call, conversation, input: messages, question, thread_id: thread_id.map(str::to_owned), self_contained, mcp_tools, live };
        Ok((run, started))
    }

    /// Start a run and wait for its end; its record.
    pub async fn run_to_end(&self, access: &TenantAccess, call: &CallContext, thread_id: Option<&str>, input: RunInput) -> Result<RunView, Error> {
        let started = self.start_run(access, call, thread_id, input).await?;
        futures::StreamExt::count(started.live.follow(0)).await;
        self.run(access, &started.id).await
    }

    /// The model must be configured, and see when the input has images.
    fn check_model(&self, spec: &AgentSpec, has_image: bool) -> Result<(), Error> {
        let entry = self
            .gateway
            .router()
            .registry()
            .get(&spec.model)
            .ok_or_else(|| Error::Unavailable(format!("agent '{}' uses model '{}', which is not configured", spec.name, spec.model)))?;
        if has_image && !entry.vision {
            let message =
                format!("agent '{}' uses model '{}', which cannot see images; set agents.vision_model (or the agent's model) to a vision-capable model", spec.name, spec.model);
            return Err(Error::ModelCannotSee(message));
        }
        Ok(())
    }

    /// A run the asker owns.
    pub async fn run(&self, access: &TenantAccess, id: &str) -> Result<RunView, Error> {
        let row = self.owned_run(access, id).await?;
        let calls = self.db.tool_calls_of_run(id).await?;
        Ok(run_view(row, calls))
    }

    async fn owned_run(&self, access: &TenantAccess, id: &str) -> Result<RunRow, Error> {
        let owner = conversation_owner(access)?;
        match self.db.run(access.tenant_id(), id).await? {
            Some(row) if row.owner == owner => Ok(row),
            _ => Err(Error::NotFound(format!("run '{id}'"))),
        }
    }

    /// The caller's runs (of one thread, or all), newest first, a page at a time.
    pub async fn runs(&self, access: &TenantAccess, thread_id: Option<&str>, page: &PageRequest) -> Result<Page<RunView>, Error> {
        if let Some(thread) = thread_id {
            self.owned_thread(access, thread).await?;
        }
        let rows = self.db.runs_of_owner(access.tenant_id(), &conversation_owner(access)?, thread_id, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.id), |row| run_view(row, Vec::new())))
    }

    /// Cancel a run in progress and wait (briefly) for it to stop; its
    /// record after. A background run's job is cancelled too: one still
    /// queued never runs; one running in another process stops within a
    /// heartbeat of its job.
    pub async fn cancel_run(&self, access: &TenantAccess, id: &str) -> Result<RunView, Error> {
        self.owned_run(access, id).await?;
        let queued = self.jobs.job_of_subject(access.tenant_id(), JobKind::AgentRun, id).await?;
        if let Some(job) = &queued {
            self.jobs.cancel_job(job).await?;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(live) = self.live.get(id).filter(|l| !l.ended()) {
                live.cancel_token().cancel();
                let ended = futures::StreamExt::count(live.follow(0));
                if tokio::time::timeout_at(deadline, ended).await.is_err() {
                    tracing::warn!(run = %id, "a cancelled run did not stop within 10 s");
                }
            }
            let view = self.run(access, id).await?;
            // A background run may be held by a worker that has not started it yet, or by another process.
            let settling = queued.is_some() && matches!(view.status, RunStatus::Pending | RunStatus::Running);
            if !settling || tokio::time::Instant::now() >= deadline {
                return Ok(view);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A run's events after number `after`, then live ones until it ends.
    pub async fn follow(&self, access: &TenantAccess, id: &str, after: usize) -> Result<impl Stream<Item = (usize, Arc<RunEvent>)> + Send + use<>, Error> {
        self.owned_run(access, id).await?;
        let live = self.live.get(id).ok_or_else(|| Error::NotFound(format!("events of run '{id}' (they are kept {} s after a run ends)", self.settings.resume_window_secs)))?;
        Ok(live.follow(after))
    }
}

/// A run request that was checked and routed.
struct Planned {
    spec: AgentSpec,
    route: Route,
    /// The caller's system messages, added to the agent's instructions.
    system_text: String,
    /// The rest of the input, ending with the user's message.
    messages: Vec<ChatMessage>,
    question: String,
    has_image: bool,
}

/// The row of a run that starts now (`started_at_ms` set) or is queued (`pending`).
#[allow(clippy::too_many_arguments)]
fn new_run_row(id: &str, access: &TenantAccess, owner: String, thread_id: Option<&str>, spec: &AgentSpec, route: &Route, messages: &[ChatMessage], now: i64) -> RunRow {
    RunRow {
        id: id.to_owned(),
        tenant_id: access.tenant_id().to_owned(),
        owner,
        thread_id: thread_id.map(str::to_owned),
        agent: spec.name.clone(),
        agent_version: spec.version,
        agent_type: spec.kind.as_str().to_owned(),
        // Execution starts at once: one write on the way to the first token, not two.
        status: RunStatus::Running,
        routed_by: route.routed_by.to_owned(),
        route_confidence: route.confidence,
        input: serde_json::to_string(messages).unwrap_or_default(),
        output: None,
        error: None,
        model: None,
        model_calls: 0,
        tool_calls: 0,
        prompt_tokens: 0,
        completion_tokens: 0,
        quality_score: None,
        citations: "[]".into(),
        created_at_ms: now,
        started_at_ms: Some(now),
        finished_at_ms: None,
    }
}

/// Validate a run's messages: system messages become extra instructions,
/// the rest must end with the user's.
fn checked_messages(messages: Vec<ChatMessage>) -> Result<(String, Vec<ChatMessage>), Error> {
    let invalid = |message: &str| Error::Invalid { message: message.to_owned(), param: Some("input".into()) };
    if messages.is_empty() || messages.len() > MAX_INPUT_MESSAGES {
        return Err(invalid("the input must have 1 to 200 messages"));
    }
    let chars: usize = messages.iter().map(|m| m.content_text().len()).sum();
    if chars > MAX_INPUT_CHARS {
        return Err(invalid("the input is longer than 200000 characters"));
    }
    let (system, rest): (Vec<ChatMessage>, Vec<ChatMessage>) = messages.into_iter().partition(|m| matches!(m.role, Role::System | Role::Developer));
    let last = rest.last().ok_or_else(|| invalid("the input must end with a user message"))?;
    if last.role != Role::User || (last.content_text().trim().is_empty() && !last.content.as_ref().is_some_and(|c| c.has_image())) {
        return Err(invalid("the input must end with a non-empty user message"));
    }
    if rest.iter().any(|m| m.role == Role::Tool) {
        return Err(invalid("tool messages cannot be sent to an agent; its tools run on the server"));
    }
    let system_text = system.iter().map(ChatMessage::content_text).collect::<Vec<_>>().join("\n");
    Ok((system_text, rest))
}
