//! Reads of the usage store for analytics, budgets and invoices, and the
//! retention of raw records. Every aggregate reads `usage_daily` (one row per
//! tenant, day, user, key, agent, model and provider, written with the raw
//! records by [`crate::CallLogWriter`]), whose primary key starts with
//! `(tenant_id, day)`: a period's totals are an index range, never a scan of
//! raw records. Raw records are read only for per-request exports, through
//! the `(tenant_id, created_at_ms)` index.
//!
//! Must not: decide prices, periods or who may read what (agentry-core does).

use sqlx::QueryBuilder;

use crate::model_calls::record_columns;
use crate::{Db, DbError, ModelCallRecord, on_pool};

/// What a usage summary groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Model,
    Provider,
    User,
    ApiKey,
    Agent,
    /// One row for the whole period.
    Total,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::User => "user_id",
            Self::ApiKey => "api_key_id",
            Self::Agent => "agent",
            Self::Total => "''",
        }
    }
}

/// Which rollup rows count: one tenant, an inclusive UTC day range, and
/// optionally one user or one API key.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    pub tenant_id: String,
    /// `YYYY-MM-DD`, inclusive.
    pub from_day: String,
    /// `YYYY-MM-DD`, inclusive.
    pub to_day: String,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
}

/// Which raw records count: one tenant, the time window
/// `from_ms..to_ms`, and optionally one user or one API key.
#[derive(Debug, Clone, Copy)]
pub struct RecordFilter<'a> {
    pub tenant_id: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub user_id: Option<&'a str>,
    pub api_key_id: Option<&'a str>,
}

/// Totals of one group. Money in nano-USD.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageTotals {
    /// The group's value ('' for "none", or for [`GroupBy::Total`]).
    pub key: String,
    pub requests: i64,
    pub errors: i64,
    pub cache_hits: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nusd: i64,
    pub saved_nusd: i64,
}

macro_rules! sums {
    () => {
        "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, CAST(COALESCE(SUM(errors), 0) AS BIGINT) AS errors, \
         CAST(COALESCE(SUM(cache_hits), 0) AS BIGINT) AS cache_hits, CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
         CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
         CAST(COALESCE(SUM(cost_nusd), 0) AS BIGINT) AS cost_nusd, CAST(COALESCE(SUM(saved_nusd), 0) AS BIGINT) AS saved_nusd"
    };
}

/// A line of an invoice: usage of one model by one agent ('' = direct gateway use).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ModelAgentTotals {
    pub model: String,
    pub agent: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nusd: i64,
}

impl Db {
    /// Totals per group over the filter's days, ordered by group.
    pub async fn usage_summary(&self, filter: &UsageFilter, group_by: GroupBy) -> Result<Vec<UsageTotals>, DbError> {
        let column = group_by.column();
        on_pool!(self, pool => {
            let mut q = QueryBuilder::new(format!("SELECT {column} AS key, "));
            q.push(sums!()).push(" FROM usage_daily WHERE tenant_id = ").push_bind(&filter.tenant_id);
            q.push(" AND day >= ").push_bind(&filter.from_day).push(" AND day <= ").push_bind(&filter.to_day);
            if let Some(user) = &filter.user_id {
                q.push(" AND user_id = ").push_bind(user);
            }
            if let Some(key) = &filter.api_key_id {
                q.push(" AND api_key_id = ").push_bind(key);
            }
            if group_by != GroupBy::Total {
                q.push(format!(" GROUP BY {column} ORDER BY {column}"));
            }
            q.build_query_as::<UsageTotals>().fetch_all(pool).await
        })
        .map_err(DbError::query("usage summary"))
    }

    /// Cost in nano-USD over the filter's days (budget seeding, forecasts).
    pub async fn usage_cost(&self, filter: &UsageFilter) -> Result<i64, DbError> {
        let rows = self.usage_summary(filter, GroupBy::Total).await?;
        Ok(rows.first().map_or(0, |r| r.cost_nusd))
    }

    /// Invoice lines: totals per model and agent over the days, largest first.
    pub async fn usage_by_model_and_agent(&self, tenant_id: &str, from_day: &str, to_day: &str) -> Result<Vec<ModelAgentTotals>, DbError> {
        const SQL: &str = "SELECT model, agent, CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(input_tokens) AS BIGINT) AS input_tokens, \
            CAST(SUM(output_tokens) AS BIGINT) AS output_tokens, CAST(SUM(cost_nusd) AS BIGINT) AS cost_nusd \
            FROM usage_daily WHERE tenant_id = $1 AND day >= $2 AND day <= $3 \
            GROUP BY model, agent ORDER BY cost_nusd DESC, model, agent";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(from_day).bind(to_day).fetch_all(pool).await).map_err(DbError::query("usage by model and agent"))
    }

    /// Raw records of a window, oldest first, the first `limit` after the
    /// record with `after`'s (created_at_ms, id).
    pub async fn usage_records(&self, filter: &RecordFilter<'_>, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<ModelCallRecord>, DbError> {
        const SQL: &str = concat!(
            "SELECT ",
            record_columns!(),
            " FROM model_calls WHERE tenant_id = $1 AND created_at_ms >= $2 AND created_at_ms < $3 \
              AND ($4 IS NULL OR user_id = $4) AND ($5 IS NULL OR api_key_id = $5) \
              AND created_at_ms >= $6 AND ($7 = '' OR created_at_ms > $6 OR id > $7) ORDER BY created_at_ms, id LIMIT $8"
        );
        let (at, id) = after.unwrap_or((i64::MIN, ""));
        on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(filter.tenant_id).bind(filter.from_ms).bind(filter.to_ms).bind(filter.user_id).bind(filter.api_key_id).bind(at).bind(id).bind(limit)
            .fetch_all(pool).await)
        .map_err(DbError::query("list usage records"))
    }

    /// Retention: delete raw records older than `before_ms` (their rollups stay).
    pub async fn delete_usage_records_before(&self, before_ms: i64) -> Result<u64, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM model_calls WHERE created_at_ms < $1").bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))
            .map_err(DbError::query("delete old usage records"))
    }
}
