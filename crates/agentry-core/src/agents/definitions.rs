//! What an agent is: the five built-in agents and custom agents defined
//! through the API, the permission each needs, and the limits a run of it
//! obeys. A definition is parsed and checked here ([`AgentDefinition::parse`])
//! so the run loop never sees an invalid one.
//!
//! Must not: run anything or touch storage.

use agentry_types::Permission;
use serde::{Deserialize, Serialize};

use super::Error;

/// The behaviour an agent's runs follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentKind {
    /// Chat with the model.
    General,
    /// Answers from the tenant's knowledge with numbered citations.
    Rag,
    /// Exact results computed by the calculator tool.
    Math,
    /// Writes, explains and reviews code (never executes it).
    Code,
    /// Accepts images; needs a vision-capable model.
    Vision,
    /// Defined through the API: instructions, model, tools, collections.
    Custom,
}

impl AgentKind {
    pub const BUILT_IN: [AgentKind; 5] = [Self::General, Self::Rag, Self::Math, Self::Code, Self::Vision];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "general",
            Self::Rag => "rag",
            Self::Math => "math",
            Self::Code => "code",
            Self::Vision => "vision",
            Self::Custom => "custom",
        }
    }

    /// The built-in agent of this name.
    pub fn built_in(name: &str) -> Option<Self> {
        Self::BUILT_IN.into_iter().find(|k| k.as_str() == name)
    }

    /// The permission a principal needs to run an agent of this kind.
    /// Custom agents are chat agents with the owner's configuration.
    pub fn permission(self) -> Permission {
        match self {
            Self::General | Self::Custom => Permission::UseGeneralAgent,
            Self::Rag => Permission::UseRagAgent,
            Self::Math => Permission::UseMathAgent,
            Self::Code => Permission::UseCodeAgent,
            Self::Vision => Permission::UseVisionAgent,
        }
    }

    fn description(self) -> &'static str {
        match self {
            Self::General => "General conversation and writing.",
            Self::Rag => "Answers from your knowledge base with numbered citations; says so when it does not know.",
            Self::Math => "Exact arithmetic, fractions, powers, roots and simple equations, computed by a calculator.",
            Self::Code => "Writes, explains and reviews code. Never executes it.",
            Self::Vision => "Understands images sent as content parts (needs a vision-capable model).",
            Self::Custom => "A custom agent.",
        }
    }

    fn instructions(self) -> &'static str {
        match self {
            Self::General | Self::Custom => "You are a helpful assistant. Answer clearly and concisely.",
            Self::Rag => {
                "Answer the question using only the numbered sources below. Cite the sources you use with their numbers in \
                 square brackets, like [1]. If the sources do not contain the answer, say that you do not know."
            }
            Self::Math => {
                "You solve math questions. Never compute in your head: call the calculator tool with one expression or \
                 equation and report its result exactly."
            }
            Self::Code => {
                "You are an expert programmer. Write, explain and review code with short explanations. Put code in fenced \
                 blocks with the language named. You cannot run code."
            }
            Self::Vision => "You describe and answer questions about the images the user sends.",
        }
    }
}

/// Limits of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunLimits {
    /// Model calls per run.
    pub max_steps: u32,
    /// Tool calls per run.
    pub max_tool_calls: u32,
    /// Wall-clock limit of the whole run.
    pub timeout_secs: f64,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { max_steps: 6, max_tool_calls: 8, timeout_secs: 120.0 }
    }
}

/// A custom agent's definition as stored (one version) and accepted by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentDefinition {
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub description: String,
    #[schema(min_length = 1, max_length = 20000, pattern = r"\S")]
    pub instructions: String,
    /// Public model name; the platform default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, pattern = r"\S")]
    pub model: Option<String>,
    /// Tool names from the registry the agent may call, and `mcp:<server>`
    /// or `mcp:<server>/<tool>` for tools of registered MCP servers.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Collection ids `knowledge_search` is limited to (empty: all the asker may read).
    #[serde(default)]
    pub collections: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 2)]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 50)]
    pub max_steps: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 100)]
    pub max_tool_calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0, maximum = 3600)]
    pub timeout_secs: Option<f64>,
}

const MAX_INSTRUCTIONS_CHARS: usize = 20_000;

impl AgentDefinition {
    /// Check a definition against the tool names that exist.
    pub fn parse(self, known_tools: &[&str]) -> Result<Self, Error> {
        let invalid = |message: String, param: &'static str| Error::invalid(message, param);
        if self.instructions.trim().is_empty() || self.instructions.chars().count() > MAX_INSTRUCTIONS_CHARS {
            return Err(invalid(format!("'instructions' must be 1 to {MAX_INSTRUCTIONS_CHARS} characters"), "instructions"));
        }
        if self.description.chars().count() > 1000 {
            return Err(invalid("'description' takes up to 1000 characters".into(), "description"));
        }
        if let Some(model) = &self.model
            && model.trim().is_empty()
        {
            return Err(invalid("'model' must not be empty".into(), "model"));
        }
        for tool in &self.tools {
            if !known_tools.contains(&tool.as_str()) && super::mcp::parse_entry(tool).is_none() {
                let known = known_tools.join(", ");
                return Err(invalid(format!("unknown tool '{tool}'; known: {known}, or mcp:<server>[/<tool>]"), "tools"));
            }
        }
        if self.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(invalid("'temperature' must be between 0 and 2".into(), "temperature"));
        }
        if self.max_steps.is_some_and(|s| !(1..=50).contains(&s)) {
            return Err(invalid("'max_steps' must be between 1 and 50".into(), "max_steps"));
        }
        if self.max_tool_calls.is_some_and(|s| s > 100) {
            return Err(invalid("'max_tool_calls' must be at most 100".into(), "max_tool_calls"));
        }
        if self.timeout_secs.is_some_and(|s| !(s > 0.0 && s <= 3600.0)) {
            return Err(invalid("'timeout_secs' must be greater than 0 and at most 3600".into(), "timeout_secs"));
        }
        Ok(self)
    }
}

/// A name of a custom agent: 1-64 of `[a-z0-9_-]`, starting with a letter,
/// not a built-in name and not `auto`.
pub fn parse_agent_name(name: &str) -> Result<&str, Error> {
    let valid = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(Error::Invalid { message: "'name' must be 1-64 characters of a-z, 0-9, '-' and '_', starting with a letter".into(), param: Some("name".into()) });
    }
    if name == "auto" || AgentKind::built_in(name).is_some() {
        return Err(Error::Invalid { message: format!("'{name}' is the name of a built-in agent"), param: Some("name".into()) });
    }
    Ok(name)
}

/// An agent ready to run: a built-in one, or a custom definition at a version.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentSpec {
    pub name: String,
    pub kind: AgentKind,
    /// `None` for built-in agents.
    pub version: Option<i32>,
    pub description: String,
    pub instructions: String,
    pub model: String,
    pub tools: Vec<String>,
    pub collections: Vec<String>,
    pub temperature: Option<f32>,
    pub limits: RunLimits,
}

impl AgentSpec {
    /// A built-in agent on the platform's models.
    pub fn built_in(kind: AgentKind, model: &str, limits: RunLimits) -> Self {
        let tools: &[&str] = match kind {
            AgentKind::Math => &["calculator"],
            AgentKind::Rag => &["knowledge_search"],
            _ => &[],
        };
        Self {
            name: kind.as_str().to_owned(),
            kind,
            version: None,
            description: kind.description().to_owned(),
            instructions: kind.instructions().to_owned(),
            model: model.to_owned(),
            tools: tools.iter().map(|t| (*t).to_owned()).collect(),
            collections: Vec::new(),
            temperature: None,
            limits,
        }
    }

    /// A custom agent's definition at `version`.
    pub fn custom(name: &str, version: i32, definition: AgentDefinition, default_model: &str, defaults: RunLimits) -> Self {
        Self {
            name: name.to_owned(),
            kind: AgentKind::Custom,
            version: Some(version),
            description: definition.description,
            instructions: definition.instructions,
            model: definition.model.unwrap_or_else(|| default_model.to_owned()),
            tools: definition.tools,
            collections: definition.collections,
            temperature: definition.temperature,
            limits: RunLimits {
                max_steps: definition.max_steps.unwrap_or(defaults.max_steps),
                max_tool_calls: definition.max_tool_calls.unwrap_or(defaults.max_tool_calls),
                timeout_secs: definition.timeout_secs.unwrap_or(defaults.timeout_secs),
            },
        }
    }
}
