//! The run loop: one loop for every agent. It calls the model (streamed,
//! tokens forwarded as they come), runs the tools the model asks for
//! (allowlist, schema check, limits; each call recorded and audited), and
//! repeats until the model answers or a limit is hit. The math agent
//! computes with the calculator before any model is involved; the RAG
//! agent retrieves first and answers only from what the asker may read.
//!
//! A run executes in its own task, detached from the request that started
//! it: a client that disconnects neither stops nor corrupts it, and its
//! thread gets the exchange only when the run succeeds.
//!
//! Must not: shape HTTP responses (followers read [`RunEvent`]s).

use agentry_types::AuditAction;
use agentry_types::{EventType, RunStatus, ToolCallStatus};
use std::sync::Arc;
use std::time::Instant;

use agentry_db::agents::{NewMessage, RunFinish, ToolCallRow};
use agentry_llm::{ChatRequest, StreamEvent, tokens};
use agentry_types::{ChatMessage, MessageContent, Role, Usage};
use futures::StreamExt;
use serde_json::{Value, json};

use super::Agents;
use super::definitions::{AgentKind, AgentSpec};
use super::events::{Citation, LiveRun, RunEvent};
use super::mcp::{self, McpTool};
use super::protocol::{self, RequestedCall, ToolCallParts};
use super::quality;
use super::tools::{ToolContext, ToolOutput};
use crate::audit::{AuditEvent, Outcome, RequestMeta};
use crate::events::Audience;
use crate::gateway::{CallContext, GatewayError};
use crate::identity::TenantAccess;
use crate::knowledge::cache::{CachedAnswer, Lookup};
use crate::knowledge::{AnswerQuestion, SearchHit};

/// Said by the RAG agent when nothing readable answers the question.
pub const RAG_UNKNOWN: &str = "I don't know: I found nothing relevant to this question in the knowledge base you can read.";
/// Said by the math agent when no exact calculation could be made.
pub const MATH_UNREADABLE: &str = "I could not turn this into a calculation I can do exactly. Please write it as an expression or equation, e.g. 3/4 + 1/6 or 2x + 3 = 11.";

/// Everything a run needs, prepared by the service.
pub(super) struct Run {
    pub id: String,
    pub spec: AgentSpec,
    pub access: TenantAccess,
    pub call: CallContext,
    /// System message, history and input.
    pub conversation: Vec<ChatMessage>,
    /// The input messages (stored on the thread when the run succeeds).
    pub input: Vec<ChatMessage>,
    /// The last user message's text.
    pub question: String,
    pub thread_id: Option<String>,
    /// The answer depends on the question and the agent alone: no earlier
    /// turns, caller system text, pinned facts, summary or images. Only such
    /// runs use the answer cache (anything else would be served to colleagues
    /// who did not ask it).
    pub self_contained: bool,
    /// Tools of external MCP servers the agent names, discovered at the start.
    pub mcp_tools: Vec<McpTool>,
    pub live: Arc<LiveRun>,
}

/// How a run ended badly.
enum Failure {
    Cancelled,
    Timeout(f64),
    /// `code`, message.
    Stopped(&'static str, String),
}

/// What a run produced.
#[derive(Default)]
struct Tally {
    model_calls: i32,
    tool_calls: i32,
    usage: Usage,
    model: Option<String>,
    citations: Vec<Citation>,
    quality: Option<f64>,
}

/// How a step offers tools to the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tools {
    None,
    /// OpenAI `tools` in the request.
    Native,
    /// Described in the system prompt; calls come back as text.
    Prompted,
}

/// One model step's result.
struct Step {
    text: String,
    calls: Vec<RequestedCall>,
}

fn model_failure(error: GatewayError) -> Failure {
    let code = match &error {
        GatewayError::Refused(_) => "usage_refused",
        _ => "model_error",
    };
    Failure::Stopped(code, error.to_string())
}

impl Agents {
    /// Execute a prepared run to its end, then record it.
    pub(super) async fn execute(&self, run: Run) {
        let span = agentry_llm::trace_context::span(|| {
            tracing::info_span!(
                "agent run",
                otel.name = %format!("invoke_agent {}", run.spec.name),
                gen_ai.operation.name = "invoke_agent",
                gen_ai.agent.name = %run.spec.name,
                agentry.agent_kind = run.spec.kind.as_str(),
            )
        });
        tracing::Instrument::instrument(self.execute_unspanned(run), span).await;
    }

    async fn execute_unspanned(&self, run: Run) {
        let started = Instant::now();
        let mut tally = Tally::default();
        let limit = std::time::Duration::from_secs_f64(run.spec.limits.timeout_secs);
        let cancel = run.live.cancel_token().clone();
        let result = tokio::select! {
            _ = cancel.cancelled() => Err(Failure::Cancelled),
            outcome = tokio::time::timeout(limit, self.body(&run, &mut tally)) => outcome.unwrap_or(Err(Failure::Timeout(run.spec.limits.timeout_secs))),
        };
        self.record(&run, tally, result, started).await;
    }

    async fn body(&self, run: &Run, tally: &mut Tally) -> Result<String, Failure> {
        match run.spec.kind {
            AgentKind::Math => self.math(run, tally).await,
            AgentKind::Rag => self.rag(run, tally).await,
            _ => self.tool_loop(run, tally, run.conversation.clone(), true).await.map(|(text, _)| text),
        }
    }

    /// Model steps and tool calls until the model answers; the answer and
    /// the tool outputs that succeeded.
    async fn tool_loop(&self, run: &Run, tally: &mut Tally, mut conversation: Vec<ChatMessage>, stream: bool) -> Result<(String, Vec<(String, ToolOutput)>), Failure> {
        let mut outputs = Vec::new();
        let mode = match (run.spec.tools.is_empty(), self.native_tools(&run.spec.model)) {
            (true, _) => Tools::None,
            (false, true) => Tools::Native,
            (false, false) => Tools::Prompted,
        };
        if mode == Tools::Prompted {
            let prompt = protocol::tools_prompt(&self.offered_tools(run));
            if let Some(system) = conversation.first_mut().filter(|m| m.role == Role::System) {
                *system = ChatMessage::text(Role::System, format!("{}\n\n{prompt}", system.content_text()));
            }
        }
        for _ in 0..run.spec.limits.max_steps {
            let step = self.step(run, tally, &conversation, mode, stream).await?;
            if step.calls.is_empty() {
                return Ok((step.text, outputs));
            }
            conversation.push(match mode {
                Tools::Native => ChatMessage {
                    role: Role::Assistant,
                    content: (!step.text.is_empty()).then(|| MessageContent::Text(step.text.clone())),
                    name: None,
                    tool_calls: Some(protocol::assistant_calls_json(&step.calls)),
                    tool_call_id: None,
                },
                _ => ChatMessage::text(Role::Assistant, step.text.clone()),
            });
            for call in step.calls {
                let (text, output) = self.call_tool(run, tally, &call).await?;
                conversation.push(match mode {
                    Tools::Native => ChatMessage { role: Role::Tool, content: Some(MessageContent::Text(text)), name: None, tool_calls: None, tool_call_id: Some(call.id.clone()) },
                    _ => ChatMessage::text(Role::User, format!("Result of {}: {text}", call.name)),
                });
                if let Some(output) = output {
                    outputs.push((call.name.clone(), output));
                }
            }
        }
        Err(Failure::Stopped("step_limit", format!("the agent reached its limit of {} model calls without answering", run.spec.limits.max_steps)))
    }

    /// The tools a run offers, as OpenAI `tools` entries: built-in ones, then MCP ones.
    fn offered_tools(&self, run: &Run) -> Vec<Value> {
        let mut tools = self.tools.openai_tools(&run.spec.tools);
        tools.extend(run.mcp_tools.iter().map(McpTool::openai_json));
        tools
    }

    /// Whether the agent's model takes OpenAI `tools`.
    fn native_tools(&self, model: &str) -> bool {
        match self.gateway.router().registry().get(model).map(|e| &e.backend) {
            Some(agentry_llm::registry::Backend::Chat(chat)) => chat.supports_tools(),
            _ => false,
        }
    }

    /// One streamed model call; text is forwarded as tokens when `stream`,
    /// except while it may still become a prompted tool call.
    async fn step(&self, run: &Run, tally: &mut Tally, conversation: &[ChatMessage], mode: Tools, stream: bool) -> Result<Step, Failure> {
        let span = agentry_llm::trace_context::span(|| tracing::info_span!("agent step", agentry.model_calls_before = tally.model_calls));
        tracing::Instrument::instrument(self.step_unspanned(run, tally, conversation, mode, stream), span).await
    }

    async fn step_unspanned(&self, run: &Run, tally: &mut Tally, conversation: &[ChatMessage], mode: Tools, stream: bool) -> Result<Step, Failure> {
        let prompted = mode == Tools::Prompted;
        let request = ChatRequest {
            messages: conversation.to_vec(),
            temperature: run.spec.temperature,
            tools: (mode == Tools::Native).then(|| Value::Array(self.offered_tools(run))),
            max_tokens: Some(self.settings.max_output_tokens),
            ..Default::default()
        };
        tally.model_calls += 1;
        let served = self.gateway.chat_stream(&run.call, &run.spec.model, request).await.map_err(model_failure)?;
        tally.model = Some(served.routed.model.clone());
        let mut events = served.routed.value;
        let (mut text, mut parts, mut usage) = (String::new(), ToolCallParts::default(), None);
        let mut holding = prompted;
        while let Some(event) = events.next().await {
            match event.map_err(|e| model_failure(e.into()))? {
                StreamEvent::Delta { content, tool_calls } => {
                    if let Some(calls) = &tool_calls {
                        parts.add(calls);
                    }
                    let Some(piece) = content.filter(|c| !c.is_empty()) else { continue };
                    text.push_str(&piece);
                    if !stream {
                        continue;
                    }
                    if holding {
                        if protocol::may_become_call(&text) {
                            continue;
                        }
                        holding = false;
                        run.live.emit(RunEvent::Token { text: text.clone() });
                    } else {
                        run.live.emit(RunEvent::Token { text: piece });
                    }
                }
                StreamEvent::Usage(u) => usage = Some(u),
                StreamEvent::Finish(_) => {}
            }
        }
        let usage = usage.unwrap_or_else(|| Usage::new(tokens::count_prompt(&run.spec.model, conversation), tokens::count(&run.spec.model, &text)));
        tally.usage = Usage::new(tally.usage.prompt_tokens + usage.prompt_tokens, tally.usage.completion_tokens + usage.completion_tokens);
        let calls = if !parts.is_empty() {
            parts.finish(&format!("call_{}", tally.model_calls))
        } else if prompted {
            protocol::parse_prompted_call(&text, &format!("call_{}", tally.model_calls)).into_iter().collect()
        } else {
            Vec::new()
        };
        if holding && calls.is_empty() && stream && !text.is_empty() {
            run.live.emit(RunEvent::Token { text: text.clone() });
        }
        Ok(Step { text, calls })
    }

    /// Check, run, record and announce one tool call: the text for the
    /// model, and the output when the tool succeeded.
    async fn call_tool(&self, run: &Run, tally: &mut Tally, call: &RequestedCall) -> Result<(String, Option<ToolOutput>), Failure> {
        let span = || tracing::info_span!("tool", otel.name = %format!("execute_tool {}", call.name), gen_ai.operation.name = "execute_tool", gen_ai.tool.name = %call.name, gen_ai.tool.call.id = %call.id);
        agentry_llm::trace_context::in_span(span, self.call_tool_unspanned(run, tally, call)).await
    }

    async fn call_tool_unspanned(&self, run: &Run, tally: &mut Tally, call: &RequestedCall) -> Result<(String, Option<ToolOutput>), Failure> {
        tally.tool_calls += 1;
        if tally.tool_calls as u32 > run.spec.limits.max_tool_calls {
            return Err(Failure::Stopped("tool_call_limit", format!("the agent reached its limit of {} tool calls", run.spec.limits.max_tool_calls)));
        }
        let arguments = call.arguments.clone().unwrap_or_else(Value::String);
        run.live.emit(RunEvent::ToolCall { call_id: call.id.clone(), tool: call.name.clone(), arguments: arguments.clone(), status: ToolCallStatus::Running });
        let started = Instant::now();
        let outcome = self.checked_tool_call(run, call).await;
        let duration = started.elapsed();
        let (status, text, output, error) = match outcome {
            Ok(output) => (ToolCallStatus::Succeeded, output.text.clone(), Some(output), None),
            Err((status, message)) => (status, format!("error: {message}"), None, Some(message)),
        };
        let known = self.tools.get(&call.name).is_some() || run.mcp_tools.iter().any(|t| t.exposed == call.name);
        let tool_label = if known { call.name.clone() } else { "unknown".to_owned() };
        metrics::counter!("tool_calls_total", "tool_name" => tool_label.clone(), "status" => status.as_str()).increment(1);
        metrics::histogram!("tool_duration_seconds", "tool_name" => tool_label).record(duration.as_secs_f64());
        run.live.emit(RunEvent::ToolResult {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            status,
            output: output.as_ref().map(|o| o.text.clone()),
            error: error.clone(),
            duration_ms: duration.as_millis() as u64,
        });
        let row = ToolCallRow {
            run_id: run.id.clone(),
            seq: tally.tool_calls,
            tool: call.name.clone(),
            arguments: arguments.to_string(),
            status,
            result: Some(output.as_ref().map_or_else(|| error.clone().unwrap_or_default(), |o| o.text.clone())),
            duration_ms: duration.as_millis() as i64,
            created_at_ms: crate::identity::now_ms(),
        };
        self.record_tool_call(run, row).await;
        Ok((text, output))
    }

    /// Allowlist, arguments, schema, then the tool itself.
    async fn checked_tool_call(&self, run: &Run, call: &RequestedCall) -> Result<ToolOutput, (ToolCallStatus, String)> {
        if let Some(tool) = run.mcp_tools.iter().find(|t| t.exposed == call.name) {
            let arguments = call.arguments.clone().map_err(|raw| (ToolCallStatus::Rejected, format!("arguments are not a JSON object: {raw}")))?;
            let validator = jsonschema::validator_for(&tool.schema).map_err(|e| (ToolCallStatus::Failed, format!("the tool's schema is invalid: {e}")))?;
            let problems: Vec<String> = validator.iter_errors(&arguments).map(|e| e.to_string()).collect();
            if !problems.is_empty() {
                return Err((ToolCallStatus::Rejected, format!("invalid arguments: {}", problems.join("; "))));
            }
            let text = mcp::call_tool(&self.outbound, tool, arguments).await.map_err(|e| (ToolCallStatus::Failed, e))?;
            return Ok(ToolOutput { text, ..ToolOutput::default() });
        }
        if !run.spec.tools.iter().any(|t| t == &call.name) {
            return Err((ToolCallStatus::Rejected, format!("tool '{}' is not available to this agent", call.name)));
        }
        let tool = self.tools.get(&call.name).ok_or_else(|| (ToolCallStatus::Rejected, format!("unknown tool '{}'", call.name)))?;
        let arguments = call.arguments.clone().map_err(|raw| (ToolCallStatus::Rejected, format!("arguments are not a JSON object: {raw}")))?;
        self.tools.validate(&call.name, &arguments).map_err(|e| (ToolCallStatus::Rejected, e.to_string()))?;
        let ctx = ToolContext { access: &run.access, collections: &run.spec.collections };
        tool.call(&ctx, arguments).await.map_err(|e| (ToolCallStatus::Failed, e.to_string()))
    }

    /// Store the call (before the run goes on, so its record is complete
    /// when it ends) and append it to the audit log off the run's path.
    async fn record_tool_call(&self, run: &Run, row: ToolCallRow) {
        if let Err(error) = self.db.insert_tool_call(&row).await {
            tracing::warn!(%error, run = %row.run_id, "could not store a tool call");
        }
        let audit = self.audit.clone();
        let tenant = run.access.tenant_id().to_owned();
        let actor = run.access.principal().actor();
        let request_id = run.call.request_id.clone();
        tokio::spawn(async move {
            let meta = RequestMeta { request_id: Some(request_id), ..Default::default() };
            let outcome = if row.status == ToolCallStatus::Succeeded { Outcome::Success } else { Outcome::Failure };
            let event = AuditEvent {
                tenant: Some(&tenant),
                actor,
                action: AuditAction::AgentToolCall,
                resource: Some(format!("run:{}", row.run_id)),
                outcome,
                meta: &meta,
                metadata: json!({ "tool": row.tool, "status": row.status, "arguments": row.arguments, "duration_ms": row.duration_ms }),
            };
            if let Err(error) = audit.record(event).await {
                tracing::warn!(%error, "could not audit a tool call");
            }
        });
    }

    /// Math: the calculator computes; the model at most rewrites the question.
    async fn math(&self, run: &Run, tally: &mut Tally) -> Result<String, Failure> {
        let answer = match super::tools::calculator::extract(&run.question) {
            Some(expression) => {
                let call = RequestedCall { id: "call_calc".into(), name: "calculator".into(), arguments: Ok(json!({ "expression": expression })) };
                let (text, output) = self.call_tool(run, tally, &call).await?;
                match output {
                    Some(output) => math_answer(&output.data),
                    None => format!("I could not compute that: {}", text.trim_start_matches("error: ")),
                }
            }
            None => {
                let (text, outputs) = self.tool_loop(run, tally, run.conversation.clone(), false).await?;
                if outputs.iter().any(|(name, _)| name == "calculator") { text } else { MATH_UNREADABLE.to_owned() }
            }
        };
        run.live.emit(RunEvent::Token { text: answer.clone() });
        Ok(answer)
    }

    /// RAG: the answer cache, then retrieval as the asker, then an answer from the sources.
    async fn rag(&self, run: &Run, tally: &mut Tally) -> Result<String, Failure> {
        let spec = &run.spec;
        let settings = &self.settings;
        let context = json!([spec.name, spec.version, spec.instructions, spec.temperature, settings.rag_top_k, settings.rag_min_similarity, settings.judge_model]).to_string();
        let question = AnswerQuestion { question: run.question.clone(), collections: spec.collections.clone(), model: spec.model.clone(), context };
        let lookup = if run.self_contained { self.knowledge.cached_answer(&run.access, &question).await.ok() } else { None };
        let ticket = match lookup {
            Some(Lookup::Hit(cached)) => return Ok(self.replay_cached(run, tally, cached)),
            Some(Lookup::Miss(ticket)) => Some(ticket),
            None => None,
        };
        let call = RequestedCall { id: "call_search".into(), name: "knowledge_search".into(), arguments: Ok(json!({ "query": run.question, "top_k": self.settings.rag_top_k })) };
        let (text, output) = self.call_tool(run, tally, &call).await?;
        let output = output.ok_or(Failure::Stopped("knowledge_unavailable", text))?;
        let sources: Vec<SearchHit> = output.sources.into_iter().filter(|hit| hit.vector.is_some_and(|v| f64::from(v.score) >= self.settings.rag_min_similarity)).collect();
        if sources.is_empty() {
            run.live.emit(RunEvent::Token { text: RAG_UNKNOWN.to_owned() });
            return Ok(RAG_UNKNOWN.to_owned());
        }
        let mut conversation = run.conversation.clone();
        if let Some(system) = conversation.first_mut() {
            let numbered = super::tools::numbered_sources(&sources);
            *system = ChatMessage::text(Role::System, format!("{}\n\nSources:\n{numbered}", system.content_text()));
        }
        let step = self.step(run, tally, &conversation, Tools::None, true).await?;
        let assessment = quality::assess(&step.text, &sources);
        for citation in &assessment.citations {
            run.live.emit(RunEvent::Citation(citation.clone()));
        }
        tally.quality = match &self.settings.judge_model {
            Some(judge) => self.judge(run, tally, judge, &step.text, &sources).await.or(assessment.score),
            None => assessment.score,
        };
        tally.citations = assessment.citations;
        if let Some(ticket) = ticket {
            let cached = CachedAnswer {
                answer: step.text.clone(),
                citations: json!({ "citations": tally.citations, "quality": tally.quality }),
                model: run.spec.model.clone(),
                created_at_ms: crate::identity::now_ms(),
            };
            self.knowledge.remember_answer(ticket, cached);
        }
        Ok(step.text)
    }

    /// The judge model's grade (0-1) of how well `sources` support `answer`;
    /// `None` when the call fails or the reply holds no grade.
    async fn judge(&self, run: &Run, tally: &mut Tally, judge: &str, answer: &str, sources: &[SearchHit]) -> Option<f64> {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::text(
                    Role::System,
                    "You grade answers. Reply with one number between 0 and 1: the share of the answer's statements that \
                     the sources support. Reply with the number only.",
                ),
                ChatMessage::text(Role::User, format!("Sources:\n{}\n\nAnswer:\n{answer}", super::tools::numbered_sources(sources))),
            ],
            temperature: Some(0.0),
            max_tokens: Some(8),
            ..Default::default()
        };
        tally.model_calls += 1;
        let served = self.gateway.chat(&run.call, judge, request).await.ok()?;
        let usage = served.routed.value.usage;
        tally.usage = Usage::new(tally.usage.prompt_tokens + usage.prompt_tokens, tally.usage.completion_tokens + usage.completion_tokens);
        let reply = served.routed.value.content?;
        reply.split_whitespace().find_map(|w| w.trim_matches(|c: char| !c.is_ascii_digit() && c != '.').parse::<f64>().ok()).filter(|g| (0.0..=1.0).contains(g))
    }

    /// A cached RAG answer, streamed like a fresh one.
    fn replay_cached(&self, run: &Run, tally: &mut Tally, cached: CachedAnswer) -> String {
        run.live.emit(RunEvent::Token { text: cached.answer.clone() });
        let citations: Vec<Citation> = serde_json::from_value(cached.citations["citations"].clone()).unwrap_or_default();
        for citation in &citations {
            run.live.emit(RunEvent::Citation(citation.clone()));
        }
        tally.quality = cached.citations["quality"].as_f64();
        tally.citations = citations;
        tally.model = Some(cached.model);
        cached.answer
    }

    /// Final events, the run's record, the thread's messages and metrics.
    async fn record(&self, run: &Run, tally: Tally, result: Result<String, Failure>, started: Instant) {
        let kind = run.spec.kind.as_str();
        let (status, output, error) = match &result {
            Ok(output) => (RunStatus::Succeeded, Some(output.as_str()), None),
            Err(Failure::Cancelled) => (RunStatus::Cancelled, None, Some(("cancelled", "the run was cancelled".to_owned()))),
            Err(Failure::Timeout(secs)) => (RunStatus::Failed, None, Some(("timeout", format!("the run took longer than its limit of {secs} s")))),
            Err(Failure::Stopped(code, message)) => (RunStatus::Failed, None, Some((*code, message.clone()))),
        };
        let citations = serde_json::to_string(&tally.citations).unwrap_or_else(|_| "[]".into());
        let finish = RunFinish {
            status,
            output,
            error: error.as_ref().map(|(_, m)| m.as_str()),
            model: tally.model.as_deref(),
            model_calls: tally.model_calls,
            tool_calls: tally.tool_calls,
            prompt_tokens: i64::from(tally.usage.prompt_tokens),
            completion_tokens: i64::from(tally.usage.completion_tokens),
            quality_score: tally.quality,
            citations: &citations,
            finished_at_ms: crate::identity::now_ms(),
        };
        let ended_here = match self.db.finish_run(&run.id, &finish).await {
            Ok(ended) => ended,
            Err(error) => {
                tracing::warn!(%error, run = %run.id, "could not record the run's end");
                false
            }
        };
        if let (Ok(answer), Some(thread_id)) = (&result, &run.thread_id) {
            self.append_exchange(run, thread_id, answer).await;
        }
        let data = serde_json::json!({
            "run_id": run.id, "thread_id": run.thread_id, "agent": run.spec.name, "status": status.as_str(),
            "error": error.as_ref().map(|(code, message)| serde_json::json!({ "code": code, "message": message })),
            "usage": { "prompt_tokens": tally.usage.prompt_tokens, "completion_tokens": tally.usage.completion_tokens, "total_tokens": tally.usage.total_tokens },
        });
        if ended_here {
            self.published_run_end(run.access.tenant_id(), Some(crate::jobs::owner_of(&run.access)), status, data);
        }
        metrics::counter!("agent_requests_total", "agent_type" => kind, "status" => status.as_str()).increment(1);
        metrics::histogram!("agent_run_duration_seconds", "agent_type" => kind).record(started.elapsed().as_secs_f64());
        if let Some(score) = tally.quality {
            metrics::histogram!("agent_quality_score", "agent_type" => kind).record(score);
        }
        match error {
            None => {
                run.live.emit(RunEvent::Usage(tally.usage));
                run.live.emit(RunEvent::Done { run_id: run.id.clone(), agent: run.spec.name.clone(), total_tokens: tally.usage.total_tokens, quality_score: tally.quality });
            }
            Some((code, message)) => run.live.emit(RunEvent::Error { run_id: run.id.clone(), code: code.to_owned(), message }),
        }
        self.live.finish(&run.live);
    }

    /// Publish `run.completed` or `run.failed` without holding up the run's last event.
    pub(super) fn published_run_end(&self, tenant_id: &str, owner: Option<String>, status: RunStatus, data: serde_json::Value) {
        let event_type = if status == RunStatus::Succeeded { EventType::RunCompleted } else { EventType::RunFailed };
        let (events, tenant_id) = (self.events.clone(), tenant_id.to_owned());
        tokio::spawn(async move { events.publish(&tenant_id, event_type, Audience::owner(owner, agentry_types::access::AGENT_PERMISSIONS), data).await });
    }

    /// The input and the answer, appended to the thread in one transaction.
    async fn append_exchange(&self, run: &Run, thread_id: &str, answer: &str) {
        let model = &run.spec.model;
        let mut messages: Vec<NewMessage> = run
            .input
            .iter()
            .map(|m| NewMessage {
                role: "user".into(),
                content: serde_json::to_string(&m.content).unwrap_or_default(),
                run_id: Some(run.id.clone()),
                tokens: i64::from(tokens::count(model, &m.content_text())),
            })
            .collect();
        messages.push(NewMessage {
            role: "assistant".into(),
            content: serde_json::to_string(answer).unwrap_or_default(),
            run_id: Some(run.id.clone()),
            tokens: i64::from(tokens::count(model, answer)),
        });
        if let Err(error) = self.db.append_messages(thread_id, &messages, crate::identity::now_ms()).await {
            tracing::warn!(%error, run = %run.id, "could not append the exchange to the thread");
        }
    }
}

/// The math agent's answer from the calculator's evaluation.
fn math_answer(data: &Value) -> String {
    let expression = data["expression"].as_str().unwrap_or_default();
    let exact = data["exact"].as_str().unwrap_or_default();
    let approximate = data["approximate"].as_bool().unwrap_or(false);
    if expression.contains('=') {
        return format!("{expression}: {exact}");
    }
    let relation = if approximate { "≈" } else { "=" };
    match data["decimal"].as_str() {
        Some(decimal) if !approximate => format!("{expression} = {exact} ≈ {decimal}"),
        _ => format!("{expression} {relation} {exact}"),
    }
}
