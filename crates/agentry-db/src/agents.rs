//! Rows of the agent runtime: custom agent definitions with their versions,
//! threads with their numbered messages and running summary, runs, and the
//! tool calls each run made.
//!
//! A thread's messages get consecutive `seq` numbers assigned inside the
//! write transaction that appends them, so two runs on one thread never
//! interleave or reuse a number. A run's final state is written once: only
//! a run still `pending` or `running` can be finished.
//!
//! Must not: decide who may see a thread or run, or interpret definitions
//! (agentry-core does).

use agentry_types::{RunStatus, ToolCallStatus};

use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentRow {
    pub tenant_id: String,
    pub name: String,
    pub latest_version: i32,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The latest version's definition (JSON).
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AgentVersionRow {
    pub version: i32,
    /// JSON.
    pub definition: String,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ThreadRow {
    pub id: String,
    pub tenant_id: String,
    /// The principal that created it (`user:<id>` or `key:<id>`).
    pub owner: String,
    pub title: String,
    /// JSON object.
    pub metadata: String,
    /// JSON array of facts kept in every context.
    pub pinned: String,
    pub summary: String,
    /// The last message seq the summary covers (0: none).
    pub summarized_through: i64,
    pub message_count: i64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MessageRow {
    pub seq: i64,
    pub role: String,
    /// JSON: a string or content parts.
    pub content: String,
    pub run_id: Option<String>,
    pub tokens: i64,
    pub created_at_ms: i64,
}

/// A message to append to a thread.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: String,
    pub content: String,
    pub run_id: Option<String>,
    pub tokens: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub tenant_id: String,
    pub owner: String,
    pub thread_id: Option<String>,
    pub agent: String,
    pub agent_version: Option<i32>,
    pub agent_type: String,
    #[sqlx(try_from = "String")]
    pub status: RunStatus,
    /// `explicit`, `keywords` or `model`.
    pub routed_by: String,
    pub route_confidence: f64,
    /// JSON: the input messages of the run.
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub model: Option<String>,
    pub model_calls: i32,
    pub tool_calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub quality_score: Option<f64>,
    /// JSON array.
    pub citations: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// The final state of a run.
#[derive(Debug, Clone)]
pub struct RunFinish<'a> {
    pub status: RunStatus,
    pub output: Option<&'a str>,
    pub error: Option<&'a str>,
    pub model: Option<&'a str>,
    pub model_calls: i32,
    pub tool_calls: i32,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub quality_score: Option<f64>,
    pub citations: &'a str,
    pub finished_at_ms: i64,
}

impl<'a> RunFinish<'a> {
    /// The end of a run that never ran (its job was cancelled, failed or died): no output, nothing counted.
    pub fn unrun(status: RunStatus, error: &'a str, finished_at_ms: i64) -> Self {
        Self {
            status,
            output: None,
            error: Some(error),
            model: None,
            model_calls: 0,
            tool_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            quality_score: None,
            citations: "[]",
            finished_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ToolCallRow {
    pub run_id: String,
    pub seq: i32,
    pub tool: String,
    /// JSON.
    pub arguments: String,
    #[sqlx(try_from = "String")]
    pub status: ToolCallStatus,
    pub result: Option<String>,
    pub duration_ms: i64,
    pub created_at_ms: i64,
}

/// An external MCP server registered by a tenant.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct McpServerRow {
    pub tenant_id: String,
    pub name: String,
    pub url: String,
    /// JSON object of header name → value (credentials), sealed by
    /// agentry-core (`enc:v1:…`).
    pub headers: String,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

macro_rules! thread_columns {
    () => {
        "id, tenant_id, owner, title, metadata, pinned, summary, summarized_through, message_count, created_at_ms, updated_at_ms"
    };
}

macro_rules! run_columns {
    () => {
        "id, tenant_id, owner, thread_id, agent, agent_version, agent_type, status, routed_by, route_confidence, input, output, error, \
         model, model_calls, tool_calls, prompt_tokens, completion_tokens, quality_score, citations, created_at_ms, started_at_ms, finished_at_ms"
    };
}

const AGENT_SELECT: &str = "SELECT a.tenant_id, a.name, a.latest_version, a.created_by, a.created_at_ms, a.updated_at_ms, v.definition \
                            FROM agents a JOIN agent_versions v ON v.tenant_id = a.tenant_id AND v.name = a.name AND v.version = a.latest_version";

impl Db {
    /// A new custom agent with its first version; `Conflict` when the name is taken.
    pub async fn insert_agent(&self, tenant_id: &str, name: &str, definition: &str, created_by: Option<&str>, now_ms: i64) -> Result<(), DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("INSERT INTO agents (tenant_id, name, latest_version, created_by, created_at_ms, updated_at_ms) VALUES ($1, $2, 1, $3, $4, $4)")
                .bind(tenant_id).bind(name).bind(created_by).bind(now_ms).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO agent_versions (tenant_id, name, version, definition, created_by, created_at_ms) VALUES ($1, $2, 1, $3, $4, $5)")
                .bind(tenant_id).bind(name).bind(definition).bind(created_by).bind(now_ms).execute(&mut *tx).await?;
            tx.commit().await
        }.await)
        .map_err(DbError::write("insert agent"))
    }

    /// A new version of an agent; its number, or `None` when there is no such agent.
    pub async fn add_agent_version(&self, tenant_id: &str, name: &str, definition: &str, created_by: Option<&str>, now_ms: i64) -> Result<Option<i32>, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let version: Option<i32> = sqlx::query_scalar(
                "UPDATE agents SET latest_version = latest_version + 1, updated_at_ms = $1 WHERE tenant_id = $2 AND name = $3 RETURNING latest_version")
                .bind(now_ms).bind(tenant_id).bind(name).fetch_optional(&mut *tx).await?;
            if let Some(version) = version {
                sqlx::query("INSERT INTO agent_versions (tenant_id, name, version, definition, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
                    .bind(tenant_id).bind(name).bind(version).bind(definition).bind(created_by).bind(now_ms).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(version)
        }.await)
        .map_err(DbError::write("add agent version"))
    }

    pub async fn agent(&self, tenant_id: &str, name: &str) -> Result<Option<AgentRow>, DbError> {
        let sql = format!("{AGENT_SELECT} WHERE a.tenant_id = $1 AND a.name = $2");
        on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant_id).bind(name).fetch_optional(pool).await).map_err(DbError::query("get agent"))
    }

    /// The tenant's custom agents by name, the first `limit` after `after`
    /// (`""`: from the start).
    pub async fn agents_of_tenant(&self, tenant_id: &str, after: &str, limit: i64) -> Result<Vec<AgentRow>, DbError> {
        let sql = format!("{AGENT_SELECT} WHERE a.tenant_id = $1 AND a.name > $2 ORDER BY a.name LIMIT $3");
        on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(tenant_id).bind(after).bind(limit).fetch_all(pool).await).map_err(DbError::query("list agents"))
    }

    pub async fn agent_versions(&self, tenant_id: &str, name: &str) -> Result<Vec<AgentVersionRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT version, definition, created_by, created_at_ms FROM agent_versions WHERE tenant_id = $1 AND name = $2 ORDER BY version")
            .bind(tenant_id).bind(name).fetch_all(pool).await)
        .map_err(DbError::query("list agent versions"))
    }

    /// Delete an agent and its versions; whether it existed.
    pub async fn delete_agent(&self, tenant_id: &str, name: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("DELETE FROM agent_versions WHERE tenant_id = $1 AND name = $2").bind(tenant_id).bind(name).execute(&mut *tx).await?;
            let deleted = sqlx::query("DELETE FROM agents WHERE tenant_id = $1 AND name = $2").bind(tenant_id).bind(name).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(deleted.rows_affected() > 0)
        }.await)
        .map_err(DbError::query("delete agent"))
    }

    pub async fn insert_thread(&self, t: &ThreadRow) -> Result<(), DbError> {
        const SQL: &str = concat!("INSERT INTO threads (", thread_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&t.id).bind(&t.tenant_id).bind(&t.owner).bind(&t.title).bind(&t.metadata).bind(&t.pinned).bind(&t.summary)
            .bind(t.summarized_through).bind(t.message_count).bind(t.created_at_ms).bind(t.updated_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert thread"))
    }

    pub async fn thread(&self, tenant_id: &str, id: &str) -> Result<Option<ThreadRow>, DbError> {
        const SQL: &str = concat!("SELECT ", thread_columns!(), " FROM threads WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get thread"))
    }

    /// An owner's threads, most recently active first, after the thread
    /// with `after`'s (updated_at_ms, id); `query` matches the title or any
    /// message's text (case-insensitive substring).
    pub async fn threads_of_owner(&self, tenant_id: &str, owner: &str, query: Option<&str>, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<ThreadRow>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            thread_columns!(),
            " FROM threads t WHERE tenant_id = $1 AND owner = $2 AND ($3 = '' OR LOWER(title) LIKE $3 \
             OR EXISTS (SELECT 1 FROM thread_messages m WHERE m.thread_id = t.id AND LOWER(m.content) LIKE $3)) \
             AND updated_at_ms <= $4 AND ($5 = '' OR updated_at_ms < $4 OR id < $5) \
             ORDER BY updated_at_ms DESC, id DESC LIMIT $6"
        );
        let pattern = query.map(|q| format!("%{}%", escape_like(&q.to_lowercase()))).unwrap_or_default();
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(owner).bind(&pattern).bind(at).bind(id).bind(limit).fetch_all(pool).await)
            .map_err(DbError::query("list threads"))
    }

    /// Change a thread's title, metadata and pinned facts; whether it exists.
    pub async fn update_thread(&self, tenant_id: &str, id: &str, title: &str, metadata: &str, pinned: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE threads SET title = $1, metadata = $2, pinned = $3, updated_at_ms = $4 WHERE tenant_id = $5 AND id = $6")
            .bind(title).bind(metadata).bind(pinned).bind(now_ms).bind(tenant_id).bind(id).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::query("update thread"))
    }

    pub async fn delete_thread(&self, tenant_id: &str, id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM threads WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id).bind(id).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::query("delete thread"))
    }

    /// Append messages to a thread in one transaction; the seq of the last one.
    pub async fn append_messages(&self, thread_id: &str, messages: &[NewMessage], now_ms: i64) -> Result<i64, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            let count: i64 = sqlx::query_scalar("UPDATE threads SET message_count = message_count + $1, updated_at_ms = $2 WHERE id = $3 RETURNING message_count")
                .bind(messages.len() as i64).bind(now_ms).bind(thread_id).fetch_one(&mut *tx).await?;
            let first = count - messages.len() as i64 + 1;
            for (seq, m) in (first..).zip(messages) {
                sqlx::query("INSERT INTO thread_messages (thread_id, seq, role, content, run_id, tokens, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)")
                    .bind(thread_id).bind(seq).bind(&m.role).bind(&m.content).bind(&m.run_id).bind(m.tokens).bind(now_ms)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(count)
        }.await)
        .map_err(DbError::query("append messages"))
    }

    /// A thread's messages after `after_seq`, in order.
    pub async fn messages(&self, thread_id: &str, after_seq: i64) -> Result<Vec<MessageRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT seq, role, content, run_id, tokens, created_at_ms FROM thread_messages WHERE thread_id = $1 AND seq > $2 ORDER BY seq")
            .bind(thread_id).bind(after_seq).fetch_all(pool).await)
        .map_err(DbError::query("list messages"))
    }

    /// Replace the running summary, covering messages up to `through`.
    pub async fn set_thread_summary(&self, thread_id: &str, summary: &str, through: i64) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE threads SET summary = $1, summarized_through = $2 WHERE id = $3 AND summarized_through < $2")
            .bind(summary).bind(through).bind(thread_id).execute(pool).await.map(drop))
        .map_err(DbError::query("set thread summary"))
    }

    pub async fn insert_run(&self, r: &RunRow) -> Result<(), DbError> {
        const SQL: &str =
            concat!("INSERT INTO runs (", run_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)");
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&r.id).bind(&r.tenant_id).bind(&r.owner).bind(&r.thread_id).bind(&r.agent).bind(r.agent_version).bind(&r.agent_type)
            .bind(r.status.as_str()).bind(&r.routed_by).bind(r.route_confidence).bind(&r.input).bind(&r.output).bind(&r.error).bind(&r.model)
            .bind(r.model_calls).bind(r.tool_calls).bind(r.prompt_tokens).bind(r.completion_tokens).bind(r.quality_score)
            .bind(&r.citations).bind(r.created_at_ms).bind(r.started_at_ms).bind(r.finished_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert run"))
    }

    /// Write a run's final state; false when it had already finished.
    pub async fn finish_run(&self, id: &str, f: &RunFinish<'_>) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = $1, output = $2, error = $3, model = $4, model_calls = $5, tool_calls = $6, prompt_tokens = $7, \
             completion_tokens = $8, quality_score = $9, citations = $10, finished_at_ms = $11 WHERE id = $12 AND status IN ('pending', 'running')")
            .bind(f.status.as_str()).bind(f.output).bind(f.error).bind(f.model).bind(f.model_calls).bind(f.tool_calls).bind(f.prompt_tokens)
            .bind(f.completion_tokens).bind(f.quality_score).bind(f.citations).bind(f.finished_at_ms).bind(id)
            .execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::query("finish run"))
    }

    /// Start (or start again, after its worker died) a queued run: running
    /// from now, with the tool calls and tallies of an earlier attempt
    /// removed; false when it has ended.
    pub async fn restart_run(&self, id: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("DELETE FROM run_tool_calls WHERE run_id = $1").bind(id).execute(&mut *tx).await?;
            let started = sqlx::query(
                "UPDATE runs SET status = 'running', started_at_ms = $1, output = NULL, error = NULL, model = NULL, model_calls = 0, tool_calls = 0, \
                 prompt_tokens = 0, completion_tokens = 0, quality_score = NULL, citations = '[]' WHERE id = $2 AND status IN ('pending', 'running')")
                .bind(now_ms).bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(started == 1)
        }.await)
        .map_err(DbError::query("restart run"))
    }

    /// Delete a run that never started (a duplicate of an idempotent request).
    pub async fn delete_run(&self, id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM runs WHERE id = $1 AND status = 'pending'").bind(id).execute(pool).await.map(drop)).map_err(DbError::query("delete run"))
    }

    /// Make an ended queued run pending again (its job was retried by hand).
    pub async fn requeue_run(&self, id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = 'pending', error = NULL, output = NULL, started_at_ms = NULL, finished_at_ms = NULL WHERE id = $1 AND status IN ('failed', 'cancelled')")
            .bind(id).execute(pool).await.map(drop))
        .map_err(DbError::query("requeue run"))
    }

    pub async fn run(&self, tenant_id: &str, id: &str) -> Result<Option<RunRow>, DbError> {
        const SQL: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get run"))
    }

    /// An owner's runs, newest first, optionally of one thread, after the
    /// run with `after`'s (created_at_ms, id).
    pub async fn runs_of_owner(&self, tenant_id: &str, owner: &str, thread_id: Option<&str>, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<RunRow>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE tenant_id = $1 AND owner = $2 AND ($3 = '' OR thread_id = $3) \
             AND created_at_ms <= $4 AND ($5 = '' OR created_at_ms < $4 OR id < $5) ORDER BY created_at_ms DESC, id DESC LIMIT $6"
        );
        let (at, id) = after.unwrap_or((i64::MAX, ""));
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(owner).bind(thread_id.unwrap_or_default()).bind(at).bind(id).bind(limit).fetch_all(pool).await)
            .map_err(DbError::query("list runs"))
    }

    /// Fail runs a previous process left unfinished (it stopped or died
    /// under them), except those a job still holds (background runs, which
    /// their job runs again); how many.
    pub async fn fail_interrupted_runs(&self, now_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE runs SET status = 'failed', error = 'interrupted: the server stopped during the run', finished_at_ms = $1 \
             WHERE status IN ('pending', 'running') \
             AND id NOT IN (SELECT subject_id FROM jobs WHERE kind = 'agent_run' AND status IN ('queued', 'running'))")
            .bind(now_ms).execute(pool).await.map(|r| r.rows_affected()))
        .map_err(DbError::query("fail interrupted runs"))
    }

    pub async fn insert_tool_call(&self, c: &ToolCallRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO run_tool_calls (run_id, seq, tool, arguments, status, result, duration_ms, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&c.run_id).bind(c.seq).bind(&c.tool).bind(&c.arguments).bind(c.status.as_str()).bind(&c.result).bind(c.duration_ms).bind(c.created_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert tool call"))
    }

    pub async fn tool_calls_of_run(&self, run_id: &str) -> Result<Vec<ToolCallRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT run_id, seq, tool, arguments, status, result, duration_ms, created_at_ms FROM run_tool_calls WHERE run_id = $1 ORDER BY seq")
            .bind(run_id).fetch_all(pool).await)
        .map_err(DbError::query("list tool calls"))
    }
}

/// The search text without LIKE's wildcards (`%`, `_`) and escape (`\`):
/// the engines differ on escaping, and a substring search loses little by
/// ignoring them.
fn escape_like(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, '%' | '_' | '\\')).collect()
}

impl Db {
    /// Register an MCP server; `Conflict` when the name is taken.
    pub async fn insert_mcp_server(&self, r: &McpServerRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO mcp_servers (tenant_id, name, url, headers, created_by, created_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&r.tenant_id).bind(&r.name).bind(&r.url).bind(&r.headers).bind(&r.created_by).bind(r.created_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert mcp server"))
    }

    pub async fn mcp_servers_of_tenant(&self, tenant_id: &str) -> Result<Vec<McpServerRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT tenant_id, name, url, headers, created_by, created_at_ms FROM mcp_servers WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id).fetch_all(pool).await)
        .map_err(DbError::query("list mcp servers"))
    }

    pub async fn mcp_server(&self, tenant_id: &str, name: &str) -> Result<Option<McpServerRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT tenant_id, name, url, headers, created_by, created_at_ms FROM mcp_servers WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id).bind(name).fetch_optional(pool).await)
        .map_err(DbError::query("get mcp server"))
    }

    pub async fn delete_mcp_server(&self, tenant_id: &str, name: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM mcp_servers WHERE tenant_id = $1 AND name = $2")
            .bind(tenant_id).bind(name).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::query("delete mcp server"))
    }
}
