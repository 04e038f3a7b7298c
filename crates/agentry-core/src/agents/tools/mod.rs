//! The tool registry: every tool an agent may call, with a JSON Schema for
//! its arguments that is checked before the tool runs (a model's malformed
//! call is rejected with the schema's complaint, which goes back to the
//! model, and never reaches the tool).
//!
//! Built-ins: `calculator` (exact), `knowledge_search` (the asker's
//! readable knowledge only), `http_fetch` (through the guarded outbound
//! client) and `current_time`.
//!
//! Must not: decide which agent may call which tool (the run loop checks
//! the agent's allowlist) or record calls (the run loop does).

mod builtin;
pub mod calculator;

pub use builtin::numbered_sources;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::identity::TenantAccess;
use crate::knowledge::{Knowledge, SearchHit};
use crate::outbound::Outbound;

/// Who calls a tool, and within what scope.
pub struct ToolContext<'a> {
    pub access: &'a TenantAccess,
    /// The agent's collections (`knowledge_search` scope); empty: all readable.
    pub collections: &'a [String],
}

/// What a tool returns: text for the model, structured data for clients,
/// and the knowledge chunks it found (citable sources).
#[derive(Debug, Clone, Default)]
pub struct ToolOutput {
    pub text: String,
    pub data: Value,
    pub sources: Vec<SearchHit>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool's schema or meaning.
    #[error("invalid arguments: {0}")]
    Invalid(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// One callable tool.
#[async_trait]
pub trait Tool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// JSON Schema of the arguments object.
    fn parameters(&self) -> Value;
    async fn call(&self, ctx: &ToolContext<'_>, arguments: Value) -> Result<ToolOutput, ToolError>;
}

struct Registered {
    tool: Arc<dyn Tool>,
    validator: jsonschema::Validator,
}

/// Tools by name, each with its compiled argument schema. Built once at
/// startup; cheap to clone.
#[derive(Clone)]
pub struct ToolRegistry {
    tools: Arc<BTreeMap<String, Registered>>,
}

impl ToolRegistry {
    /// The built-in tools.
    pub fn built_in(knowledge: Knowledge, outbound: Outbound) -> Result<Self, ToolError> {
        let tools: Vec<Arc<dyn Tool>> = vec![
            Arc::new(builtin::Calculator),
            Arc::new(builtin::HttpFetch::new(outbound, knowledge.settings())),
            Arc::new(builtin::KnowledgeSearch { knowledge }),
            Arc::new(builtin::CurrentTime),
        ];
        Self::new(tools)
    }

    pub fn new(tools: Vec<Arc<dyn Tool>>) -> Result<Self, ToolError> {
        let mut map = BTreeMap::new();
        for tool in tools {
            let validator = jsonschema::validator_for(&tool.parameters()).map_err(|e| ToolError::Failed(format!("tool '{}' has an invalid schema: {e}", tool.name())))?;
            map.insert(tool.name().to_owned(), Registered { tool, validator });
        }
        Ok(Self { tools: Arc::new(map) })
    }

    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|r| &r.tool)
    }

    /// Check arguments against the tool's schema; every violation, named by where it is.
    pub fn validate(&self, name: &str, arguments: &Value) -> Result<(), ToolError> {
        let registered = self.tools.get(name).ok_or_else(|| ToolError::Invalid(format!("unknown tool '{name}'")))?;
        let problems: Vec<String> = registered
            .validator
            .iter_errors(arguments)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() { e.to_string() } else { format!("{at}: {e}") }
            })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(ToolError::Invalid(problems.join("; "))) }
    }

    /// OpenAI `tools` entries for the named tools.
    pub fn openai_tools(&self, names: &[String]) -> Vec<Value> {
        names
            .iter()
            .filter_map(|name| self.get(name))
            .map(|tool| {
                serde_json::json!({
                    "type": "function",
                    "function": { "name": tool.name(), "description": tool.description(), "parameters": tool.parameters() },
                })
            })
            .collect()
    }
}
