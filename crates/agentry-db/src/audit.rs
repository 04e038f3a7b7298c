//! Rows of the audit log (`audit_events`): append, read the chain head, page
//! through events with filters.
//!
//! Append-only but for two sanctioned writes, each vouched for by a keyed
//! event the chain records first (agentry-core's audit service writes it):
//! erasing an event's personal fields ([`Db::erase_audit_fields`], after an
//! `audit.erase` event) and deleting a chain's oldest events past the
//! tenant's retention ([`Db::delete_audit_through`], after an `audit.prune`
//! event). The `(chain, seq)` primary key makes a forked chain impossible: two writers
//! racing for the same `seq` get one [`DbError::Conflict`], and the loser
//! re-reads the head and retries (agentry-core does).
//!
//! Rows written before migration 0012 have no `key_id` and no `fields_hash`
//! (legacy, plain SHA-256; agentry-core seals each chain that ends in them
//! with a keyed marker, found with [`Db::audit_legacy_heads`]);
//! `erased_at_ms` marks an erasure of an event's personal fields (the chain
//! keeps verifying through `fields_hash` and the erase event; see
//! agentry-core's `audit` module doc).
//!
//! Must not: compute hashes or decide what is audited (agentry-core's audit
//! service does).

use crate::{Db, DbError, on_pool};

/// One stored event of an audit chain.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub chain: String,
    pub seq: i64,
    pub at_ms: i64,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub resource: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// JSON object, as text.
    pub metadata: String,
    pub prev_hash: String,
    pub hash: String,
    /// Which key's HMAC `hash` is; `None` on legacy (plain SHA-256) rows.
    pub key_id: Option<String>,
    /// SHA-256 of the personal fields, covered by `hash`; `None` on legacy rows.
    pub fields_hash: Option<String>,
    /// When the personal fields were erased (then they are empty and only `fields_hash` vouches for them).
    pub erased_at_ms: Option<i64>,
}

/// Filters of an audit query; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub outcome: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only events after this sequence number (pagination cursor).
    pub after_seq: Option<i64>,
}

macro_rules! columns {
    () => {
        "chain, seq, at_ms, actor_type, actor_id, action, resource, outcome, ip, user_agent, request_id, metadata, prev_hash, hash, key_id, fields_hash, erased_at_ms"
    };
}

impl Db {
    /// The last `(seq, hash)` of a chain.
    pub async fn audit_head(&self, chain: &str) -> Result<Option<(i64, String)>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT seq, hash FROM audit_events WHERE chain = $1 ORDER BY seq DESC LIMIT 1")
            .bind(chain).fetch_optional(pool).await)
        .map_err(DbError::query("audit head"))
    }

    /// The last `(seq, hash, key_id)` of a chain: its head, and whether that
    /// is a legacy (unkeyed) event (`key_id` `None`).
    pub async fn audit_head_key(&self, chain: &str) -> Result<Option<(i64, String, Option<String>)>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT seq, hash, key_id FROM audit_events WHERE chain = $1 ORDER BY seq DESC LIMIT 1")
            .bind(chain).fetch_optional(pool).await)
        .map_err(DbError::query("audit head"))
    }

    /// The chains whose newest event is a legacy (unkeyed) one, in order.
    /// One pass over the table (each legacy row probes the primary key for a
    /// successor): meant for the startup step that seals such chains.
    pub async fn audit_legacy_heads(&self) -> Result<Vec<String>, DbError> {
        let sql = "SELECT e.chain FROM audit_events e WHERE e.key_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM audit_events n WHERE n.chain = e.chain AND n.seq > e.seq) ORDER BY e.chain";
        on_pool!(self, pool => sqlx::query_scalar(sql).fetch_all(pool).await).map_err(DbError::query("audit legacy heads"))
    }

    /// Every chain's name, sorted.
    pub async fn audit_chains(&self) -> Result<Vec<String>, DbError> {
        on_pool!(self, pool => sqlx::query_scalar("SELECT DISTINCT chain FROM audit_events ORDER BY chain").fetch_all(pool).await).map_err(DbError::query("audit chains"))
    }

    /// Append one event; [`DbError::Conflict`] when its `seq` is taken.
    pub async fn insert_audit_event(&self, row: &AuditRow) -> Result<(), DbError> {
        let sql = concat!("INSERT INTO audit_events (", columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)");
        on_pool!(self, pool => sqlx::query(sql)
            .bind(&row.chain).bind(row.seq).bind(row.at_ms).bind(&row.actor_type).bind(&row.actor_id).bind(&row.action)
            .bind(&row.resource).bind(&row.outcome).bind(&row.ip).bind(&row.user_agent).bind(&row.request_id)
            .bind(&row.metadata).bind(&row.prev_hash).bind(&row.hash).bind(&row.key_id).bind(&row.fields_hash).bind(row.erased_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("append audit event"))
    }

    /// Events of a chain in sequence order, filtered, at most `limit`.
    pub async fn audit_events(&self, chain: &str, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM audit_events WHERE chain = $1 \
             AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR outcome = $4) \
             AND ($5 IS NULL OR at_ms >= $5) AND ($6 IS NULL OR at_ms < $6) AND ($7 IS NULL OR seq > $7) \
             ORDER BY seq LIMIT $8"
        );
        on_pool!(self, pool => sqlx::query_as(sql)
            .bind(chain).bind(&filter.action).bind(&filter.actor_id).bind(&filter.outcome)
            .bind(filter.from_ms).bind(filter.to_ms).bind(filter.after_seq).bind(limit)
            .fetch_all(pool).await)
        .map_err(DbError::query("list audit events"))
    }

    /// Keyed, not yet erased events of a chain that name a person: their
    /// actor id is `id`, their resource or metadata quote `id`, or their
    /// metadata holds `email` as a JSON string (quoted, so `ann@x` does not
    /// match `joann@x`); oldest first, after `after_seq`, at most `limit`.
    pub async fn audit_events_naming(&self, chain: &str, id: &str, email: &str, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        if id.len() < 8 || email.len() < 3 {
            return Err(DbError::Aborted("a person is named by a full id and address".into()));
        }
        let find = |column: &str, n: u8| match self.backend() {
            crate::Backend::Sqlite => format!("instr({column}, ${n}) > 0"),
            crate::Backend::Postgres => format!("strpos({column}, ${n}) > 0"),
        };
        let sql = format!(
            "SELECT {} FROM audit_events WHERE chain = $1 AND seq > $4 AND key_id IS NOT NULL AND erased_at_ms IS NULL \
             AND (actor_id = $2 OR {} OR {} OR {}) ORDER BY seq LIMIT $5",
            columns!(),
            find("resource", 2),
            find("metadata", 2),
            find("metadata", 3)
        );
        let quoted = serde_json::Value::from(email).to_string();
        on_pool!(self, pool => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(chain).bind(id).bind(&quoted).bind(after_seq).bind(limit).fetch_all(pool).await)
            .map_err(DbError::query("audit events naming a person"))
    }

    /// One event of a chain.
    pub async fn audit_event(&self, chain: &str, seq: i64) -> Result<Option<AuditRow>, DbError> {
        let sql = concat!("SELECT ", columns!(), " FROM audit_events WHERE chain = $1 AND seq = $2");
        on_pool!(self, pool => sqlx::query_as(sql).bind(chain).bind(seq).fetch_optional(pool).await).map_err(DbError::query("audit event"))
    }

    /// Clear the personal fields of events `seqs` of a chain (only once an
    /// `audit.erase` event naming them is stored): how many were cleared.
    pub async fn erase_audit_fields(&self, chain: &str, seqs: &[i64], now_ms: i64) -> Result<u64, DbError> {
        let mut cleared = 0;
        for seq in seqs {
            cleared += on_pool!(self, pool => sqlx::query(
                "UPDATE audit_events SET actor_id = NULL, resource = NULL, ip = NULL, user_agent = NULL, request_id = NULL, metadata = '{}', erased_at_ms = $3 \
                 WHERE chain = $1 AND seq = $2 AND key_id IS NOT NULL AND erased_at_ms IS NULL")
                .bind(chain).bind(seq).bind(now_ms).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::write("erase audit fields"))?;
        }
        Ok(cleared)
    }

    /// The newest event of a chain written before `before_ms`: `(seq, hash)`.
    pub async fn audit_last_before(&self, chain: &str, before_ms: i64) -> Result<Option<(i64, String)>, DbError> {
        on_pool!(self, pool => sqlx::query_as("SELECT seq, hash FROM audit_events WHERE chain = $1 AND at_ms < $2 ORDER BY seq DESC LIMIT 1")
            .bind(chain).bind(before_ms).fetch_optional(pool).await)
        .map_err(DbError::query("audit event before"))
    }

    /// Delete a chain's events up to `seq` (only once an `audit.prune` event naming it is stored).
    pub async fn delete_audit_through(&self, chain: &str, seq: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq <= $2").bind(chain).bind(seq).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::write("prune audit events"))
    }
}
