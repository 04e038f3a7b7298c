//! The intent router for `agent: "auto"`: a fast pre-classifier (images →
//! vision; a calculation the calculator can read → math; code markers →
//! code; knowledge phrasing → rag; otherwise general), then, when it is
//! unsure, a probe of the asker's knowledge (a close passage → rag) and an
//! optional classification by a configured model. Only agents the asker
//! may use are chosen. The decision and its confidence go on the run.
//!
//! Must not: run the chosen agent.

use agentry_llm::ChatRequest;
use agentry_types::{ChatMessage, Role};

use super::Agents;
use super::definitions::AgentKind;
use super::tools::calculator;
use crate::gateway::CallContext;
use crate::identity::TenantAccess;
use crate::knowledge::{SearchMode, SearchRequest};

/// How an agent was chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Route {
    pub kind: AgentKind,
    /// `explicit`, `keywords`, `knowledge` or `model`.
    pub routed_by: &'static str,
    pub confidence: f64,
}

/// Below this the keyword decision is checked further.
const SURE: f64 = 0.7;

const CODE_WORDS: &[&str] = &[
    "python",
    "rust",
    "javascript",
    "typescript",
    "java",
    "golang",
    "c++",
    "c#",
    "sql",
    "bash",
    "function",
    "compile",
    "compiler",
    "stack trace",
    "traceback",
    "exception",
    "refactor",
    "code",
    "regex",
    "script",
    "class",
    "method",
    "debug",
    "bug",
    "snippet",
    "unit test",
    "api endpoint",
    "html",
    "css",
    "json schema",
    "algorithm",
];
const RAG_WORDS: &[&str] = &[
    "according to",
    "our policy",
    "the policy",
    "documentation",
    "the docs",
    "knowledge base",
    "the document",
    "handbook",
    "in our",
    "our company",
    "internal",
    "the manual",
    "the report",
    "the contract",
    "uploaded",
];
const MATH_WORDS: &[&str] = &["solve", "equation", "calculate", "compute", "how much is", "sum of", "product of", "square root", "fraction"];

fn contains_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = text[i + word.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

/// The keyword pre-classifier.
pub fn classify(text: &str, has_image: bool) -> (AgentKind, f64) {
    if has_image {
        return (AgentKind::Vision, 0.99);
    }
    if calculator::extract(text).is_some() {
        return (AgentKind::Math, 0.95);
    }
    let lower = text.to_lowercase();
    if lower.contains("```") {
        return (AgentKind::Code, 0.95);
    }
    let code = CODE_WORDS.iter().filter(|w| contains_word(&lower, w)).count();
    if code >= 2 {
        return (AgentKind::Code, 0.85);
    }
    if RAG_WORDS.iter().any(|w| contains_word(&lower, w)) {
        return (AgentKind::Rag, 0.75);
    }
    if code == 1 {
        return (AgentKind::Code, 0.7);
    }
    if MATH_WORDS.iter().any(|w| contains_word(&lower, w)) {
        return (AgentKind::Math, 0.6);
    }
    (AgentKind::General, 0.5)
}

impl Agents {
    /// Choose an agent for `text` among those `access` may use.
    pub(super) async fn route(&self, access: &TenantAccess, call: &CallContext, text: &str, has_image: bool) -> Route {
        let allowed = |kind: AgentKind| access.can(kind.permission());
        let (kind, confidence) = classify(text, has_image);
        let mut route = Route { kind, routed_by: "keywords", confidence };
        if route.confidence < SURE
            && allowed(AgentKind::Rag)
            && let Some(similarity) = self.knowledge_probe(access, text).await
            && similarity >= self.settings.rag_min_similarity
        {
            route = Route { kind: AgentKind::Rag, routed_by: "knowledge", confidence: similarity.min(0.99) };
        }
        if route.confidence < SURE
            && let Some(model) = &self.settings.router_model
            && let Some(kind) = self.classify_with_model(call, model, text).await
        {
            route = Route { kind, routed_by: "model", confidence: 0.8 };
        }
        if !allowed(route.kind) {
            route = Route { kind: AgentKind::General, routed_by: route.routed_by, confidence: 0.5 };
        }
        route
    }

    /// The closest passage's cosine similarity in the asker's knowledge, if any.
    async fn knowledge_probe(&self, access: &TenantAccess, text: &str) -> Option<f64> {
        let request = SearchRequest {
            query: text.to_owned(),
            mode: SearchMode::Vector,
            top_k: Some(1),
            collections: Vec::new(),
            document_ids: None,
            metadata: Default::default(),
            fusion: None,
            group_by_document: false,
            version: None,
        };
        let found = self.knowledge.search(access, request).await.ok()?;
        found.results.first().and_then(|hit| hit.vector).map(|v| f64::from(v.score))
    }

    async fn classify_with_model(&self, call: &CallContext, model: &str, text: &str) -> Option<AgentKind> {
        let request = ChatRequest {
            messages: vec![
                ChatMessage::text(
                    Role::System,
                    "Classify the user's request for one agent: general (conversation, writing), rag (questions about the \
                     organisation's documents), math (calculations, equations), code (programming), vision (images). \
                     Reply with the agent's name only.",
                ),
                ChatMessage::text(Role::User, text),
            ],
            temperature: Some(0.0),
            max_tokens: Some(4),
            ..Default::default()
        };
        let answer = self.gateway.chat(call, model, request).await.ok()?.routed.value.content?;
        let word = answer.trim().trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
        AgentKind::built_in(&word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pre_classifier_routes_each_kind() {
        assert_eq!(classify("What is 3/4 + 1/6?", false).0, AgentKind::Math);
        assert_eq!(classify("Solve 2x + 3 = 11", false).0, AgentKind::Math);
        assert_eq!(classify("Write a Python function that reverses a string", false).0, AgentKind::Code);
        assert_eq!(classify("Why does this fail?\n```rust\nfn main() {}\n```", false).0, AgentKind::Code);
        assert_eq!(classify("What does our policy say about refunds?", false).0, AgentKind::Rag);
        assert_eq!(classify("What is in this picture?", true).0, AgentKind::Vision);
        assert_eq!(classify("Tell me a joke about cats", false), (AgentKind::General, 0.5));
    }
}
