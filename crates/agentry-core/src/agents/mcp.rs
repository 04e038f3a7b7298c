//! External MCP servers: a tenant registers them (name, Streamable HTTP
//! URL, headers such as credentials), and agents list their tools as
//! `mcp:<server>` (every tool) or `mcp:<server>/<tool>`. When a run starts,
//! the named servers' tools are discovered and offered to the model as
//! `<server>__<tool>`; calls go through the same allowlist, JSON Schema
//! check, limits, records and audit as built-in tools. Every request goes
//! through the agents' guarded outbound client (private and loopback
//! addresses refused unless allowlisted, size and time limits).
//!
//! The client is hand-written: it needs `initialize`, `tools/list` and
//! `tools/call` over JSON-RPC, with answers as JSON or as an SSE stream;
//! each discovery or call opens its own short session.
//!
//! Headers are stored sealed (`crate::secrets`, bound to the tenant and
//! server name) and opened only to list their names or to make requests.
//!
//! Must not: keep credentials anywhere but the database row (the API never
//! returns them), or store them unsealed.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentry_db::DbError;
use agentry_db::agents::McpServerRow;
use agentry_types::Permission;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Agents, Error};
use crate::identity::TenantAccess;
use crate::outbound::Outbound;
use crate::secrets::{Place, Sealer};

const PROTOCOL_VERSION: &str = "2025-06-18";
/// Most tool pages read from one server.
const MAX_PAGES: usize = 10;

/// A server to register.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerInput {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// An `http:` or `https:` URL the outbound address guard allows.
    #[schema(pattern = "^https?://")]
    pub url: String,
    /// Sent with every request (e.g. `Authorization`); never shown again.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A registered server as the API shows it (header names only).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct McpServerView {
    pub name: String,
    pub url: String,
    pub header_names: Vec<String>,
    pub created_at_ms: i64,
}

/// A tool of an external server, as offered to a run.
#[derive(Clone)]
pub struct McpTool {
    /// The name the model sees: `<server>__<tool>`.
    pub exposed: String,
    pub remote: String,
    pub description: String,
    pub schema: Value,
    server: Arc<McpServerRow>,
}

/// Never shows the server's (opened) headers.
impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool").field("exposed", &self.exposed).field("remote", &self.remote).field("server", &self.server.name).finish_non_exhaustive()
    }
}

impl McpTool {
    pub fn openai_json(&self) -> Value {
        json!({ "type": "function", "function": { "name": self.exposed, "description": self.description, "parameters": self.schema } })
    }
}

/// A row whose `headers` hold the opened JSON object instead of the sealed value (in memory only).
fn opened(sealer: &Sealer, mut row: McpServerRow) -> Result<McpServerRow, Error> {
    row.headers = sealer.open_string(&Place::mcp_headers(&row.tenant_id, &row.name), &row.headers).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(row)
}

/// The API's view of an opened row (header names only).
fn view(row: &McpServerRow) -> McpServerView {
    let headers: BTreeMap<String, String> = serde_json::from_str(&row.headers).unwrap_or_default();
    McpServerView { name: row.name.clone(), url: row.url.clone(), header_names: headers.into_keys().collect(), created_at_ms: row.created_at_ms }
}

/// A `tools` entry naming MCP tools: (server, tool or every tool).
pub fn parse_entry(entry: &str) -> Option<(&str, Option<&str>)> {
    let rest = entry.strip_prefix("mcp:")?;
    let (server, tool) = match rest.split_once('/') {
        Some((server, tool)) => (server, Some(tool)),
        None => (rest, None),
    };
    let valid = |s: &str| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    (valid(server) && tool.is_none_or(valid)).then_some((server, tool))
}

fn exposed_name(server: &str, tool: &str) -> String {
    let name: String = format!("{server}__{tool}").chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    name.chars().take(64).collect()
}

/// One short MCP session over Streamable HTTP.
struct Session<'a> {
    outbound: &'a Outbound,
    server: &'a McpServerRow,
    headers: Vec<(String, String)>,
    next_id: u64,
}

impl<'a> Session<'a> {
    async fn open(outbound: &'a Outbound, server: &'a McpServerRow) -> Result<Self, String> {
        let configured: BTreeMap<String, String> = serde_json::from_str(&server.headers).unwrap_or_default();
        let mut headers: Vec<(String, String)> = configured.into_iter().collect();
        headers.push(("accept".into(), "application/json, text/event-stream".into()));
        let mut session = Self { outbound, server, headers, next_id: 1 };
        let init = json!({ "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": { "name": "agentry", "version": env!("CARGO_PKG_VERSION") } });
        let (result, answer_headers) = session.request("initialize", init).await?;
        let version = result["protocolVersion"].as_str().unwrap_or(PROTOCOL_VERSION).to_owned();
        if let Some(id) = answer_headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) {
            session.headers.push(("mcp-session-id".into(), id.to_owned()));
        }
        session.headers.push(("mcp-protocol-version".into(), version));
        let notification = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        // The answer to a notification carries nothing; a failure shows on the next request.
        let _ = session.outbound.post_json(&session.server.url, &session.headers, &notification).await;
        Ok(session)
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<(Value, reqwest::header::HeaderMap), String> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let server = &self.server.name;
        let posted = self.outbound.post_json(&self.server.url, &self.headers, &body).await.map_err(|e| format!("MCP server '{server}': {e}"))?;
        let event_stream = posted.headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/event-stream"));
        let text = String::from_utf8_lossy(&posted.bytes);
        let messages: Vec<Value> = if event_stream { sse_messages(&text) } else { serde_json::from_str(&text).into_iter().collect() };
        let answer = messages.into_iter().find(|m| m["id"] == json!(id)).ok_or_else(|| format!("MCP server '{server}' sent no answer to {method}"))?;
        if let Some(error) = answer.get("error") {
            return Err(format!("MCP server '{server}': {} ({})", error["message"].as_str().unwrap_or("error"), error["code"]));
        }
        Ok((answer["result"].clone(), posted.headers))
    }
}

/// The JSON messages of an SSE body (`data:` lines joined per event).
fn sse_messages(text: &str) -> Vec<Value> {
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    normalised
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data:")).map(|d| d.strip_prefix(' ').unwrap_or(d)).collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")).ok()).flatten()
        })
        .collect()
}

/// The tools a server offers: (name, description, input schema).
async fn list_tools(outbound: &Outbound, server: &McpServerRow) -> Result<Vec<(String, String, Value)>, String> {
    let mut session = Session::open(outbound, server).await?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = cursor.as_ref().map_or_else(|| json!({}), |c| json!({ "cursor": c }));
        let (result, _) = session.request("tools/list", params).await?;
        for tool in result["tools"].as_array().into_iter().flatten() {
            let Some(name) = tool["name"].as_str() else { continue };
            let schema = tool.get("inputSchema").cloned().unwrap_or_else(|| json!({ "type": "object" }));
            tools.push((name.to_owned(), tool["description"].as_str().unwrap_or_default().to_owned(), schema));
        }
        cursor = result["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    Ok(tools)
}

/// Call a tool; its text, or the text of a tool error.
pub(super) async fn call_tool(outbound: &Outbound, tool: &McpTool, arguments: Value) -> Result<String, String> {
    let mut session = Session::open(outbound, &tool.server).await?;
    let (result, _) = session.request("tools/call", json!({ "name": tool.remote, "arguments": arguments })).await?;
    let text: Vec<String> = result["content"].as_array().into_iter().flatten().map(|block| block["text"].as_str().map_or_else(|| block.to_string(), str::to_owned)).collect();
    let text = text.join("\n");
    if result["isError"].as_bool().unwrap_or(false) { Err(text) } else { Ok(text) }
}

impl Agents {
    pub async fn register_mcp_server(&self, access: &TenantAccess, input: McpServerInput) -> Result<McpServerView, Error> {
        access.require(Permission::ManageAgents)?;
        if parse_entry(&format!("mcp:{}", input.name)).is_none() {
            return Err(Error::Invalid { message: "'name' must be 1-64 characters of a-z, A-Z, 0-9, '-', '_' and '.'".into(), param: Some("name".into()) });
        }
        self.outbound.check(&input.url).map_err(|e| Error::Invalid { message: format!("'url': {e}"), param: Some("url".into()) })?;
        let headers = serde_json::to_string(&input.headers).unwrap_or_else(|_| "{}".into());
        let sealed = self.sealer.seal(&Place::mcp_headers(access.tenant_id(), &input.name), headers.as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
        let row = McpServerRow {
            tenant_id: access.tenant_id().to_owned(),
            name: input.name.clone(),
            url: input.url,
            headers: sealed,
            created_by: access.principal().user_id().map(str::to_owned),
            created_at_ms: crate::identity::now_ms(),
        };
        match self.db.insert_mcp_server(&row).await {
            Err(DbError::Conflict { .. }) => Err(Error::Conflict(format!("an MCP server named '{}' already exists", input.name))),
            other => other.map(|()| view(&McpServerRow { headers, ..row })).map_err(Into::into),
        }
    }

    pub async fn mcp_servers(&self, access: &TenantAccess) -> Result<Vec<McpServerView>, Error> {
        self.db.mcp_servers_of_tenant(access.tenant_id()).await?.into_iter().map(|row| opened(&self.sealer, row).map(|row| view(&row))).collect()
    }

    pub async fn delete_mcp_server(&self, access: &TenantAccess, name: &str) -> Result<(), Error> {
        access.require(Permission::ManageAgents)?;
        if self.db.delete_mcp_server(access.tenant_id(), name).await? { Ok(()) } else { Err(Error::NotFound(format!("MCP server '{name}'"))) }
    }

    /// Discover a registered server's tools now.
    pub async fn mcp_server_tools(&self, access: &TenantAccess, name: &str) -> Result<Vec<Value>, Error> {
        let row = self.db.mcp_server(access.tenant_id(), name).await?.ok_or_else(|| Error::NotFound(format!("MCP server '{name}'")))?;
        let row = opened(&self.sealer, row)?;
        let tools = list_tools(&self.outbound, &row).await.map_err(Error::ToolUnavailable)?;
        Ok(tools.into_iter().map(|(name, description, schema)| json!({ "name": name, "description": description, "inputSchema": schema })).collect())
    }

    /// The MCP tools an agent's `tools` entries name, discovered from their servers.
    pub(super) async fn resolve_mcp_tools(&self, tenant_id: &str, entries: &[String]) -> Result<Vec<McpTool>, Error> {
        let mut wanted: BTreeMap<&str, Option<Vec<&str>>> = BTreeMap::new();
        for (server, tool) in entries.iter().filter_map(|e| parse_entry(e)) {
            match (wanted.entry(server).or_insert_with(|| Some(Vec::new())), tool) {
                (Some(tools), Some(tool)) => tools.push(tool),
                (slot, None) => *slot = None,
                (None, Some(_)) => {}
            }
        }
        let mut resolved = Vec::new();
        for (server, only) in wanted {
            let row =
                self.db.mcp_server(tenant_id, server).await?.ok_or_else(|| Error::ToolUnavailable(format!("the agent names MCP server '{server}', which is not registered")))?;
            let row = Arc::new(opened(&self.sealer, row)?);
            let tools = list_tools(&self.outbound, &row).await.map_err(Error::ToolUnavailable)?;
            for (remote, description, schema) in tools {
                if only.as_ref().is_some_and(|names| !names.contains(&remote.as_str())) {
                    continue;
                }
                resolved.push(McpTool { exposed: exposed_name(server, &remote), remote, description, schema, server: Arc::clone(&row) });
            }
        }
        Ok(resolved)
    }

    /// Check a definition's MCP entries name registered servers.
    pub(super) async fn check_mcp_entries(&self, tenant_id: &str, entries: &[String]) -> Result<(), Error> {
        for (server, _) in entries.iter().filter_map(|e| parse_entry(e)) {
            if self.db.mcp_server(tenant_id, server).await?.is_none() {
                return Err(Error::Invalid { message: format!("MCP server '{server}' is not registered"), param: Some("tools".into()) });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_exposed_names() {
        assert_eq!(parse_entry("mcp:files"), Some(("files", None)));
        assert_eq!(parse_entry("mcp:files/read_file"), Some(("files", Some("read_file"))));
        assert_eq!(parse_entry("mcp:"), None);
        assert_eq!(parse_entry("mcp:a b"), None);
        assert_eq!(parse_entry("calculator"), None);
        assert_eq!(exposed_name("files", "read.file"), "files__read_file");
    }

    #[test]
    fn sse_answers_are_read_whatever_the_line_endings() {
        let body = ": ping\r\n\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\r\ndata: \"result\":{}}\r\n\r\n";
        assert_eq!(sse_messages(body), vec![json!({ "jsonrpc": "2.0", "id": 1, "result": {} })]);
    }
}
