//! The PostgreSQL index: one table per index name (`search_chunks_<name>`)
//! holding each chunk's text, filter attributes and vector, searched with
//! PostgreSQL full-text search (a generated `tsvector`, English stemming and
//! stop words, title weighted above text) and pgvector (HNSW, cosine).
//! Opening creates the `vector` extension, the table and its indexes when
//! missing; writes are visible when they return (there is no commit step).
//!
//! Filters are SQL conditions of the ranking statement itself, with every
//! value bound, and follow [`Filter`]'s rules: tenant equality, collections
//! (empty: all), documents (`None`: all), ACL overlap with the principals,
//! metadata equality and numeric ranges.
//!
//! Trade-offs:
//! - `ts_rank` is not BM25: no inverse document frequency, only length
//!   normalisation, so scores are not comparable with the embedded index's
//!   (fusion works on ranks). Like BM25, a query matches chunks containing
//!   any of its words: its lexemes are joined with `|`, not `&`.
//! - Filtered vector search relies on pgvector 0.8 iterative index scans
//!   (`hnsw.iterative_scan`), so opening refuses older pgvector. When the graph
//!   still yields fewer than `top_k` visible chunks, an exact scan over the
//!   visible rows answers, so a filter never shrinks the result.
//! - Vectors travel as bound `real[]` cast to `vector`: no extra crate, no
//!   text formatting of floats.
//!
//! Must not: embed text (callers pass vectors), decide permissions (callers
//! pass the reader's principals) or touch the application's tables.

use std::collections::HashSet;

use sqlx::types::Json;
use sqlx::{AssertSqlSafe, PgPool, Postgres, QueryBuilder, Transaction};

use super::{Filter, IndexError, IndexedChunk, MetadataCondition, Ranked};

const TABLE_PREFIX: &str = "search_chunks_";
/// Longest suffix of the table's index names; PostgreSQL cuts identifiers at 63 bytes.
const LONGEST_INDEX_SUFFIX: &str = "_embedding";
const MAX_NAME_BYTES: usize = 63 - TABLE_PREFIX.len() - LONGEST_INDEX_SUFFIX.len();
/// Advisory lock serialising opens in one database (concurrent `CREATE EXTENSION`
/// or `CREATE TABLE IF NOT EXISTS` can otherwise fail on a unique violation).
const OPEN_LOCK: i64 = 0x6167_656e_7472_7973;
/// Nine bound values per row keeps a batch well under PostgreSQL's 65535 parameters.
const ROWS_PER_INSERT: usize = 1000;
/// Candidates the graph keeps per query (`hnsw.ef_search`, at most 1000 in pgvector).
const MIN_EF_SEARCH: usize = 128;
const MAX_EF_SEARCH: usize = 1000;

/// Keyword and vector index in one PostgreSQL table. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct PostgresIndex {
    pool: PgPool,
    /// `search_chunks_` + the name reduced to `[a-z0-9_]`: safe to splice into SQL.
    table: String,
    dimensions: usize,
}

impl PostgresIndex {
    /// Open the index `name`, creating its table and indexes if missing.
    /// Fails with [`IndexError::Dimensions`] when the table exists with other
    /// dimensions, and with a message naming pgvector when it is missing or
    /// older than 0.8.
    pub async fn open(pool: PgPool, name: &str, dimensions: usize) -> Result<Self, IndexError> {
        let table = table_name(name)?;
        let declared = i32::try_from(dimensions).map_err(|_| IndexError::Database(format!("{dimensions} dimensions is too many")))?;
        let mut tx = pool.begin().await.map_err(database("begin opening the index"))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(OPEN_LOCK).execute(&mut *tx).await.map_err(database("lock for opening the index"))?;
        ensure_pgvector(&mut tx).await?;
        let existing: Option<i32> = sqlx::query_scalar("SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'embedding'")
            .bind(&table)
            .fetch_optional(&mut *tx)
            .await
            .map_err(database("read the index table's dimensions"))?;
        if let Some(existing) = existing.filter(|&d| d != declared) {
            return Err(IndexError::Dimensions { expected: usize::try_from(existing).unwrap_or_default(), got: dimensions });
        }
        let statements = [
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                    key BIGINT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    collection TEXT NOT NULL,
                    document TEXT NOT NULL,
                    acl TEXT[] NOT NULL,
                    metadata JSONB NOT NULL,
                    title TEXT NOT NULL,
                    text TEXT NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS
                        (setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', text), 'B')) STORED,
                    embedding vector({declared}) NOT NULL
                )"
            ),
            format!("CREATE INDEX IF NOT EXISTS {table}_tsv ON {table} USING gin (tsv)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {table}{LONGEST_INDEX_SUFFIX} ON {table}
                 USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {table}_scope ON {table} (tenant, collection)"),
            format!("CREATE INDEX IF NOT EXISTS {table}_acl ON {table} USING gin (acl)"),
        ];
        for statement in statements {
            sqlx::query(AssertSqlSafe(statement)).execute(&mut *tx).await.map_err(database("create the index table"))?;
        }
        tx.commit().await.map_err(database("commit opening the index"))?;
        Ok(Self { pool, table, dimensions })
    }

    /// Add chunks, replacing any with the same key (the last of duplicates in
    /// `chunks` wins), in one transaction.
    pub async fn add(&self, chunks: &[IndexedChunk]) -> Result<(), IndexError> {
        if let Some(chunk) = chunks.iter().find(|c| c.vector.len() != self.dimensions) {
            return Err(IndexError::Dimensions { expected: self.dimensions, got: chunk.vector.len() });
        }
        // One upsert cannot touch a row twice: keep the last chunk per key.
        let mut seen = HashSet::new();
        let mut unique: Vec<&IndexedChunk> = chunks.iter().rev().filter(|c| seen.insert(c.key)).collect();
        unique.reverse();
        let mut tx = self.pool.begin().await.map_err(database("begin adding chunks"))?;
        for batch in unique.chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Postgres>::new(format!("INSERT INTO {} (key, tenant, collection, document, acl, metadata, title, text, embedding) ", self.table));
            q.push_values(batch, |mut row, chunk| {
                row.push_bind(stored_key(chunk.key))
                    .push_bind(&chunk.tenant)
                    .push_bind(&chunk.collection)
                    .push_bind(&chunk.document)
                    .push_bind(&chunk.acl)
                    .push_bind(Json(&chunk.metadata))
                    .push_bind(&chunk.title)
                    .push_bind(&chunk.text)
                    .push_bind(&chunk.vector)
                    .push_unseparated("::vector");
            });
            q.push(
                " ON CONFLICT (key) DO UPDATE SET tenant = EXCLUDED.tenant, collection = EXCLUDED.collection, \
                 document = EXCLUDED.document, acl = EXCLUDED.acl, metadata = EXCLUDED.metadata, \
                 title = EXCLUDED.title, text = EXCLUDED.text, embedding = EXCLUDED.embedding",
            );
            q.build().execute(&mut *tx).await.map_err(database("upsert chunks"))?;
        }
        tx.commit().await.map_err(database("commit adding chunks"))
    }

    /// Remove chunks by key; unknown keys are ignored.
    pub async fn remove(&self, keys: &[u64]) -> Result<(), IndexError> {
        let keys: Vec<i64> = keys.iter().map(|&k| stored_key(k)).collect();
        sqlx::query(AssertSqlSafe(format!("DELETE FROM {} WHERE key = ANY($1)", self.table))).bind(keys).execute(&self.pool).await.map_err(database("remove chunks"))?;
        Ok(())
    }

    /// Chunks stored, across tenants.
    pub async fn count(&self) -> Result<usize, IndexError> {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {}", self.table))).fetch_one(&self.pool).await.map_err(database("count chunks"))?;
        Ok(usize::try_from(count).unwrap_or_default())
    }

    /// Full-text search over title and text, best first by `ts_rank`
    /// (normalised by log length), restricted by `filter`. A chunk matches
    /// when it contains any of the query's words after English analysis;
    /// query syntax in user text is plain text here.
    pub async fn keyword_search(&self, query: &str, filter: &Filter, top_k: usize) -> Result<Vec<Ranked>, IndexError> {
        if top_k == 0 {
            return Ok(Vec::new());
        }
        // Each lexeme is quoted as a tsquery operand (quotes and backslashes
        // doubled) so it is taken verbatim, then the operands are OR-ed.
        let mut q = QueryBuilder::<Postgres>::new(
            r"WITH q AS (
                SELECT string_agg('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''', ' | ')::tsquery AS query
                FROM unnest(tsvector_to_array(to_tsvector('english', ",
        );
        q.push_bind(query);
        q.push(format!("::text))) AS lexeme) SELECT key, ts_rank(tsv, q.query, 1) AS score FROM {}, q", self.table));
        push_filter(&mut q, filter);
        q.push(" AND tsv @@ q.query ORDER BY score DESC, key LIMIT ").push_bind(limit(top_k));
        let rows: Vec<(i64, f32)> = q.build_query_as().fetch_all(&self.pool).await.map_err(database("keyword search"))?;
        Ok(rows.into_iter().map(|(key, score)| (loaded_key(key), score)).collect())
    }

    /// Nearest chunks by cosine similarity, best first, restricted by `filter`.
    pub async fn vector_search(&self, query: &[f32], filter: &Filter, top_k: usize) -> Result<Vec<Ranked>, IndexError> {
        if query.len() != self.dimensions {
            return Err(IndexError::Dimensions { expected: self.dimensions, got: query.len() });
        }
        if top_k == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(database("begin vector search"))?;
        // Iterative scans keep walking the graph until `top_k` rows pass the
        // filter; relaxed order is re-sorted below. Both settings end with the transaction.
        sqlx::query("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), set_config('hnsw.ef_search', $1, true)")
            .bind(top_k.clamp(MIN_EF_SEARCH, MAX_EF_SEARCH).to_string())
            .execute(&mut *tx)
            .await
            .map_err(database("configure vector search"))?;
        let mut ranked = self.nearest(&mut tx, query, filter, top_k, Scan::Graph).await?;
        if ranked.len() < top_k {
            // The graph ran out of visible neighbours: scan the visible rows exactly.
            ranked = self.nearest(&mut tx, query, filter, top_k, Scan::Exact).await?;
        }
        tx.commit().await.map_err(database("end vector search"))?;
        Ok(ranked)
    }

    async fn nearest(&self, tx: &mut Transaction<'static, Postgres>, query: &[f32], filter: &Filter, top_k: usize, scan: Scan) -> Result<Vec<Ranked>, IndexError> {
        // The MATERIALIZED CTE fences the ordering: inside it for the graph
        // (the HNSW index serves `ORDER BY distance LIMIT`), outside it for the exact scan.
        let mut q = QueryBuilder::<Postgres>::new("WITH candidates AS MATERIALIZED (SELECT key, embedding <=> ");
        q.push_bind(query).push(format!("::vector AS distance FROM {}", self.table));
        push_filter(&mut q, filter);
        match scan {
            Scan::Graph => {
                q.push(" ORDER BY distance LIMIT ").push_bind(limit(top_k));
                q.push(") SELECT key, distance FROM candidates ORDER BY distance, key");
            }
            Scan::Exact => {
                q.push(") SELECT key, distance FROM candidates ORDER BY distance, key LIMIT ").push_bind(limit(top_k));
            }
        }
        let rows: Vec<(i64, f64)> = q.build_query_as().fetch_all(&mut **tx).await.map_err(database("vector search"))?;
        Ok(rows.into_iter().map(|(key, distance)| (loaded_key(key), (1.0 - distance) as f32)).collect())
    }
}

#[derive(Clone, Copy)]
enum Scan {
    Graph,
    Exact,
}

/// Append `WHERE` conditions equivalent to [`Filter::allows`], every value bound.
fn push_filter(q: &mut QueryBuilder<Postgres>, filter: &Filter) {
    q.push(" WHERE tenant = ").push_bind(filter.tenant.clone());
    if !filter.collections.is_empty() {
        q.push(" AND collection = ANY(").push_bind(filter.collections.clone()).push(")");
    }
    if let Some(documents) = &filter.documents {
        q.push(" AND document = ANY(").push_bind(documents.clone()).push(")");
    }
    q.push(" AND acl && ").push_bind(filter.principals.clone()).push("::text[]");
    for (key, condition) in &filter.metadata {
        match condition {
            MetadataCondition::Equals(value) => {
                q.push(" AND (metadata -> ").push_bind(key.clone()).push(") = ").push_bind(Json(value.clone()));
            }
            MetadataCondition::Range { gt, gte, lt, lte } => {
                q.push(" AND jsonb_typeof(metadata -> ").push_bind(key.clone()).push(") = 'number'");
                for (operator, bound) in [(">", gt), (">=", gte), ("<", lt), ("<=", lte)] {
                    if let Some(bound) = bound {
                        // The CASE keeps the cast away from non-numbers: SQL
                        // does not promise to evaluate the type check first.
                        q.push(" AND (CASE WHEN jsonb_typeof(metadata -> ").push_bind(key.clone());
                        q.push(") = 'number' THEN (metadata ->> ").push_bind(key.clone());
                        q.push(")::float8 END) ").push(operator).push(" ").push_bind(*bound);
                    }
                }
            }
        }
    }
}

/// Ensure pgvector is installed in the database, at 0.8 or later.
async fn ensure_pgvector(tx: &mut Transaction<'static, Postgres>) -> Result<(), IndexError> {
    // With IF NOT EXISTS, an installed extension needs no privilege to pass.
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(&mut **tx)
        .await
        .map_err(|e| IndexError::Database(format!("pgvector is not available on this PostgreSQL server (CREATE EXTENSION vector: {e}); install pgvector 0.8 or later")))?;
    let version: String =
        sqlx::query_scalar("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetch_one(&mut **tx).await.map_err(database("read the pgvector version"))?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or_default());
    if (parts.next().unwrap_or_default(), parts.next().unwrap_or_default()) < (0, 8) {
        return Err(IndexError::Database(format!("pgvector {version} is too old: filtered vector search needs 0.8 or later (ALTER EXTENSION vector UPDATE)")));
    }
    Ok(())
}

/// Drop every index table in the database (`agentry reindex`: a server
/// that opens an index again finds it empty and rebuilds it from the stored
/// chunks); the names of those dropped.
pub async fn drop_all(pool: &PgPool) -> Result<Vec<String>, IndexError> {
    let tables: Vec<String> = sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, $1) ORDER BY tablename")
        .bind(TABLE_PREFIX)
        .fetch_all(pool)
        .await
        .map_err(database("list the index tables"))?;
    for table in &tables {
        // The names come from pg_tables and start with our prefix; quoted all the same.
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS \"{}\"", table.replace('"', "\"\"")))).execute(pool).await.map_err(database("drop an index table"))?;
    }
    Ok(tables)
}

/// `search_chunks_` + `name` lower-cased, with every character outside `[a-z0-9_]` turned into `_`.
fn table_name(name: &str) -> Result<String, IndexError> {
    let sanitized: String = name.chars().map(|c| c.to_ascii_lowercase()).map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '_' }).collect();
    if name.is_empty() || sanitized.len() > MAX_NAME_BYTES {
        return Err(IndexError::Database(format!("index name {name:?} must have 1 to {MAX_NAME_BYTES} characters")));
    }
    Ok(format!("{TABLE_PREFIX}{sanitized}"))
}

/// Keys are stored bit for bit in a BIGINT; [`loaded_key`] undoes it.
fn stored_key(key: u64) -> i64 {
    i64::from_ne_bytes(key.to_ne_bytes())
}

fn loaded_key(key: i64) -> u64 {
    u64::from_ne_bytes(key.to_ne_bytes())
}

fn limit(top_k: usize) -> i64 {
    i64::try_from(top_k).unwrap_or(i64::MAX)
}

fn database(context: &'static str) -> impl FnOnce(sqlx::Error) -> IndexError {
    move |error| IndexError::Database(format!("{context}: {error}"))
}
