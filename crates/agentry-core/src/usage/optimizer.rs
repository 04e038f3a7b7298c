//! The cost optimizer and the response-cache key.
//!
//! The optimizer sorts a prompt into simple, medium or complex by cheap
//! signals (length, code, words that ask for analysis or design, number of
//! turns) and routes it to that class's model with its output cap. It runs
//! for the model name `auto`, and for a named model only when the class's
//! model is cheaper (it never upgrades a request). Hand-written: the rules
//! are a few lines and must stay explainable to whoever pays the bill.
//!
//! Must not: call models or read prices itself (the caller passes them).

use agentry_llm::ChatRequest;
use agentry_types::Role;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The name that asks the optimizer to choose.
pub const AUTO_MODEL: &str = "auto";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    Simple,
    Medium,
    Complex,
}

/// Where one complexity class goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptimizerRoute {
    pub model: String,
    pub max_tokens: u32,
}

/// The class → route mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    pub simple: OptimizerRoute,
    pub medium: OptimizerRoute,
    pub complex: OptimizerRoute,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        let route = |model: &str, max_tokens| OptimizerRoute { model: model.to_owned(), max_tokens };
        Self { simple: route("gpt-4o-mini", 500), medium: route("gpt-4o", 1000), complex: route("gpt-4o", 2000) }
    }
}

impl OptimizerConfig {
    pub fn route(&self, class: Complexity) -> &OptimizerRoute {
        match class {
            Complexity::Simple => &self.simple,
            Complexity::Medium => &self.medium,
            Complexity::Complex => &self.complex,
        }
    }
}

const DEMANDING: &[&str] = &[
    "analy",
    "explain why",
    "step by step",
    "step-by-step",
    "compare",
    "design",
    "architect",
    "prove",
    "derive",
    "optimi",
    "implement",
    "refactor",
    "debug",
    "trade-off",
    "tradeoff",
    "evaluate",
    "in detail",
    "comprehensive",
];

/// Sort a request's prompt into a complexity class.
pub fn classify(request: &ChatRequest) -> Complexity {
    let text: String = request.messages.iter().filter(|m| m.role != Role::Assistant).map(|m| m.content_text()).collect::<Vec<_>>().join("\n");
    let lower = text.to_lowercase();
    let chars = text.chars().count();
    let demanding = DEMANDING.iter().filter(|w| lower.contains(*w)).count();
    let code = text.contains("```");
    let turns = request.messages.iter().filter(|m| m.role == Role::User).count();
    if chars > 2000 || demanding >= 2 || (code && chars > 500) {
        Complexity::Complex
    } else if chars <= 300 && demanding == 0 && !code && turns <= 2 {
        Complexity::Simple
    } else {
        Complexity::Medium
    }
}

/// The exact-match response-cache key: tenant, model and every field that
/// shapes the answer (not the end-user id).
pub fn cache_key(tenant_id: &str, model: &str, request: &ChatRequest) -> String {
    let shape =
        (&request.messages, request.temperature, request.top_p, request.max_tokens, &request.stop, request.seed, &request.tools, &request.tool_choice, &request.response_format);
    let mut hasher = Sha256::new();
    hasher.update(tenant_id.as_bytes());
    hasher.update([0]);
    hasher.update(model.as_bytes());
    hasher.update([0]);
    hasher.update(serde_json::to_vec(&shape).unwrap_or_default());
    format!("agentry:rc:{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentry_types::ChatMessage;

    fn ask(text: &str) -> ChatRequest {
        ChatRequest { messages: vec![ChatMessage::text(Role::User, text)], ..ChatRequest::default() }
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&ask("What is the capital of France?")), Complexity::Simple);
        assert_eq!(classify(&ask("Summarise the following paragraph for a newsletter: ".repeat(8).as_str())), Complexity::Medium);
        assert_eq!(classify(&ask("Design a sharded queue and analyze the failure modes step by step.")), Complexity::Complex);
        assert_eq!(classify(&ask(&"word ".repeat(500))), Complexity::Complex);
    }

    #[test]
    fn cache_key_ignores_the_end_user_but_not_the_prompt() {
        let mut a = ask("hi");
        let b = ask("hi");
        a.user = Some("someone".into());
        assert_eq!(cache_key("t", "m", &a), cache_key("t", "m", &b));
        assert_ne!(cache_key("t", "m", &a), cache_key("t2", "m", &b));
        assert_ne!(cache_key("t", "m", &ask("hi")), cache_key("t", "m", &ask("hello")));
    }
}
