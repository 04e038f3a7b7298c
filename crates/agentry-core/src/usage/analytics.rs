//! Usage and cost reports from the daily rollups: summaries grouped by day,
//! model, provider, user, key or agent; per-user usage; forecasts to the end
//! of a period; CSV exports. Reporting only — nothing here runs on the
//! request path of a model call.

use agentry_db::ModelCallRecord;
use agentry_db::usage::{GroupBy, RecordFilter, UsageFilter, UsageTotals};
use agentry_types::Permission;
use chrono::{Datelike, Days, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::budgets::{Period, today};
use super::{Accounting, Error, nusd_to_usd};
use crate::TenantAccess;
use crate::page::{Cursor, Page, PageRequest};

/// The years a report may name (calls are recorded in Unix milliseconds).
const FIRST_REPORT_YEAR: i32 = 1970;
const LAST_REPORT_YEAR: i32 = 9999;

/// Most raw records in one export.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

/// A reporting window and grouping, as the API takes it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UsageQuery {
    /// `YYYY-MM-DD` (UTC), inclusive; default: start of `period` or of this month.
    pub from: Option<NaiveDate>,
    /// `YYYY-MM-DD` (UTC), inclusive; default: today.
    pub to: Option<NaiveDate>,
    /// The current day, week or month, instead of `from`/`to`.
    pub period: Option<Period>,
    /// `day`, `model`, `provider`, `user`, `api_key`, `agent` (default `model`).
    pub group_by: Option<String>,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
}

/// One group's totals, money in USD.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    pub key: String,
    pub requests: i64,
    pub errors: i64,
    pub cache_hits: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    /// What the cost optimizer and the response cache saved.
    pub saved_usd: f64,
}

impl From<UsageTotals> for UsageRow {
    fn from(t: UsageTotals) -> Self {
        Self {
            key: t.key,
            requests: t.requests,
            errors: t.errors,
            cache_hits: t.cache_hits,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            cost_usd: nusd_to_usd(t.cost_nusd),
            saved_usd: nusd_to_usd(t.saved_nusd),
        }
    }
}

/// Totals over a window, grouped.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageSummary {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: String,
    pub groups: Vec<UsageRow>,
    pub total: UsageRow,
}

/// Spending so far in a period and where it is heading.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Forecast {
    pub period: Period,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub spent_usd: f64,
    pub days_elapsed: f64,
    pub days_in_period: f64,
    pub daily_average_usd: f64,
    /// Spending at the end of the period if the pace so far continues.
    pub projected_usd: f64,
    /// The tenant's budget for this period, if one is set.
    pub budget_usd: Option<f64>,
}

fn group_by(name: Option<&str>) -> Result<(GroupBy, String), Error> {
    let name = name.unwrap_or("model");
    let group = match name {
        "day" => GroupBy::Day,
        "model" => GroupBy::Model,
        "provider" => GroupBy::Provider,
        "user" => GroupBy::User,
        "api_key" => GroupBy::ApiKey,
        "agent" => GroupBy::Agent,
        _ => return Err(Error::invalid("'group_by' is one of day, model, provider, user, api_key, agent", "group_by")),
    };
    Ok((group, name.to_owned()))
}

impl UsageQuery {
    fn range(&self) -> Result<(NaiveDate, NaiveDate), Error> {
        let today = today();
        let (start, end) = self.period.unwrap_or(Period::Monthly).bounds(today);
        let from = self.from.unwrap_or(start);
        let to = self.to.unwrap_or(if self.period.is_some() { end - Days::new(1) } else { today });
        for (day, param) in [(from, "from"), (to, "to")] {
            if !(FIRST_REPORT_YEAR..=LAST_REPORT_YEAR).contains(&day.year()) {
                return Err(Error::invalid(format!("'{param}' must be a day from {FIRST_REPORT_YEAR} to {LAST_REPORT_YEAR}"), param));
            }
        }
        if from > to {
            return Err(Error::invalid("'from' must not be after 'to'", "from"));
        }
        if (to - from).num_days() > 3660 {
            return Err(Error::invalid("a report spans at most ten years", "from"));
        }
        Ok((from, to))
    }

    /// Which raw records the query names: the tenant's, from the start of
    /// `from` to the end of `to`.
    fn records<'a>(&'a self, tenant_id: &'a str) -> Result<RecordFilter<'a>, Error> {
        let (from, to) = self.range()?;
        let start_ms = |day: NaiveDate| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis();
        let (from_ms, to_ms) = (start_ms(from), start_ms(to + Days::new(1)));
        Ok(RecordFilter { tenant_id, from_ms, to_ms, user_id: self.user_id.as_deref(), api_key_id: self.api_key_id.as_deref() })
    }

    fn filter(&self, tenant_id: &str) -> Result<(UsageFilter, NaiveDate, NaiveDate), Error> {
        let (from, to) = self.range()?;
        let filter =
            UsageFilter { tenant_id: tenant_id.to_owned(), from_day: from.to_string(), to_day: to.to_string(), user_id: self.user_id.clone(), api_key_id: self.api_key_id.clone() };
        Ok((filter, from, to))
    }
}

impl Accounting {
    /// Totals over a window, grouped.
    pub async fn usage_summary(&self, access: &TenantAccess, query: &UsageQuery) -> Result<UsageSummary, Error> {
        let (group, name) = group_by(query.group_by.as_deref())?;
        let (filter, from, to) = query.filter(access.tenant_id())?;
        let db = self.policies().db();
        let groups = db.usage_summary(&filter, group).await?.into_iter().map(UsageRow::from).collect();
        let total = db.usage_summary(&filter, GroupBy::Total).await?.into_iter().next().unwrap_or_default().into();
        Ok(UsageSummary { from, to, group_by: name, groups, total })
    }

    /// One user's usage: their own needs only membership; anyone else's needs
    /// `view_metrics` — without it other users are not found (their existence is not revealed).
    pub async fn user_usage(&self, access: &TenantAccess, user_id: &str, query: &UsageQuery) -> Result<UsageSummary, Error> {
        if access.principal().user_id() != Some(user_id) && !access.can(Permission::ViewMetrics) {
            return Err(Error::NotFound(format!("user '{user_id}'")));
        }
        let query = UsageQuery { user_id: Some(user_id.to_owned()), ..query.clone() };
        self.usage_summary(access, &query).await
    }

    /// Spending so far in the current period and where it is heading.
    pub async fn forecast(&self, access: &TenantAccess, period: Period) -> Result<Forecast, Error> {
        let today = today();
        let (start, end) = period.bounds(today);
        let filter = UsageFilter { tenant_id: access.tenant_id().to_owned(), from_day: start.to_string(), to_day: today.to_string(), ..UsageFilter::default() };
        let spent = self.policies().db().usage_cost(&filter).await?;
        let now = Utc::now();
        let elapsed = (today - start).num_days() as f64 + f64::from(now.num_seconds_from_midnight()) / 86_400.0;
        let total = (end - start).num_days() as f64;
        let daily = if elapsed > 0.0 { nusd_to_usd(spent) / elapsed } else { 0.0 };
        let budget =
            self.policies().tenant(access.tenant_id()).await?.budgets.iter().find(|b| b.scope == "tenant" && b.period == period.as_str()).map(|b| nusd_to_usd(b.limit_nusd));
        Ok(Forecast {
            period,
            period_start: start,
            period_end: end,
            spent_usd: nusd_to_usd(spent),
            days_elapsed: elapsed,
            days_in_period: total,
            daily_average_usd: daily,
            projected_usd: daily * total,
            budget_usd: budget,
        })
    }

    /// Raw usage records of a window as CSV (one row per call, oldest first).
    pub async fn export_csv(&self, access: &TenantAccess, query: &UsageQuery) -> Result<String, Error> {
        let records = self.policies().db().usage_records(&query.records(access.tenant_id())?, None, MAX_EXPORT_ROWS).await?;
        let mut out = csv::Writer::from_writer(Vec::new());
        for record in records {
            out.serialize(UsageRecord::from(record)).map_err(csv_error)?;
        }
        into_string(out)
    }

    /// Raw usage records of a window, oldest first, a page at a time.
    pub async fn usage_records(&self, access: &TenantAccess, query: &UsageQuery, page: &PageRequest) -> Result<Page<UsageRecord>, Error> {
        let rows = self.policies().db().usage_records(&query.records(access.tenant_id())?, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.id), UsageRecord::from))
    }

    /// A summary as CSV.
    pub fn summary_csv(summary: &UsageSummary) -> Result<String, Error> {
        let mut out = csv::Writer::from_writer(Vec::new());
        for row in summary.groups.iter().chain(std::iter::once(&summary.total)) {
            out.serialize(row).map_err(csv_error)?;
        }
        into_string(out)
    }
}

/// One model call, as the records list and the CSV export show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageRecord {
    pub id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub request_id: String,
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub agent: Option<String>,
    pub endpoint: String,
    pub model: String,
    pub provider: String,
    pub status: String,
    pub stream: bool,
    pub cache_hit: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_usd: f64,
    pub saved_usd: f64,
    pub latency_ms: i64,
    /// Time to the first token of a streamed answer.
    pub ttft_ms: Option<i64>,
}

impl From<ModelCallRecord> for UsageRecord {
    fn from(r: ModelCallRecord) -> Self {
        Self {
            created_at: chrono::DateTime::from_timestamp_millis(r.created_at_ms).unwrap_or_default().to_rfc3339(),
            id: r.id,
            request_id: r.request_id,
            user_id: r.user_id,
            api_key_id: r.api_key_id,
            agent: r.agent,
            endpoint: r.endpoint,
            model: r.model,
            provider: r.provider,
            status: r.status,
            stream: r.stream,
            cache_hit: r.cache_hit,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cached_tokens: r.cached_tokens,
            cost_usd: nusd_to_usd(r.cost_nusd),
            saved_usd: nusd_to_usd(r.saved_nusd),
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
        }
    }
}

pub(super) fn csv_error(error: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("csv: {error}"))
}

pub(super) fn into_string(writer: csv::Writer<Vec<u8>>) -> Result<String, Error> {
    let bytes = writer.into_inner().map_err(csv_error)?;
    String::from_utf8(bytes).map_err(csv_error)
}
