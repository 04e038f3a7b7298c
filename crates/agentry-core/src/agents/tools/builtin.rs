//! The built-in tools. Each parses its (already schema-checked) arguments,
//! calls one service and shapes the answer as text for the model plus
//! structured data for clients.
//!
//! Must not: bypass the asker's access (knowledge search runs as the
//! asker) or the outbound guard (http_fetch only goes through `Outbound`).

use agentry_search::parse::{Format, Limits, Parser, sniff};
use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolError, ToolOutput, calculator};
use crate::knowledge::{Knowledge, KnowledgeSettings, SearchMode, SearchRequest};
use crate::outbound::Outbound;

fn string_arg<'a>(arguments: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    arguments.get(name).and_then(Value::as_str).ok_or_else(|| ToolError::Invalid(format!("'{name}' must be a string")))
}

/// Exact arithmetic and one-variable equations.
pub struct Calculator;

#[async_trait]
impl Tool for Calculator {
    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Exact calculator: arithmetic on integers of any size, fractions and decimals, powers, roots (sqrt, cbrt, root(x, n)), \
         factorial, percent, gcd/lcm, and linear or quadratic equations in one variable (e.g. '2x + 3 = 11')."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": { "expression": { "type": "string", "minLength": 1, "maxLength": 1000, "description": "One expression or equation." } },
            "required": ["expression"],
            "additionalProperties": false,
        })
    }

    async fn call(&self, _ctx: &ToolContext<'_>, arguments: Value) -> Result<ToolOutput, ToolError> {
        let expression = string_arg(&arguments, "expression")?;
        let evaluation = calculator::evaluate(expression).map_err(|e| ToolError::Failed(e.to_string()))?;
        let text = match &evaluation.decimal {
            Some(decimal) => format!("{} = {} ({decimal})", evaluation.expression, evaluation.exact),
            None => format!("{} = {}", evaluation.expression, evaluation.exact),
        };
        Ok(ToolOutput { text, data: serde_json::to_value(&evaluation).unwrap_or_default(), sources: Vec::new() })
    }
}

/// Hybrid search over the knowledge the asker may read.
pub struct KnowledgeSearch {
    pub knowledge: Knowledge,
}

#[async_trait]
impl Tool for KnowledgeSearch {
    fn name(&self) -> &str {
        "knowledge_search"
    }

    fn description(&self) -> &str {
        "Search the knowledge base (hybrid keyword + semantic). Returns numbered passages with their documents."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "minLength": 1, "maxLength": 4000 },
                "top_k": { "type": "integer", "minimum": 1, "maximum": 20 },
            },
            "required": ["query"],
            "additionalProperties": false,
        })
    }

    async fn call(&self, ctx: &ToolContext<'_>, arguments: Value) -> Result<ToolOutput, ToolError> {
        let query = string_arg(&arguments, "query")?;
        let top_k = arguments.get("top_k").and_then(Value::as_u64).map_or(5, |k| k as usize);
        let request = SearchRequest {
            query: query.to_owned(),
            mode: SearchMode::Hybrid,
            top_k: Some(top_k),
            collections: ctx.collections.to_vec(),
            document_ids: None,
            metadata: Default::default(),
            fusion: None,
            group_by_document: false,
            version: None,
        };
        let found = self.knowledge.search(ctx.access, request).await.map_err(|e| ToolError::Failed(e.to_string()))?;
        let text = if found.results.is_empty() { "No passages found.".to_owned() } else { numbered_sources(&found.results) };
        let data = json!({ "results": found.results.iter().map(|h| json!({
            "chunk_id": h.chunk_id, "document_id": h.document_id, "title": h.title, "version": h.version, "score": h.score,
        })).collect::<Vec<_>>() });
        Ok(ToolOutput { text, data, sources: found.results })
    }
}

/// Passages as the model sees them: `[n] title › heading path (page p)` then the text.
pub fn numbered_sources(hits: &[crate::knowledge::SearchHit]) -> String {
    hits.iter()
        .enumerate()
        .map(|(i, hit)| {
            let mut head = format!("[{}] {}", i + 1, hit.title);
            for heading in &hit.heading_path {
                head.push_str(" › ");
                head.push_str(heading);
            }
            if let Some(page) = hit.page {
                head.push_str(&format!(" (page {page})"));
            }
            format!("{head}\n{}", hit.text)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Most characters of a fetched page handed to the model.
const MAX_FETCH_CHARS: usize = 20_000;

/// A web page or text resource, fetched through the SSRF guard and read
/// the way uploads are (same parser, same limits).
pub struct HttpFetch {
    outbound: Outbound,
    parser: Parser,
    limits: Limits,
}

impl HttpFetch {
    pub fn new(outbound: Outbound, knowledge: &KnowledgeSettings) -> Self {
        Self { outbound, parser: knowledge.parser.clone(), limits: knowledge.parse_limits }
    }
}

#[async_trait]
impl Tool for HttpFetch {
    fn name(&self) -> &str {
        "http_fetch"
    }

    fn description(&self) -> &str {
        "Fetch a public http(s) URL and return its text (HTML is reduced to text). Private and local addresses are refused."
    }

    fn parameters(&self) -> Value {
        json!({
            "type": "object",
            "properties": { "url": { "type": "string", "minLength": 1, "maxLength": 2048 } },
            "required": ["url"],
            "additionalProperties": false,
        })
    }

    async fn call(&self, _ctx: &ToolContext<'_>, arguments: Value) -> Result<ToolOutput, ToolError> {
        let url = string_arg(&arguments, "url")?;
        let fetched = self.outbound.fetch(url).await.map_err(|e| ToolError::Failed(e.to_string()))?;
        let format = sniff(&fetched.bytes, None, fetched.content_type.as_deref()).map_err(|e| ToolError::Failed(e.to_string()))?;
        let text = match format {
            Format::Text | Format::Json | Format::Csv | Format::Markdown => String::from_utf8_lossy(&fetched.bytes).into_owned(),
            other => {
                let parsed = self.parser.parse(fetched.bytes, other, self.limits).await.map_err(|e| ToolError::Failed(e.to_string()))?;
                parsed.sections.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join("\n\n")
            }
        };
        let truncated = text.chars().count() > MAX_FETCH_CHARS;
        let text: String = text.chars().take(MAX_FETCH_CHARS).collect();
        let data = json!({ "url": fetched.final_url, "status": fetched.status, "content_type": fetched.content_type, "truncated": truncated });
        Ok(ToolOutput { text, data, sources: Vec::new() })
    }
}

/// The current date and time in UTC.
pub struct CurrentTime;

#[async_trait]
impl Tool for CurrentTime {
    fn name(&self) -> &str {
        "current_time"
    }

    fn description(&self) -> &str {
        "The current date and time (UTC, RFC 3339) and the Unix time in seconds."
    }

    fn parameters(&self) -> Value {
        json!({ "type": "object", "properties": {}, "additionalProperties": false })
    }

    async fn call(&self, _ctx: &ToolContext<'_>, _arguments: Value) -> Result<ToolOutput, ToolError> {
        let now = chrono::Utc::now();
        let utc = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Ok(ToolOutput { text: format!("The current time is {utc} (UTC)."), data: json!({ "utc": utc, "unix": now.timestamp() }), sources: Vec::new() })
    }
}
