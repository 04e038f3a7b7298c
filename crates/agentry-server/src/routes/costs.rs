//! Usage, costs, budgets, prices, rate-limit tiers, optimizer/cache settings
//! and invoices. The tenant comes from `X-Agentry-Tenant`, the API key, or
//! the user's only membership; permissions are in `access.rs`.

use agentry_core::TenantAccess;
use agentry_core::page::PageRequest;
use agentry_core::usage::TenantUsageSettings;
use agentry_core::usage::analytics::{UsageQuery, UsageRow};
use agentry_core::usage::manage::{BudgetInput, PriceInput, PriceView, TierAssignmentInput};
use agentry_core::usage::policy::Tier;
use agentry_core::usage::{Accounting, Period};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::extractors::ApiJson;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/costs/stats", get(stats))
        .route("/api/v1/costs/usage/{user}", get(user_usage))
        .route("/api/v1/costs/forecast", get(forecast))
        .route("/api/v1/costs/budget", post(set_budget))
        .route("/api/v1/costs/budgets", get(budgets).post(set_budget))
        .route("/api/v1/costs/budgets/{id}", delete(delete_budget))
        .route("/api/v1/costs/prices", get(prices).post(set_price))
        .route("/api/v1/costs/settings", get(settings).put(put_settings))
        .route("/api/v1/usage/summary", get(summary))
        .route("/api/v1/usage/records", get(records))
        .route("/api/v1/usage/export", get(export))
        .route("/api/v1/rate-limits/tiers", get(tiers))
        .route("/api/v1/rate-limits/assignments", get(assignments).put(assign))
        .route("/api/v1/billing/invoices", get(invoices).post(generate_invoice))
        .route("/api/v1/billing/invoices/{id}", get(invoice))
        .route("/api/v1/billing/invoices/{id}/pay", post(pay_invoice))
        .route("/api/v1/admin/prices", post(set_platform_price))
        .route("/api/v1/admin/rate-limits/tiers/{name}", put(put_tier))
}

fn accounting(state: &AppState) -> &Accounting {
    state.gateway.accounting()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryParams {
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    period: Option<Period>,
    group_by: Option<String>,
    user_id: Option<String>,
    api_key_id: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

impl SummaryParams {
    fn query(&self) -> UsageQuery {
        UsageQuery { from: self.from, to: self.to, period: self.period, group_by: self.group_by.clone(), user_id: self.user_id.clone(), api_key_id: self.api_key_id.clone() }
    }

    fn csv(&self) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            None | Some("json") => Ok(false),
            Some("csv") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!("'format' is json or csv, got '{other}'"), "format")),
        }
    }
}

fn csv_response(body: String, filename: &str) -> Response {
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\""))], body).into_response()
}

async fn summary(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(p): Query<SummaryParams>) -> Result<Response, ApiError> {
    let summary = accounting(&state).usage_summary(&access, &p.query()).await?;
    if p.csv()? {
        return Ok(csv_response(Accounting::summary_csv(&summary)?, "usage-summary.csv"));
    }
    Ok(Json(summary).into_response())
}

async fn stats(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(p): Query<SummaryParams>) -> Result<Response, ApiError> {
    let accounting = accounting(&state);
    let by_model = accounting.usage_summary(&access, &UsageQuery { group_by: Some("model".into()), ..p.query() }).await?;
    let by_day = accounting.usage_summary(&access, &UsageQuery { group_by: Some("day".into()), ..p.query() }).await?;
    Ok(Json(CostStats { from: by_model.from, to: by_model.to, total: by_model.total, by_model: by_model.groups, by_day: by_day.groups }).into_response())
}

/// Totals of a window, by model and by day.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CostStats {
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    total: UsageRow,
    by_model: Vec<UsageRow>,
    by_day: Vec<UsageRow>,
}

/// The registry's default prices and the tenant's price history.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Prices {
    defaults: Vec<DefaultPrice>,
    history: Vec<PriceView>,
}

/// A model's price as the registry sets it, in USD per 1K tokens.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct DefaultPrice {
    model: String,
    input_per_1k: f64,
    output_per_1k: f64,
}

async fn user_usage(
    State(state): State<AppState>,
    Extension(access): Extension<TenantAccess>,
    Path(user): Path<String>,
    Query(p): Query<SummaryParams>,
) -> Result<Response, ApiError> {
    let summary = accounting(&state).user_usage(&access, &user, &p.query()).await?;
    if p.csv()? {
        return Ok(csv_response(Accounting::summary_csv(&summary)?, "user-usage.csv"));
    }
    Ok(Json(summary).into_response())
}

/// The window and filters of the records list, and its page.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsParams {
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    period: Option<Period>,
    user_id: Option<String>,
    api_key_id: Option<String>,
    limit: Option<i64>,
    after: Option<String>,
}

async fn records(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(p): Query<RecordsParams>) -> Result<Response, ApiError> {
    let query = UsageQuery { from: p.from, to: p.to, period: p.period, group_by: None, user_id: p.user_id, api_key_id: p.api_key_id };
    let page = PageRequest::parse(p.limit, p.after.as_deref())?;
    Ok(Json(accounting(&state).usage_records(&access, &query, &page).await?).into_response())
}

async fn export(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(p): Query<SummaryParams>) -> Result<Response, ApiError> {
    Ok(csv_response(accounting(&state).export_csv(&access, &p.query()).await?, "usage-records.csv"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastParams {
    period: Option<Period>,
}

async fn forecast(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Query(p): Query<ForecastParams>) -> Result<Response, ApiError> {
    Ok(Json(accounting(&state).forecast(&access, p.period.unwrap_or(Period::Monthly)).await?).into_response())
}

async fn set_budget(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<BudgetInput>) -> Result<Response, ApiError> {
    Ok(Json(accounting(&state).set_budget(&access, input).await?).into_response())
}

async fn budgets(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": accounting(&state).budgets(&access).await? })).into_response())
}

async fn delete_budget(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    accounting(&state).delete_budget(&access, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PriceBody {
    #[schema(min_length = 1, max_length = 200)]
    model: String,
    /// USD per 1K input tokens.
    #[schema(minimum = 0, maximum = 1000)]
    input_per_1k: f64,
    /// USD per 1K output tokens.
    #[schema(minimum = 0, maximum = 1000)]
    output_per_1k: f64,
}

fn actor_name(access_principal: &agentry_core::Principal) -> String {
    let actor = access_principal.actor();
    let (kind, id) = actor.parts();
    id.map_or_else(|| kind.to_owned(), |id| format!("{kind}:{id}"))
}

async fn set_price(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(body): ApiJson<PriceBody>) -> Result<Response, ApiError> {
    let input = PriceInput { input_per_1k: body.input_per_1k, output_per_1k: body.output_per_1k };
    let view = accounting(&state).set_price(Some(&access), &body.model, input, &actor_name(access.principal())).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn set_platform_price(
    State(state): State<AppState>,
    Extension(principal): Extension<agentry_core::Principal>,
    ApiJson(body): ApiJson<PriceBody>,
) -> Result<Response, ApiError> {
    let input = PriceInput { input_per_1k: body.input_per_1k, output_per_1k: body.output_per_1k };
    let view = accounting(&state).set_price(None, &body.model, input, &actor_name(&principal)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn prices(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    let defaults = state
        .gateway
        .router()
        .registry()
        .iter()
        .map(|e| DefaultPrice { model: e.name.clone(), input_per_1k: e.price.input_per_1k, output_per_1k: e.price.output_per_1k })
        .collect();
    Ok(Json(Prices { defaults, history: accounting(&state).price_history(&access).await? }).into_response())
}

async fn settings(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(accounting(&state).usage_settings(&access).await?).into_response())
}

async fn put_settings(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(body): ApiJson<TenantUsageSettings>) -> Result<Response, ApiError> {
    Ok(Json(accounting(&state).put_usage_settings(&access, body).await?).into_response())
}

async fn tiers(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": accounting(&state).tiers().await? })).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TierBody {
    /// Each limit: at least 1; absent or null for no limit.
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    requests_per_minute: Option<u64>,
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    tokens_per_minute: Option<u64>,
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    concurrent: Option<u64>,
    #[schema(minimum = 1, maximum = 9223372036854775807_i64)]
    requests_per_day: Option<u64>,
}

async fn put_tier(State(state): State<AppState>, Path(name): Path<String>, ApiJson(body): ApiJson<TierBody>) -> Result<Response, ApiError> {
    let tier = Tier {
        name,
        requests_per_minute: body.requests_per_minute,
        tokens_per_minute: body.tokens_per_minute,
        concurrent: body.concurrent,
        requests_per_day: body.requests_per_day,
    };
    Ok(Json(accounting(&state).put_tier(tier).await?).into_response())
}

async fn assignments(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": accounting(&state).tier_assignments(&access).await? })).into_response())
}

async fn assign(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(input): ApiJson<TierAssignmentInput>) -> Result<Response, ApiError> {
    accounting(&state).assign_tier(&access, input).await?;
    Ok(Json(json!({ "data": accounting(&state).tier_assignments(&access).await? })).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvoiceBody {
    /// `YYYY-MM`.
    #[schema(pattern = r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    period: String,
}

async fn generate_invoice(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, ApiJson(body): ApiJson<InvoiceBody>) -> Result<Response, ApiError> {
    Ok((StatusCode::CREATED, Json(accounting(&state).generate_invoice(&access, &body.period).await?)).into_response())
}

async fn invoices(State(state): State<AppState>, Extension(access): Extension<TenantAccess>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "data": accounting(&state).invoices(&access).await? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceParams {
    /// `json` (default), `csv` or `html`.
    format: Option<String>,
}

async fn invoice(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>, Query(p): Query<InvoiceParams>) -> Result<Response, ApiError> {
    let invoice = accounting(&state).invoice(&access, &id).await?;
    match p.format.as_deref() {
        None | Some("json") => Ok(Json(invoice).into_response()),
        Some("csv") => Ok(csv_response(Accounting::invoice_csv(&invoice)?, &format!("{}.csv", invoice.id))),
        // A page that renders: its own CSP (no scripts, nothing loaded, no forms), as every rendered page must set.
        Some("html") => Ok((
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'; sandbox")],
            Accounting::invoice_html(&invoice),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(format!("'format' is json, csv or html, got '{other}'"), "format")),
    }
}

async fn pay_invoice(State(state): State<AppState>, Extension(access): Extension<TenantAccess>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(accounting(&state).pay_invoice(&access, &id, state.payments.as_ref()).await?).into_response())
}
