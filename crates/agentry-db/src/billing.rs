//! Rows of the money side: budgets, rate-limit tiers and their assignments,
//! price history, per-tenant usage settings, invoices and their lines.
//!
//! Prices are append-only (a change inserts a row with its effective time),
//! so the cost of past calls never changes. Money is integer nano-USD.
//!
//! Must not: enforce budgets or limits, or compute costs (agentry-core does).

use agentry_types::InvoiceStatus;

use crate::{Db, DbError, on_pool};

/// A spending limit for one scope of a tenant and one calendar period.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BudgetRow {
    pub id: String,
    pub tenant_id: String,
    /// `tenant`, `user` or `api_key`.
    pub scope: String,
    /// The tenant, user or key id.
    pub scope_id: String,
    /// `daily`, `weekly` or `monthly`.
    pub period: String,
    pub limit_nusd: i64,
    pub soft_limit_nusd: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A named rate-limit tier; `None` means unlimited in that dimension.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TierRow {
    pub name: String,
    pub requests_per_minute: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub concurrent: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub updated_at_ms: i64,
}

/// A tier given to a tenant, a user in it or one of its keys.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TierAssignmentRow {
    pub tenant_id: String,
    pub scope: String,
    pub scope_id: String,
    pub tier: String,
}

/// One price of a model from a point in time on; `tenant_id` '' is platform-wide.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PriceRow {
    pub tenant_id: String,
    pub model: String,
    pub input_per_1k: f64,
    pub output_per_1k: f64,
    pub effective_from_ms: i64,
    pub set_by: String,
}

/// A tenant's cost-optimizer and response-cache switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct UsageSettingsRow {
    pub optimizer_enabled: bool,
    pub response_cache_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvoiceRow {
    pub id: String,
    pub tenant_id: String,
    /// `YYYY-MM`.
    pub period: String,
    #[sqlx(try_from = "String")]
    pub status: InvoiceStatus,
    pub total_nusd: i64,
    pub created_at_ms: i64,
    pub paid_at_ms: Option<i64>,
    pub payment_ref: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvoiceLineRow {
    pub line_no: i32,
    pub model: String,
    pub agent: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub amount_nusd: i64,
}

macro_rules! budget_columns {
    () => {
        "id, tenant_id, scope, scope_id, period, limit_nusd, soft_limit_nusd, created_at_ms, updated_at_ms"
    };
}

macro_rules! invoice_columns {
    () => {
        "id, tenant_id, period, status, total_nusd, created_at_ms, paid_at_ms, payment_ref"
    };
}

impl Db {
    /// Create or replace the budget of (tenant, scope, scope id, period); returns the stored row.
    pub async fn upsert_budget(&self, budget: &BudgetRow) -> Result<BudgetRow, DbError> {
        const SQL: &str = concat!(
            "INSERT INTO budgets (",
            budget_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id, scope, scope_id, period) DO UPDATE SET limit_nusd = excluded.limit_nusd, \
             soft_limit_nusd = excluded.soft_limit_nusd, updated_at_ms = excluded.updated_at_ms RETURNING ",
            budget_columns!()
        );
        let b = budget;
        on_pool!(self, pool => sqlx::query_as(SQL)
            .bind(&b.id).bind(&b.tenant_id).bind(&b.scope).bind(&b.scope_id).bind(&b.period)
            .bind(b.limit_nusd).bind(b.soft_limit_nusd).bind(b.created_at_ms).bind(b.updated_at_ms)
            .fetch_one(pool).await)
        .map_err(DbError::query("upsert budget"))
    }

    pub async fn budgets_of_tenant(&self, tenant_id: &str) -> Result<Vec<BudgetRow>, DbError> {
        const SQL: &str = concat!("SELECT ", budget_columns!(), " FROM budgets WHERE tenant_id = $1 ORDER BY scope, scope_id, period");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).fetch_all(pool).await).map_err(DbError::query("list budgets"))
    }

    /// Whether a budget was deleted.
    pub async fn delete_budget(&self, tenant_id: &str, id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM budgets WHERE tenant_id = $1 AND id = $2").bind(tenant_id).bind(id).execute(pool).await.map(|r| r.rows_affected()))
            .map(|n| n > 0)
            .map_err(DbError::query("delete budget"))
    }

    pub async fn upsert_tier(&self, tier: &TierRow) -> Result<(), DbError> {
        const SQL: &str = "INSERT INTO rate_tiers (name, requests_per_minute, tokens_per_minute, concurrent, requests_per_day, updated_at_ms) \
            VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET requests_per_minute = excluded.requests_per_minute, \
            tokens_per_minute = excluded.tokens_per_minute, concurrent = excluded.concurrent, \
            requests_per_day = excluded.requests_per_day, updated_at_ms = excluded.updated_at_ms";
        let t = tier;
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&t.name).bind(t.requests_per_minute).bind(t.tokens_per_minute).bind(t.concurrent).bind(t.requests_per_day).bind(t.updated_at_ms)
            .execute(pool).await.map(|r| r.rows_affected()))
        .map(drop)
        .map_err(DbError::query("upsert tier"))
    }

    pub async fn tiers(&self) -> Result<Vec<TierRow>, DbError> {
        const SQL: &str = "SELECT name, requests_per_minute, tokens_per_minute, concurrent, requests_per_day, updated_at_ms FROM rate_tiers ORDER BY name";
        on_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await).map_err(DbError::query("list tiers"))
    }

    /// Set (or with `tier` `None`, remove) the tier of a scope.
    pub async fn set_tier_assignment(&self, tenant_id: &str, scope: &str, scope_id: &str, tier: Option<&str>) -> Result<(), DbError> {
        match tier {
            Some(tier) => on_pool!(self, pool => sqlx::query(
                "INSERT INTO rate_assignments (tenant_id, scope, scope_id, tier) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (tenant_id, scope, scope_id) DO UPDATE SET tier = excluded.tier")
                .bind(tenant_id).bind(scope).bind(scope_id).bind(tier).execute(pool).await.map(|r| r.rows_affected())),
            None => on_pool!(self, pool => sqlx::query("DELETE FROM rate_assignments WHERE tenant_id = $1 AND scope = $2 AND scope_id = $3")
                .bind(tenant_id).bind(scope).bind(scope_id).execute(pool).await.map(|r| r.rows_affected())),
        }
        .map(drop)
        .map_err(DbError::query("set tier assignment"))
    }

    pub async fn tier_assignments(&self, tenant_id: &str) -> Result<Vec<TierAssignmentRow>, DbError> {
        const SQL: &str = "SELECT tenant_id, scope, scope_id, tier FROM rate_assignments WHERE tenant_id = $1 ORDER BY scope, scope_id";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).fetch_all(pool).await).map_err(DbError::query("list tier assignments"))
    }

    pub async fn insert_price(&self, price: &PriceRow) -> Result<(), DbError> {
        const SQL: &str = "INSERT INTO model_prices (tenant_id, model, input_per_1k, output_per_1k, effective_from_ms, set_by) VALUES ($1, $2, $3, $4, $5, $6)";
        let p = price;
        on_pool!(self, pool => sqlx::query(SQL)
            .bind(&p.tenant_id).bind(&p.model).bind(p.input_per_1k).bind(p.output_per_1k).bind(p.effective_from_ms).bind(&p.set_by)
            .execute(pool).await.map(|r| r.rows_affected()))
        .map(drop)
        .map_err(DbError::write("insert price"))
    }

    /// The price history of a tenant plus the platform-wide rows, oldest first.
    pub async fn prices_for_tenant(&self, tenant_id: &str) -> Result<Vec<PriceRow>, DbError> {
        const SQL: &str = "SELECT tenant_id, model, input_per_1k, output_per_1k, effective_from_ms, set_by FROM model_prices \
                           WHERE tenant_id = $1 OR tenant_id = '' ORDER BY effective_from_ms, tenant_id, model";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).fetch_all(pool).await).map_err(DbError::query("list prices"))
    }

    pub async fn usage_settings(&self, tenant_id: &str) -> Result<Option<UsageSettingsRow>, DbError> {
        const SQL: &str = "SELECT optimizer_enabled, response_cache_enabled FROM tenant_usage_settings WHERE tenant_id = $1";
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).fetch_optional(pool).await).map_err(DbError::query("read usage settings"))
    }

    pub async fn put_usage_settings(&self, tenant_id: &str, settings: UsageSettingsRow) -> Result<(), DbError> {
        const SQL: &str = "INSERT INTO tenant_usage_settings (tenant_id, optimizer_enabled, response_cache_enabled) VALUES ($1, $2, $3) \
            ON CONFLICT (tenant_id) DO UPDATE SET optimizer_enabled = excluded.optimizer_enabled, response_cache_enabled = excluded.response_cache_enabled";
        on_pool!(self, pool => sqlx::query(SQL).bind(tenant_id).bind(settings.optimizer_enabled).bind(settings.response_cache_enabled).execute(pool).await.map(|r| r.rows_affected()))
            .map(drop)
            .map_err(DbError::query("write usage settings"))
    }

    /// Store an invoice with its lines, replacing an open invoice of the same
    /// period; a paid one is kept and [`DbError::Conflict`] returned.
    pub async fn replace_invoice(&self, invoice: &InvoiceRow, lines: &[InvoiceLineRow]) -> Result<(), DbError> {
        const DELETE_OPEN: &str = "DELETE FROM invoices WHERE tenant_id = $1 AND period = $2 AND status = 'open'";
        const INSERT: &str = concat!("INSERT INTO invoices (", invoice_columns!(), ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
        const INSERT_LINE: &str = "INSERT INTO invoice_lines (invoice_id, line_no, model, agent, requests, input_tokens, output_tokens, amount_nusd) \
                                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let i = invoice;
        on_pool!(self, pool => async {
            let mut tx = crate::begin_write(pool).await?;
            sqlx::query("DELETE FROM invoice_lines WHERE invoice_id IN (SELECT id FROM invoices WHERE tenant_id = $1 AND period = $2 AND status = 'open')")
                .bind(&i.tenant_id).bind(&i.period).execute(&mut *tx).await?;
            sqlx::query(DELETE_OPEN).bind(&i.tenant_id).bind(&i.period).execute(&mut *tx).await?;
            sqlx::query(INSERT)
                .bind(&i.id).bind(&i.tenant_id).bind(&i.period).bind(i.status.as_str()).bind(i.total_nusd)
                .bind(i.created_at_ms).bind(i.paid_at_ms).bind(&i.payment_ref)
                .execute(&mut *tx).await?;
            for l in lines {
                sqlx::query(INSERT_LINE)
                    .bind(&i.id).bind(l.line_no).bind(&l.model).bind(&l.agent).bind(l.requests)
                    .bind(l.input_tokens).bind(l.output_tokens).bind(l.amount_nusd)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await
        }.await)
        .map_err(DbError::write("store invoice"))
    }

    pub async fn invoices_of_tenant(&self, tenant_id: &str) -> Result<Vec<InvoiceRow>, DbError> {
        const SQL: &str = concat!("SELECT ", invoice_columns!(), " FROM invoices WHERE tenant_id = $1 ORDER BY period DESC");
        on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).fetch_all(pool).await).map_err(DbError::query("list invoices"))
    }

    pub async fn invoice(&self, tenant_id: &str, id: &str) -> Result<Option<(InvoiceRow, Vec<InvoiceLineRow>)>, DbError> {
        const SQL: &str = concat!("SELECT ", invoice_columns!(), " FROM invoices WHERE tenant_id = $1 AND id = $2");
        const LINES: &str = "SELECT line_no, model, agent, requests, input_tokens, output_tokens, amount_nusd FROM invoice_lines \
                             WHERE invoice_id = $1 ORDER BY line_no";
        let invoice: Option<InvoiceRow> =
            on_pool!(self, pool => sqlx::query_as(SQL).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("read invoice"))?;
        let Some(invoice) = invoice else { return Ok(None) };
        let lines = on_pool!(self, pool => sqlx::query_as(LINES).bind(id).fetch_all(pool).await).map_err(DbError::query("read invoice lines"))?;
        Ok(Some((invoice, lines)))
    }

    /// Mark an open invoice paid; false when it was not open.
    pub async fn mark_invoice_paid(&self, tenant_id: &str, id: &str, paid_at_ms: i64, payment_ref: &str) -> Result<bool, DbError> {
        const SQL: &str = "UPDATE invoices SET status = 'paid', paid_at_ms = $3, payment_ref = $4 WHERE tenant_id = $1 AND id = $2 AND status = 'open'";
        on_pool!(self, pool => sqlx::query(SQL).bind(tenant_id).bind(id).bind(paid_at_ms).bind(payment_ref).execute(pool).await.map(|r| r.rows_affected()))
            .map(|n| n > 0)
            .map_err(DbError::query("mark invoice paid"))
    }
}
