//! A thread's memory in a model's window: the agent's instructions and the
//! thread's pinned facts always, then the running summary of older turns,
//! then as many recent messages as fit, then the new input. When the
//! recent messages no longer fit, the oldest are folded into the summary by
//! the model (and the summary is stored, so the work is done once); if
//! that call fails, the oldest turns are left out of this run's context
//! instead, and the thread itself is never changed.
//!
//! Must not: decide who may read a thread (the service checks ownership).

use agentry_db::agents::{MessageRow, ThreadRow};
use agentry_llm::{ChatRequest, tokens};
use agentry_types::{ChatMessage, MessageContent, Role};

use super::Agents;
use crate::gateway::CallContext;

/// Tokens kept free for the answer, at most.
const ANSWER_RESERVE: u32 = 1024;
/// Window assumed for models whose registry entry names none.
const DEFAULT_WINDOW: u32 = 8192;
/// After a summarisation, recent messages take at most this share of the budget,
/// so the next turns do not summarise again at once.
const REFILL_SHARE: f64 = 0.6;

/// A stored message as a chat message.
pub fn to_chat(row: &MessageRow) -> ChatMessage {
    let role = match row.role.as_str() {
        "assistant" => Role::Assistant,
        "system" => Role::System,
        _ => Role::User,
    };
    let content = serde_json::from_str::<MessageContent>(&row.content).unwrap_or_else(|_| MessageContent::Text(row.content.clone()));
    ChatMessage { role, content: Some(content), name: None, tool_calls: None, tool_call_id: None }
}

/// The system message: instructions, pinned facts, summary.
fn system_message(instructions: &str, pinned: &[String], summary: &str, extra: &str) -> ChatMessage {
    let mut text = instructions.to_owned();
    if !pinned.is_empty() {
        text.push_str("\n\nFacts to keep in mind:\n");
        for fact in pinned {
            text.push_str("- ");
            text.push_str(fact);
            text.push('\n');
        }
    }
    if !summary.is_empty() {
        text.push_str("\n\nSummary of the earlier conversation:\n");
        text.push_str(summary);
    }
    if !extra.is_empty() {
        text.push_str("\n\n");
        text.push_str(extra);
    }
    ChatMessage::text(Role::System, text)
}

/// What a run's context is built from.
pub struct ContextInput<'a> {
    pub model: &'a str,
    pub instructions: &'a str,
    /// Added to the system message (tool protocol, sources).
    pub extra_system: &'a str,
    pub thread: Option<&'a ThreadRow>,
    /// The thread's messages after its summary, oldest first.
    pub history: Vec<MessageRow>,
    pub input: &'a [ChatMessage],
}

impl Agents {
    /// The messages a run sends: system, recent history that fits, input.
    pub(super) async fn context(&self, call: &CallContext, input: ContextInput<'_>) -> Vec<ChatMessage> {
        let window = self.gateway.router().registry().get(input.model).and_then(|e| e.context_window).unwrap_or(DEFAULT_WINDOW);
        let pinned: Vec<String> = input.thread.and_then(|t| serde_json::from_str(&t.pinned).ok()).unwrap_or_default();
        let mut summary = input.thread.map(|t| t.summary.clone()).unwrap_or_default();
        let fixed =
            tokens::count_prompt(input.model, input.input) + tokens::count(input.model, &system_message(input.instructions, &pinned, &summary, input.extra_system).content_text());
        let budget = window.saturating_sub(ANSWER_RESERVE.min(window / 4)).saturating_sub(fixed) as i64;
        let mut history = input.history;
        let total: i64 = history.iter().map(|m| m.tokens).sum();
        if total > budget {
            let keep_budget = (budget as f64 * REFILL_SHARE) as i64;
            let mut kept_tokens = 0;
            let split = history.iter().rposition(|m| {
                kept_tokens += m.tokens;
                kept_tokens > keep_budget
            });
            let split = split.map_or(0, |i| i + 1);
            let older: Vec<MessageRow> = history.drain(..split).collect();
            if let (Some(thread), Some(last)) = (input.thread, older.last()) {
                match self.summarise(call, input.model, &summary, &older).await {
                    Some(new_summary) => {
                        if let Err(error) = self.db.set_thread_summary(&thread.id, &new_summary, last.seq).await {
                            tracing::warn!(%error, thread = %thread.id, "could not store the thread summary");
                        }
                        summary = new_summary;
                    }
                    None => tracing::warn!(thread = %thread.id, "summarisation failed; older turns left out of this run"),
                }
            }
        }
        let mut messages = vec![system_message(input.instructions, &pinned, &summary, input.extra_system)];
        messages.extend(history.iter().map(to_chat));
        messages.extend_from_slice(input.input);
        messages
    }

    /// Fold `older` turns into `summary` with the model; `None` when the call failed.
    async fn summarise(&self, call: &CallContext, model: &str, summary: &str, older: &[MessageRow]) -> Option<String> {
        let mut transcript = String::new();
        if !summary.is_empty() {
            transcript.push_str(&format!("Summary so far:\n{summary}\n\n"));
        }
        for message in older {
            transcript.push_str(&format!("{}: {}\n", message.role, to_chat(message).content_text()));
        }
        let request = ChatRequest {
            messages: vec![
                ChatMessage::text(Role::System, "Summarise the conversation below in a few sentences. Keep names, numbers, decisions and open questions."),
                ChatMessage::text(Role::User, transcript),
            ],
            temperature: Some(0.0),
            max_tokens: Some(300),
            ..Default::default()
        };
        let served = self.gateway.chat(call, model, request).await.ok()?;
        served.routed.value.content.filter(|c| !c.trim().is_empty())
    }
}
