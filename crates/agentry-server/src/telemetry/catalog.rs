//! The metric families `/metrics` exposes: one row each with its type,
//! labels and help text. [`describe`] hands every help line to the recorder
//! at start-up (Prometheus' `# HELP`); `docs/operations.md` carries the same
//! table for people, and a test checks the two agree and that a scrape passes
//! `promtool check metrics`.
//!
//! Owns names, help and label sets only; the code that records a family
//! lives with the work it measures. Every label here has a bounded set of
//! values (route templates, model and tool names from configuration, enum
//! strings), never an id, a user or free text.

/// A family's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn family(name: &'static str, kind: Kind, labels: &'static [&'static str], help: &'static str) -> Family {
    Family { name, kind, labels, help }
}

use Kind::{Counter, Gauge, Histogram};

/// Every family, grouped as in `docs/operations.md`.
pub const FAMILIES: &[Family] = &[
    // The server.
    family("agentry_build_info", Gauge, &["version"], "Always 1; the version of this server."),
    family("http_requests_total", Counter, &["method", "endpoint", "status"], "HTTP requests answered, by route template and status code."),
    family("http_request_duration_seconds", Histogram, &["method", "endpoint"], "Time to answer an HTTP request (to the end of the headers for streams), in seconds."),
    family("auth_rejected_credentials_total", Counter, &["kind"], "Credentials refused (bad, expired, revoked), by what was presented."),
    family("rate_limited_requests_total", Counter, &["tier", "dimension"], "Requests refused by a rate limit, by tier and limited dimension."),
    family("active_sessions", Gauge, &["tenant"], "Signed-in sessions not expired or revoked, for the 20 tenants with most (the rest summed as tenant=\"(others)\")."),
    family("coordination_degraded", Gauge, &[], "1 while Redis is unreachable and limits, budgets and caches run per replica; else 0."),
    family("database_connections", Gauge, &["state"], "Pooled database connections of this process, idle or in use (read when scraped)."),
    family("database_max_connections", Gauge, &[], "The most pooled database connections this process opens (database_max_connections)."),
    family("coordination_fallbacks_total", Counter, &[], "Coordination operations answered locally because Redis failed or was slow."),
    family(
        "cache_requests_total",
        Counter,
        &["cache", "result"],
        "Cache lookups by cache (response: exact gateway answers; answer: semantic knowledge answers) and result (hit, miss).",
    ),
    family("semantic_cache_invalidations_total", Counter, &[], "Knowledge answer cache generations retired by document changes."),
    // Models.
    family("model_requests_total", Counter, &["model", "provider", "status"], "Calls to a model provider, by public model name, provider and outcome."),
    family("model_request_duration_seconds", Histogram, &["model", "provider"], "Time of one model provider call, in seconds."),
    family("token_usage_total", Counter, &["model", "type"], "Tokens metered, by model and type (input, output)."),
    family("api_cost_dollars", Gauge, &["model", "agent_type"], "Cost metered since the process started, in US dollars (only increases; use increase())."),
    family("circuit_breaker_state", Gauge, &["upstream"], "Circuit breaker of an upstream: 0 closed, 1 open, 2 half-open."),
    family("model_call_log_dropped_total", Counter, &[], "Usage records lost because the call log could not be written."),
    // Usage.
    family("budget_remaining_dollars", Gauge, &["scope", "period"], "Budget left in the current period, in US dollars, as of the last settlement."),
    family(
        "budget_alerts_total",
        Counter,
        &["scope", "level"],
        "Budget alerts raised, by budget scope and level (soft_limit: the soft limit was crossed; limit: the budget is spent).",
    ),
    // Agents and tools.
    family("agent_requests_total", Counter, &["agent_type", "status"], "Agent runs ended, by agent type and final status."),
    family("agent_run_duration_seconds", Histogram, &["agent_type"], "Duration of an agent run, in seconds."),
    family("agent_quality_score", Histogram, &["agent_type"], "Support score of an answer (0 to 1: share of its claims supported by cited passages)."),
    family("tool_calls_total", Counter, &["tool_name", "status"], "Tool calls made by agents, by tool and outcome."),
    family("tool_duration_seconds", Histogram, &["tool_name"], "Duration of one tool call, in seconds."),
    // Knowledge.
    family("documents_ingested_total", Counter, &["status"], "Document versions ingested, by outcome (succeeded, failed, excluded)."),
    family("documents_summarized_total", Counter, &["status"], "Document version summaries written, by outcome (succeeded, failed)."),
    family("chunks_embedded_total", Counter, &[], "Chunks embedded by the embedding model."),
    family("chunks_reused_total", Counter, &[], "Chunks whose embedding was reused from an identical chunk."),
    family("knowledge_quality_total", Counter, &["check"], "Document versions checked for quality, by the check that excluded them (or passed)."),
    family("knowledge_url_fetches_total", Counter, &["outcome"], "Documents fetched by URL, by outcome."),
    family("connector_pages_total", Counter, &["outcome"], "Pages handled by connectors, by outcome (stored, unchanged, skipped, failed)."),
    // The job queue and events.
    family("job_queue_depth", Gauge, &["kind", "status"], "Jobs waiting or running, by job kind and status."),
    family("jobs_oldest_queued_age_seconds", Gauge, &["kind"], "Age of the oldest job waiting to run, by kind, in seconds."),
    family("jobs_created_total", Counter, &["kind"], "Jobs enqueued, by kind."),
    family("jobs_finished_total", Counter, &["kind", "status"], "Jobs ended, by kind and final status."),
    family("job_attempts_total", Counter, &["kind"], "Job attempts started, by kind."),
    family("job_duration_seconds", Histogram, &["kind"], "Duration of one job attempt, in seconds."),
    family("bulk_items_total", Counter, &["type"], "Items of native batches turned into runs or uploads, by type."),
    family("events_published_total", Counter, &["type"], "Events appended to the event log, by type."),
    family("events_publish_failures_total", Counter, &["type"], "Events that could not be appended, by type."),
    family("webhook_deliveries_total", Counter, &["outcome"], "Webhook delivery attempts, by outcome (delivered, failed)."),
    family("webhook_delivery_seconds", Histogram, &[], "Duration of one webhook delivery attempt, in seconds."),
    // Audit.
    family("audit_write_failures_total", Counter, &[], "Audit events that could not be written."),
    family("audit_chains_broken", Gauge, &[], "Audit chains whose last verification found a break (0 when all hold)."),
    family("audit_chain_verified_timestamp_seconds", Gauge, &[], "When this process last finished verifying every audit chain, in Unix seconds."),
];

/// Give the recorder every family's help text, and start the counters
/// without labels at zero (so `increase()` sees their first event).
pub fn describe() {
    for family in FAMILIES {
        match family.kind {
            Kind::Counter => {
                metrics::describe_counter!(family.name, family.help);
                if family.labels.is_empty() {
                    metrics::counter!(family.name).increment(0);
                }
            }
            Kind::Gauge => metrics::describe_gauge!(family.name, family.help),
            Kind::Histogram => metrics::describe_histogram!(family.name, family.help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FAMILIES;

    /// Every family recorded anywhere in the workspace (`counter!("name"`,
    /// `gauge!(…)`, `histogram!(…)` with a literal name) is in the catalogue,
    /// so a new metric cannot ship without help text.
    #[test]
    fn every_recorded_family_is_catalogued() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut recorded = std::collections::BTreeSet::new();
        let mut sources = Vec::new();
        let mut stack = vec![crates];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() && !path.ends_with("tests") {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("catalog.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    recorded.extend(literal_names(&text));
                    sources.push(text);
                }
            }
        }
        assert!(recorded.len() > 30, "found {recorded:?}");
        let missing: Vec<_> = recorded.iter().filter(|name| !FAMILIES.iter().any(|f| f.name == name.as_str())).collect();
        assert!(missing.is_empty(), "recorded but not in the catalogue: {missing:?}");
        // And the other way: each catalogued family is named by the code that records it
        // (a literal name, or a string the code picks the name from).
        let named = |name: &str| recorded.contains(name) || sources.iter().any(|text| text.contains(&format!("\"{name}\"")));
        let unrecorded: Vec<_> = FAMILIES.iter().filter(|f| f.name != "agentry_build_info" && !named(f.name)).map(|f| f.name).collect();
        assert!(unrecorded.is_empty(), "catalogued but recorded nowhere: {unrecorded:?}");
    }

    /// The literal first arguments of the metric macros in `text`.
    fn literal_names(text: &str) -> Vec<String> {
        ["counter!(", "gauge!(", "histogram!("]
            .iter()
            .flat_map(|macro_call| text.match_indices(macro_call).map(move |(at, _)| &text[at + macro_call.len()..]))
            .filter_map(|rest| rest.trim_start().strip_prefix('"'))
            .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_owned()))
            .filter(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect()
    }
}
