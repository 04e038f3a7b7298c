//! Personal data in storage: where a person's data lives ([`PERSONAL_COLUMNS`],
//! the one map of every column that names a user), reading it out for an
//! export, erasing it, the per-tenant retention settings and the deletes
//! that enforce them, and the record of backups.
//!
//! The map drives both the export and the erasure, and a storage test holds
//! it to the schema: every column whose name says it refers to a person
//! ([`PERSON_COLUMN_NAMES`]) must be in the map, so a table added later
//! cannot be forgotten by either.
//!
//! The statements are built from the map (table and column names are
//! constants of this module; values are always bound).
//!
//! Must not: decide who may export or erase, touch the search index, or
//! write audit events (agentry-core's privacy and audit services do).

use sqlx::Row;

use crate::{Backend, Db, DbError, begin_write, on_pool};

/// What a personal column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refers {
    /// The user's id.
    UserId,
    /// `user:<id>`: the owner of an object.
    Owner,
    /// The user's e-mail address (compared without case).
    Email,
    /// Free text (JSON) that may quote the id or the address.
    Mentions,
}

/// Which rows of a table belong to a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Within {
    /// The table's own `tenant_id`.
    Tenant,
    /// A condition on a parent row, with `{t}` where the tenant id goes.
    Parent(&'static str),
    /// The tenant's audit chain (`chain` = tenant id).
    Chain,
    /// Not a tenant's: the account itself (erased with the account).
    Account,
}

/// What erasing does to a matching row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnErase {
    /// The row is the person's: deleted, with its `children`.
    Delete,
    /// The row is the tenant's; only the reference goes (set NULL).
    Clear,
    /// Usage rollups: folded into the rollup of no user, so totals stay exact.
    FoldIntoNoUser,
    /// Done by a service before the rows here: documents (their chunks
    /// leave the search index) and audit events (the chain records it).
    ByService,
    /// Goes with another column's row (the same table's `Delete` entry).
    WithRow,
}

/// One column that names a person.
#[derive(Debug, Clone, Copy)]
pub struct PersonalColumn {
    pub table: &'static str,
    pub column: &'static str,
    pub refers: Refers,
    pub within: Within,
    pub on_erase: OnErase,
    /// Rows of other tables that go with a deleted row: `(table, column holding this row's id)`.
    pub children: &'static [(&'static str, &'static str)],
    /// An extra condition (`scope = 'user'`: only rows about a user).
    pub only: Option<&'static str>,
}

const fn column(table: &'static str, column: &'static str, refers: Refers, within: Within, on_erase: OnErase) -> PersonalColumn {
    PersonalColumn { table, column, refers, within, on_erase, children: &[], only: None }
}

const fn with_children(mut c: PersonalColumn, children: &'static [(&'static str, &'static str)]) -> PersonalColumn {
    c.children = children;
    c
}

const fn only(mut c: PersonalColumn, condition: &'static str) -> PersonalColumn {
    c.only = Some(condition);
    c
}

use OnErase::{ByService, Clear, Delete, FoldIntoNoUser, WithRow};
use Refers::{Email, Mentions, Owner, UserId};
use Within::{Account, Chain, Parent, Tenant};

const IN_TENANT_DOCUMENTS: &str = "document_id IN (SELECT id FROM documents WHERE tenant_id = {t})";
const IN_TENANT_GROUPS: &str = "group_id IN (SELECT id FROM groups WHERE tenant_id = {t})";

/// Every column that names a person, in erasure order (a tenant's rows, the
/// membership last; then the account's, the user row last).
pub const PERSONAL_COLUMNS: &[PersonalColumn] = &[
    column("documents", "created_by", UserId, Tenant, ByService),
    column("audit_events", "actor_id", UserId, Chain, ByService),
    column("audit_events", "resource", Mentions, Chain, ByService),
    column("audit_events", "metadata", Mentions, Chain, ByService),
    column("runs", "owner", Owner, Tenant, Delete),
    column("threads", "owner", Owner, Tenant, Delete),
    with_children(column("batches", "owner", Owner, Tenant, Delete), &[("batch_results", "batch_id")]),
    column("bulk_batches", "owner", Owner, Tenant, Delete),
    with_children(column("files", "owner", Owner, Tenant, Delete), &[("file_parts", "file_id")]),
    column("jobs", "owner", Owner, Tenant, Delete),
    column("events", "owner", Owner, Tenant, Delete),
    column("events", "data", Mentions, Tenant, Delete),
    column("webhook_deliveries", "event_owner", Owner, Tenant, Delete),
    column("webhook_deliveries", "body", Mentions, Tenant, Delete),
    with_children(column("webhooks", "owner", Owner, Tenant, Delete), &[("webhook_deliveries", "webhook_id")]),
    with_children(column("schedules", "owner", Owner, Tenant, Delete), &[("schedule_runs", "schedule_id")]),
    column("document_versions", "collected_by", UserId, Parent(IN_TENANT_DOCUMENTS), Clear),
    column("agents", "created_by", UserId, Tenant, Clear),
    column("agent_versions", "created_by", UserId, Tenant, Clear),
    column("mcp_servers", "created_by", UserId, Tenant, Clear),
    column("model_prices", "set_by", UserId, Tenant, Clear),
    only(column("budgets", "scope_id", UserId, Tenant, Delete), "scope = 'user'"),
    only(column("rate_assignments", "scope_id", UserId, Tenant, Delete), "scope = 'user'"),
    column("model_calls", "user_id", UserId, Tenant, Clear),
    column("usage_daily", "user_id", UserId, Tenant, FoldIntoNoUser),
    column("api_keys", "user_id", UserId, Tenant, Delete),
    column("group_members", "user_id", UserId, Parent(IN_TENANT_GROUPS), Delete),
    column("invitations", "email", Email, Tenant, Delete),
    column("invitations", "invited_by", UserId, Tenant, Clear),
    column("invitations", "accepted_user_id", UserId, Tenant, Clear),
    column("memberships", "user_id", UserId, Tenant, Delete),
    column("sessions", "user_id", UserId, Account, Delete),
    column("recovery_codes", "user_id", UserId, Account, Delete),
    column("user_identities", "user_id", UserId, Account, Delete),
    column("email_verifications", "user_id", UserId, Account, Delete),
    column("email_verifications", "email", Email, Account, Delete),
    column("oidc_logins", "link_user_id", UserId, Account, Delete),
    column("outbox_emails", "recipient", Email, Account, Delete),
    column("users", "email", Email, Account, WithRow),
    column("users", "id", UserId, Account, Delete),
];

/// Column names that say a column refers to a person: each such column of
/// the schema must be in [`PERSONAL_COLUMNS`] (a storage test checks).
pub const PERSON_COLUMN_NAMES: &[&str] =
    &["user_id", "owner", "event_owner", "created_by", "collected_by", "set_by", "invited_by", "accepted_user_id", "link_user_id", "actor_id", "email", "recipient"];

/// Rows that belong to a person's rows (exported with them): `(table, column holding the parent's id, parent table, parent's personal column)`.
pub const EXPORTED_CHILDREN: &[(&str, &str, &str, &str)] = &[
    ("thread_messages", "thread_id", "threads", "owner"),
    ("run_tool_calls", "run_id", "runs", "owner"),
    ("document_versions", "document_id", "documents", "created_by"),
    ("schedule_runs", "schedule_id", "schedules", "owner"),
    ("bulk_items", "batch_id", "bulk_batches", "owner"),
    ("batch_results", "batch_id", "batches", "owner"),
];

/// Columns an export never shows: secrets, hashes of secrets, and binary
/// content (files and document versions are exported as files of their own).
pub const NOT_EXPORTED: &[&str] =
    &["password_hash", "totp_secret", "secret_hash", "token_hash", "code_hash", "delegation", "secrets", "headers", "pkce_verifier", "nonce", "embedding", "content", "data"];

/// Whose data: the user's id and address.
#[derive(Debug, Clone)]
pub struct Person<'a> {
    pub user_id: &'a str,
    pub email: &'a str,
}

/// A `WHERE` clause with its bound values, numbered from `$1`.
struct Filter {
    sql: String,
    binds: Vec<String>,
}

impl Filter {
    fn new() -> Self {
        Self { sql: String::new(), binds: Vec::new() }
    }

    /// The next placeholder, bound to `value`.
    fn bind(&mut self, value: impl Into<String>) -> String {
        self.binds.push(value.into());
        format!("${}", self.binds.len())
    }

    fn and(&mut self, condition: &str) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.sql.push_str(condition);
    }

    /// Rows of `column` (of `c.table`) that name `person` within `tenant` (`None`: the account's).
    fn naming(backend: Backend, c: &PersonalColumn, person: &Person<'_>, tenant: Option<&str>) -> Self {
        let mut filter = Self::new();
        if let Some(tenant) = tenant {
            let condition = match c.within {
                Tenant => format!("tenant_id = {}", filter.bind(tenant)),
                Chain => format!("chain = {}", filter.bind(tenant)),
                Parent(template) => template.replace("{t}", &filter.bind(tenant)),
                Account => String::new(),
            };
            filter.and(&condition);
        }
        let col = c.column;
        let condition = match c.refers {
            UserId => format!("{col} = {}", filter.bind(person.user_id)),
            Owner => format!("{col} = {}", filter.bind(format!("user:{}", person.user_id))),
            Email => format!("lower({col}) = lower({})", filter.bind(person.email)),
            Mentions => {
                // The address as a JSON string (quoted), so `ann@x` does not match `joann@x`.
                let (id, email) = (filter.bind(person.user_id), filter.bind(serde_json::Value::from(person.email).to_string()));
                format!("({} OR {})", contains(backend, col, &id), contains(backend, col, &email))
            }
        };
        filter.and(&condition);
        if let Some(extra) = c.only {
            filter.and(extra);
        }
        filter
    }
}

/// `column` contains the text bound at `placeholder` (not `LIKE`: an address may hold `_`).
fn contains(backend: Backend, column: &str, placeholder: &str) -> String {
    match backend {
        Backend::Sqlite => format!("instr({column}, {placeholder}) > 0"),
        Backend::Postgres => format!("strpos({column}, {placeholder}) > 0"),
    }
}

/// The statements that erase `person` from the rows `c` maps (children first).
fn erase_statements(backend: Backend, c: &PersonalColumn, person: &Person<'_>, tenant: Option<&str>) -> Vec<(String, Vec<String>)> {
    let filter = Filter::naming(backend, c, person, tenant);
    let (table, col, condition) = (c.table, c.column, &filter.sql);
    match c.on_erase {
        Delete => {
            let mut statements: Vec<(String, Vec<String>)> = c
                .children
                .iter()
                .map(|(child, parent_id)| (format!("DELETE FROM {child} WHERE {parent_id} IN (SELECT id FROM {table} WHERE {condition})"), filter.binds.clone()))
                .collect();
            statements.push((format!("DELETE FROM {table} WHERE {condition}"), filter.binds.clone()));
            statements
        }
        Clear => vec![(format!("UPDATE {table} SET {col} = NULL WHERE {condition}"), filter.binds)],
        FoldIntoNoUser => {
            let fold = format!(
                "{}SELECT tenant_id, day, '', api_key_id, agent, model, provider, requests, errors, cache_hits, input_tokens, output_tokens, cached_tokens, cost_nusd, saved_nusd \
                 FROM usage_daily WHERE {condition}{}",
                crate::model_calls::INSERT_ROLLUPS,
                crate::model_calls::ON_ROLLUP_CONFLICT
            );
            vec![(fold, filter.binds.clone()), (format!("DELETE FROM usage_daily WHERE {condition}"), filter.binds)]
        }
        ByService | WithRow => Vec::new(),
    }
}

/// Per-tenant retention, in days (`None`: kept for ever).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct RetentionRow {
    pub threads_days: Option<i64>,
    pub runs_days: Option<i64>,
    pub document_versions_days: Option<i64>,
    pub usage_days: Option<i64>,
    pub audit_days: Option<i64>,
    pub updated_at_ms: i64,
}

/// One member as the compliance report sees them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemberSecurityRow {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub totp_enabled: bool,
    pub is_active: bool,
    pub platform_admin: bool,
}

/// One live API key as the compliance report sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyUseRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
    pub expires_at_ms: Option<i64>,
}

/// A backup taken with `agentry backup`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BackupRow {
    pub id: String,
    pub at_ms: i64,
    pub bytes: i64,
    pub includes_master_key: i64,
}

impl Db {
    /// Every `(table, column)` of the schema (but the migrations' own table), sorted.
    pub async fn schema_columns(&self) -> Result<Vec<(String, String)>, DbError> {
        let sql_sqlite = "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' ORDER BY m.name, p.cid";
        let sql_pg = "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%' ORDER BY table_name, ordinal_position";
        match self {
            Db::Sqlite(pool) => sqlx::query_as(sql_sqlite).fetch_all(pool).await,
            Db::Postgres(pool) => sqlx::query_as(sql_pg).fetch_all(pool).await,
        }
        .map_err(DbError::query("schema columns"))
    }

    /// Rows of `table` matching `condition` as JSON objects (text), without [`NOT_EXPORTED`] columns.
    /// `schema` is [`Db::schema_columns`], read once per export.
    async fn rows_as_json(&self, schema: &[(String, String)], table: &str, condition: &str, binds: &[String]) -> Result<Vec<String>, DbError> {
        let exported = schema.iter().filter(|(t, c)| t == table && !NOT_EXPORTED.contains(&c.as_str()));
        let pairs: Vec<String> = exported.map(|(_, c)| format!("'{c}', {c}")).collect();
        let object = match self.backend() {
            Backend::Sqlite => format!("json_object({})", pairs.join(", ")),
            Backend::Postgres => format!("json_build_object({})::text", pairs.join(", ")),
        };
        let sql = format!("SELECT {object} FROM {table} WHERE {condition}");
        on_pool!(self, pool => {
            let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()));
            for value in binds {
                query = query.bind(value);
            }
            query.fetch_all(pool).await
        })
        .map_err(DbError::query("export rows"))
    }

    /// Everything the map finds about `person` in `tenant` (`None`: the
    /// account's own rows), with the rows that belong to theirs: `(table,
    /// JSON rows)`. Rows that only mention them (events, deliveries) are
    /// left out — they are others' as much as theirs; audit events naming
    /// them only with `audit`.
    pub async fn personal_rows(&self, person: &Person<'_>, tenant: Option<&str>, audit: bool) -> Result<Vec<(String, Vec<String>)>, DbError> {
        let schema = self.schema_columns().await?;
        let mut out = Vec::new();
        let wanted = |c: &&PersonalColumn| (c.within == Account) == tenant.is_none() && c.on_erase != WithRow && if c.within == Chain { audit } else { c.refers != Mentions };
        for c in PERSONAL_COLUMNS.iter().filter(wanted) {
            let filter = Filter::naming(self.backend(), c, person, tenant);
            let rows = self.rows_as_json(&schema, c.table, &filter.sql, &filter.binds).await?;
            if !rows.is_empty() {
                out.push((format!("{}.{}", c.table, c.column), rows));
            }
        }
        if tenant.is_some() {
            for (child, parent_id, parent, parent_column) in EXPORTED_CHILDREN {
                let Some(c) = PERSONAL_COLUMNS.iter().find(|c| c.table == *parent && c.column == *parent_column) else { continue };
                let filter = Filter::naming(self.backend(), c, person, tenant);
                let condition = format!("{parent_id} IN (SELECT id FROM {parent} WHERE {})", filter.sql);
                let rows = self.rows_as_json(&schema, child, &condition, &filter.binds).await?;
                if !rows.is_empty() {
                    out.push(((*child).to_owned(), rows));
                }
            }
        }
        Ok(out)
    }

    /// Whether `tenant` holds a row of `user_id`'s own (owned or created by
    /// them, or about them as a user): mentions and addresses do not count.
    pub async fn holds_person(&self, tenant_id: &str, user_id: &str) -> Result<bool, DbError> {
        let person = Person { user_id, email: "" };
        for c in PERSONAL_COLUMNS.iter().filter(|c| matches!(c.within, Tenant | Parent(_)) && matches!(c.refers, UserId | Owner)) {
            let filter = Filter::naming(self.backend(), c, &person, Some(tenant_id));
            let sql = format!("SELECT 1 FROM {} WHERE {} LIMIT 1", c.table, filter.sql);
            let found: Option<i32> = on_pool!(self, pool => {
                let mut query = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()));
                for value in &filter.binds {
                    query = query.bind(value);
                }
                query.fetch_optional(pool).await
            })
            .map_err(DbError::query("holds person"))?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Bytes of the files `owner` holds and of the current versions of the documents `user_id` created, in `tenant`.
    pub async fn personal_content_bytes(&self, tenant_id: &str, owner: &str, user_id: &str) -> Result<i64, DbError> {
        let sql = "SELECT CAST(COALESCE((SELECT SUM(bytes) FROM files WHERE tenant_id = $1 AND owner = $2), 0) \
             + COALESCE((SELECT SUM(v.size_bytes) FROM documents d JOIN document_versions v ON v.document_id = d.id \
             AND v.version = COALESCE(d.current_version, d.latest_version) WHERE d.tenant_id = $1 AND d.created_by = $3), 0) AS BIGINT)";
        let total: i64 =
            on_pool!(self, pool => sqlx::query_scalar(sql).bind(tenant_id).bind(owner).bind(user_id).fetch_one(pool).await).map_err(DbError::query("personal content bytes"))?;
        Ok(total)
    }

    /// The content of the files `owner` holds in `tenant`: `(file id, file name, bytes)`.
    pub async fn owned_file_contents(&self, tenant_id: &str, owner: &str) -> Result<Vec<(String, String, Vec<u8>)>, DbError> {
        let files: Vec<(String, String)> = on_pool!(self, pool => sqlx::query_as("SELECT id, filename FROM files WHERE tenant_id = $1 AND owner = $2 ORDER BY id")
            .bind(tenant_id).bind(owner).fetch_all(pool).await)
        .map_err(DbError::query("owned files"))?;
        let mut out = Vec::with_capacity(files.len());
        for (id, name) in files {
            let parts: Vec<Vec<u8>> = on_pool!(self, pool => sqlx::query_scalar("SELECT data FROM file_parts WHERE file_id = $1 ORDER BY seq").bind(&id).fetch_all(pool).await)
                .map_err(DbError::query("file parts"))?;
            out.push((id, name, parts.concat()));
        }
        Ok(out)
    }

    /// The current (or else latest) version's content of each document `user_id` created in `tenant`: `(document id, version, format, bytes)`.
    pub async fn created_document_contents(&self, tenant_id: &str, user_id: &str) -> Result<Vec<(String, i32, String, Vec<u8>)>, DbError> {
        let sql = "SELECT d.id, v.version, v.format, v.content FROM documents d JOIN document_versions v \
             ON v.document_id = d.id AND v.version = COALESCE(d.current_version, d.latest_version) \
             WHERE d.tenant_id = $1 AND d.created_by = $2 ORDER BY d.id";
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(user_id).fetch_all(pool).await).map_err(DbError::query("created documents"))
    }

    /// The documents `user_id` created in `tenant` (erased through the knowledge service).
    pub async fn documents_created_by(&self, tenant_id: &str, user_id: &str) -> Result<Vec<String>, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM documents WHERE tenant_id = $1 AND created_by = $2 ORDER BY id")
            .bind(tenant_id).bind(user_id).fetch_all(pool).await)
        .map_err(DbError::query("documents created by"))
    }

    /// The ids of `user_id`'s API keys in `tenant` (revoked ones too).
    pub async fn api_key_ids_of(&self, tenant_id: &str, user_id: &str) -> Result<Vec<String>, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant_id = $1 AND user_id = $2 ORDER BY id")
            .bind(tenant_id).bind(user_id).fetch_all(pool).await)
        .map_err(DbError::query("api key ids"))
    }

    /// Erase `person` from `tenant` (every mapped tenant column but the
    /// service-erased ones), in one transaction: rows deleted or changed.
    pub async fn erase_from_tenant(&self, tenant_id: &str, person: &Person<'_>) -> Result<u64, DbError> {
        let columns = PERSONAL_COLUMNS.iter().filter(|c| c.within != Account);
        self.run_erasure(columns.flat_map(|c| erase_statements(self.backend(), c, person, Some(tenant_id))).collect()).await
    }

    /// Erase the account itself (sessions, second factors, identities, mail, the user row), in one transaction.
    pub async fn erase_account(&self, person: &Person<'_>) -> Result<u64, DbError> {
        let columns = PERSONAL_COLUMNS.iter().filter(|c| c.within == Account);
        self.run_erasure(columns.flat_map(|c| erase_statements(self.backend(), c, person, None)).collect()).await
    }

    async fn run_erasure(&self, statements: Vec<(String, Vec<String>)>) -> Result<u64, DbError> {
        // An empty value would match every row (`instr(x, '')` is 1).
        if statements.iter().any(|(_, binds)| binds.iter().any(String::is_empty)) {
            return Err(DbError::Aborted("an erasure needs the person's id and address".into()));
        }
        on_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let mut changed = 0;
            for (sql, binds) in &statements {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                for value in binds {
                    query = query.bind(value);
                }
                changed += query.execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(changed)
        })
        .map_err(DbError::write("erase personal data"))
    }

    /// Clear the payload of an erasure job once it is done (it names the person).
    pub async fn clear_job_payload(&self, job_id: &str) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("UPDATE jobs SET payload = '{}' WHERE id = $1").bind(job_id).execute(pool).await.map(drop)).map_err(DbError::write("clear job payload"))
    }

    pub async fn retention(&self, tenant_id: &str) -> Result<Option<RetentionRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT threads_days, runs_days, document_versions_days, usage_days, audit_days, updated_at_ms FROM tenant_retention WHERE tenant_id = $1")
            .bind(tenant_id).fetch_optional(pool).await)
        .map_err(DbError::query("retention settings"))
    }

    pub async fn put_retention(&self, tenant_id: &str, row: &RetentionRow) -> Result<(), DbError> {
        let sql = "INSERT INTO tenant_retention (tenant_id, threads_days, runs_days, document_versions_days, usage_days, audit_days, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) DO UPDATE SET threads_days = excluded.threads_days, runs_days = excluded.runs_days, \
             document_versions_days = excluded.document_versions_days, usage_days = excluded.usage_days, audit_days = excluded.audit_days, updated_at_ms = excluded.updated_at_ms";
        on_pool!(self, pool => sqlx::query(sql).bind(tenant_id).bind(row.threads_days).bind(row.runs_days).bind(row.document_versions_days)
            .bind(row.usage_days).bind(row.audit_days).bind(row.updated_at_ms).execute(pool).await.map(drop))
        .map_err(DbError::write("put retention settings"))
    }

    /// Tenants with any retention set.
    pub async fn tenants_with_retention(&self) -> Result<Vec<String>, DbError> {
        on_pool!(self, pool => sqlx::query_scalar(
            "SELECT tenant_id FROM tenant_retention WHERE threads_days IS NOT NULL OR runs_days IS NOT NULL OR document_versions_days IS NOT NULL \
             OR usage_days IS NOT NULL OR audit_days IS NOT NULL ORDER BY tenant_id").fetch_all(pool).await)
        .map_err(DbError::query("tenants with retention"))
    }

    /// Delete a tenant's threads (with their messages) untouched since `before_ms` and not running anything.
    pub async fn delete_threads_idle_before(&self, tenant_id: &str, before_ms: i64) -> Result<u64, DbError> {
        let sql = "DELETE FROM threads WHERE tenant_id = $1 AND updated_at_ms < $2 \
             AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = threads.id AND r.status IN ('pending', 'running'))";
        self.delete_where(sql, tenant_id, before_ms).await
    }

    /// Delete a tenant's finished runs (with their tool calls) created before `before_ms`.
    pub async fn delete_runs_before(&self, tenant_id: &str, before_ms: i64) -> Result<u64, DbError> {
        self.delete_where("DELETE FROM runs WHERE tenant_id = $1 AND created_at_ms < $2 AND status NOT IN ('pending', 'running')", tenant_id, before_ms).await
    }

    /// Delete a tenant's raw usage records created before `before_ms`.
    pub async fn delete_tenant_usage_records_before(&self, tenant_id: &str, before_ms: i64) -> Result<u64, DbError> {
        self.delete_where("DELETE FROM model_calls WHERE tenant_id = $1 AND created_at_ms < $2", tenant_id, before_ms).await
    }

    /// Delete a tenant's daily usage rollups of days before `before_day` (`YYYY-MM-DD`).
    pub async fn delete_usage_rollups_before(&self, tenant_id: &str, before_day: &str) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM usage_daily WHERE tenant_id = $1 AND day < $2").bind(tenant_id).bind(before_day).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::write("delete usage rollups"))
    }

    async fn delete_where(&self, sql: &'static str, tenant_id: &str, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query(sql).bind(tenant_id).bind(before_ms).execute(pool).await.map(|r| r.rows_affected())).map_err(DbError::write("retention delete"))
    }

    /// A tenant's document versions that are neither current nor latest nor
    /// being ingested, created before `before_ms`: `(document id, version)`.
    pub async fn superseded_versions_before(&self, tenant_id: &str, before_ms: i64) -> Result<Vec<(String, i32)>, DbError> {
        let sql = "SELECT v.document_id, v.version FROM document_versions v JOIN documents d ON d.id = v.document_id \
             WHERE d.tenant_id = $1 AND v.created_at_ms < $2 AND v.version <> d.latest_version \
             AND (d.current_version IS NULL OR v.version <> d.current_version) AND v.status NOT IN ('queued', 'processing') ORDER BY v.document_id, v.version";
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(before_ms).fetch_all(pool).await).map_err(DbError::query("superseded versions"))
    }

    /// Members of a tenant with what the compliance report checks.
    pub async fn member_security(&self, tenant_id: &str) -> Result<Vec<MemberSecurityRow>, DbError> {
        let sql = "SELECT m.user_id, u.email, m.role, u.totp_enabled, u.is_active, u.platform_admin FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 ORDER BY u.email";
        on_pool!(self, pool => sqlx::query(sql).bind(tenant_id).fetch_all(pool).await.and_then(|rows| rows.iter().map(|r| Ok(MemberSecurityRow {
            user_id: r.try_get(0)?,
            email: r.try_get(1)?,
            role: r.try_get(2)?,
            totp_enabled: r.try_get(3)?,
            is_active: r.try_get(4)?,
            platform_admin: r.try_get(5)?,
        })).collect()))
        .map_err(DbError::query("member security"))
    }

    /// A tenant's API keys that are not revoked.
    pub async fn live_key_uses(&self, tenant_id: &str) -> Result<Vec<KeyUseRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT id, user_id, name, created_at_ms, last_used_at_ms, expires_at_ms FROM api_keys WHERE tenant_id = $1 AND revoked_at_ms IS NULL ORDER BY created_at_ms")
            .bind(tenant_id).fetch_all(pool).await)
        .map_err(DbError::query("live api keys"))
    }

    pub async fn record_backup(&self, row: &BackupRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query("INSERT INTO backups (id, at_ms, bytes, includes_master_key) VALUES ($1, $2, $3, $4)")
            .bind(&row.id).bind(row.at_ms).bind(row.bytes).bind(row.includes_master_key).execute(pool).await.map(drop))
        .map_err(DbError::write("record backup"))
    }

    pub async fn last_backup(&self) -> Result<Option<BackupRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT id, at_ms, bytes, includes_master_key FROM backups ORDER BY at_ms DESC LIMIT 1").fetch_optional(pool).await)
            .map_err(DbError::query("last backup"))
    }
}
