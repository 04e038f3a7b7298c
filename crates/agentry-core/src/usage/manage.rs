//! Management of budgets, tiers and their assignments, price overrides and
//! the optimizer/cache switches. Route rules check `manage_billing` /
//! `view_metrics`; what only platform administrators may do (tier table,
//! a tenant's own tier, platform-wide prices) is checked here.

use agentry_db::billing::{BudgetRow, PriceRow, TierRow};
use serde::{Deserialize, Serialize};

use super::budgets::{self, ActiveBudget, Period, Scope};
use super::policy::Tier;
use super::{Accounting, Error, TenantUsageSettings, nusd_to_usd, usd_to_nusd};
use crate::TenantAccess;
use crate::identity::now_ms;

/// A budget to set (`POST /costs/budget`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetInput {
    pub scope: Scope,
    /// User or key id; omitted for the tenant scope.
    #[serde(default)]
    pub scope_id: Option<String>,
    pub period: Period,
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    pub limit_usd: f64,
    /// Spending at which an alert is raised (below the limit).
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 1000000000)]
    pub soft_limit_usd: Option<f64>,
}

/// A budget and where it stands in the current period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetView {
    pub id: String,
    pub scope: String,
    pub scope_id: String,
    pub period: String,
    pub limit_usd: f64,
    pub soft_limit_usd: Option<f64>,
    pub spent_usd: f64,
    pub remaining_usd: f64,
    pub period_start: String,
    pub period_end: String,
}

/// Where a tier is assigned.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TierAssignmentInput {
    pub scope: Scope,
    #[serde(default)]
    pub scope_id: Option<String>,
    /// `None` removes the assignment.
    pub tier: Option<String>,
}

/// A tier assigned in the tenant.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TierAssignment {
    /// `tenant`, `user` or `api_key`.
    pub scope: String,
    pub scope_id: String,
    pub tier: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceInput {
    pub input_per_1k: f64,
    pub output_per_1k: f64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PriceView {
    pub model: String,
    /// `tenant` or `platform`.
    pub source: &'static str,
    pub input_per_1k: f64,
    pub output_per_1k: f64,
    pub effective_from_ms: i64,
    pub set_by: String,
}

fn money(value: f64, param: &'static str) -> Result<i64, Error> {
    if !value.is_finite() || value <= 0.0 || value > 1e9 {
        return Err(Error::invalid(format!("'{param}' must be a positive amount in USD"), param));
    }
    Ok(usd_to_nusd(value))
}

impl Accounting {
    /// The id a scope refers to in a tenant, checked to exist there.
    async fn scope_id(&self, access: &TenantAccess, scope: Scope, scope_id: Option<String>) -> Result<String, Error> {
        let db = self.policies().db();
        match (scope, scope_id) {
            (Scope::Tenant, None) => Ok(access.tenant_id().to_owned()),
            (Scope::Tenant, Some(id)) if id == access.tenant_id() || id == access.tenant_slug() => Ok(access.tenant_id().to_owned()),
            (Scope::Tenant, Some(_)) => Err(Error::invalid("'scope_id' of a tenant budget must be this tenant", "scope_id")),
            (_, None) => Err(Error::invalid("'scope_id' is required for user and api_key scopes", "scope_id")),
            (Scope::User, Some(id)) => match db.membership(access.tenant_id(), &id).await? {
                Some(_) => Ok(id),
                None => Err(Error::NotFound(format!("user '{id}' in this tenant"))),
            },
            (Scope::ApiKey, Some(id)) => match db.api_key(access.tenant_id(), &id).await? {
                Some(_) => Ok(id),
                None => Err(Error::NotFound(format!("API key '{id}'"))),
            },
        }
    }

    async fn budget_view(&self, row: BudgetRow) -> Result<Option<BudgetView>, Error> {
        let Some(active) = ActiveBudget::new(row, budgets::today()) else { return Ok(None) };
        let spent = budgets::spent(self.coord(), self.policies().db(), &active).await?;
        let r = &active.row;
        Ok(Some(BudgetView {
            id: r.id.clone(),
            scope: r.scope.clone(),
            scope_id: r.scope_id.clone(),
            period: r.period.clone(),
            limit_usd: nusd_to_usd(r.limit_nusd),
            soft_limit_usd: r.soft_limit_nusd.map(nusd_to_usd),
            spent_usd: nusd_to_usd(spent),
            remaining_usd: nusd_to_usd((r.limit_nusd - spent).max(0)),
            period_start: active.start.to_string(),
            period_end: active.end.to_string(),
        }))
    }

    /// Create or change the budget of a scope and period.
    pub async fn set_budget(&self, access: &TenantAccess, input: BudgetInput) -> Result<BudgetView, Error> {
        let limit = money(input.limit_usd, "limit_usd")?;
        let soft = input.soft_limit_usd.map(|v| money(v, "soft_limit_usd")).transpose()?;
        if soft.is_some_and(|s| s >= limit) {
            return Err(Error::invalid("'soft_limit_usd' must be below 'limit_usd'", "soft_limit_usd"));
        }
        let scope_id = self.scope_id(access, input.scope, input.scope_id).await?;
        let now = now_ms();
        let row = BudgetRow {
            id: format!("bud_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: access.tenant_id().to_owned(),
            scope: input.scope.as_str().to_owned(),
            scope_id,
            period: input.period.as_str().to_owned(),
            limit_nusd: limit,
            soft_limit_nusd: soft,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let stored = self.policies().db().upsert_budget(&row).await?;
        self.policies().invalidate(Some(access.tenant_id()));
        self.budget_view(stored).await?.ok_or_else(|| Error::Unavailable("stored budget is unreadable".into()))
    }

    pub async fn budgets(&self, access: &TenantAccess) -> Result<Vec<BudgetView>, Error> {
        let mut views = Vec::new();
        for row in self.policies().db().budgets_of_tenant(access.tenant_id()).await? {
            views.extend(self.budget_view(row).await?);
        }
        Ok(views)
    }

    pub async fn delete_budget(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        if !self.policies().db().delete_budget(access.tenant_id(), id).await? {
            return Err(Error::NotFound(format!("budget '{id}'")));
        }
        self.policies().invalidate(Some(access.tenant_id()));
        Ok(())
    }

    /// Every tier, built-in and stored, by name.
    pub async fn tiers(&self) -> Result<Vec<Tier>, Error> {
        let mut tiers: Vec<Tier> = self.policies().tiers().await?.values().cloned().collect();
        tiers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tiers)
    }

    /// Create or change a tier (platform administrators; the route checks).
    pub async fn put_tier(&self, tier: Tier) -> Result<Tier, Error> {
        let name_ok = !tier.name.is_empty() && tier.name.len() <= 64 && tier.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(Error::invalid("a tier name is 1-64 letters, digits, '-' or '_'", "name"));
        }
        let limits = [tier.requests_per_minute, tier.tokens_per_minute, tier.concurrent, tier.requests_per_day];
        if limits.iter().any(|l| l == &Some(0)) {
            return Err(Error::invalid("a limit must be at least 1 (omit it for no limit)", "limits"));
        }
        if limits.iter().flatten().any(|l| i64::try_from(*l).is_err()) {
            return Err(Error::invalid(format!("a limit must be at most {} (omit it for no limit)", i64::MAX), "limits"));
        }
        let signed = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok());
        let row = TierRow {
            name: tier.name.clone(),
            requests_per_minute: signed(tier.requests_per_minute),
            tokens_per_minute: signed(tier.tokens_per_minute),
            concurrent: signed(tier.concurrent),
            requests_per_day: signed(tier.requests_per_day),
            updated_at_ms: now_ms(),
        };
        self.policies().db().upsert_tier(&row).await?;
        self.policies().invalidate_tiers();
        Ok(tier)
    }

    /// Assign (or remove) a tier. Only platform administrators change a tenant's own tier.
    pub async fn assign_tier(&self, access: &TenantAccess, input: TierAssignmentInput) -> Result<(), Error> {
        if input.scope == Scope::Tenant && !access.principal().is_platform_admin() {
            return Err(Error::Forbidden("only platform administrators set a tenant's tier".into()));
        }
        if let Some(tier) = &input.tier
            && !self.policies().tiers().await?.contains_key(tier)
        {
            return Err(Error::NotFound(format!("tier '{tier}'")));
        }
        let scope_id = self.scope_id(access, input.scope, input.scope_id).await?;
        self.policies().db().set_tier_assignment(access.tenant_id(), input.scope.as_str(), &scope_id, input.tier.as_deref()).await?;
        self.policies().invalidate(Some(access.tenant_id()));
        Ok(())
    }

    pub async fn tier_assignments(&self, access: &TenantAccess) -> Result<Vec<TierAssignment>, Error> {
        let rows = self.policies().db().tier_assignments(access.tenant_id()).await?;
        Ok(rows.into_iter().map(|r| TierAssignment { scope: r.scope, scope_id: r.scope_id, tier: r.tier }).collect())
    }

    /// Set a price from now on: for one tenant, or platform-wide (`tenant` `None`).
    pub async fn set_price(&self, tenant: Option<&TenantAccess>, model: &str, input: PriceInput, set_by: &str) -> Result<PriceView, Error> {
        let valid = |v: f64| v.is_finite() && (0.0..=1000.0).contains(&v);
        if !valid(input.input_per_1k) || !valid(input.output_per_1k) {
            return Err(Error::invalid("prices are USD per 1K tokens between 0 and 1000", "input_per_1k"));
        }
        if model.is_empty() || model.chars().count() > 200 {
            return Err(Error::invalid("the model name must be 1-200 characters", "model"));
        }
        let row = PriceRow {
            tenant_id: tenant.map(|t| t.tenant_id().to_owned()).unwrap_or_default(),
            model: model.to_owned(),
            input_per_1k: input.input_per_1k,
            output_per_1k: input.output_per_1k,
            effective_from_ms: now_ms(),
            set_by: set_by.to_owned(),
        };
        self.policies().db().insert_price(&row).await.map_err(|e| match e {
            agentry_db::DbError::Conflict { .. } => Error::Conflict("a price for this model was set in the same millisecond; retry".into()),
            other => other.into(),
        })?;
        self.policies().invalidate(tenant.map(|t| t.tenant_id()));
        Ok(price_view(row))
    }

    /// The price history visible to a tenant (its overrides and the platform's), oldest first.
    pub async fn price_history(&self, access: &TenantAccess) -> Result<Vec<PriceView>, Error> {
        Ok(self.policies().db().prices_for_tenant(access.tenant_id()).await?.into_iter().map(price_view).collect())
    }

    pub async fn usage_settings(&self, access: &TenantAccess) -> Result<TenantUsageSettings, Error> {
        Ok(self.policies().tenant(access.tenant_id()).await?.settings)
    }

    pub async fn put_usage_settings(&self, access: &TenantAccess, settings: TenantUsageSettings) -> Result<TenantUsageSettings, Error> {
        self.policies().db().put_usage_settings(access.tenant_id(), settings.into()).await?;
        self.policies().invalidate(Some(access.tenant_id()));
        Ok(settings)
    }
}

fn price_view(row: PriceRow) -> PriceView {
    PriceView {
        source: if row.tenant_id.is_empty() { "platform" } else { "tenant" },
        model: row.model,
        input_per_1k: row.input_per_1k,
        output_per_1k: row.output_per_1k,
        effective_from_ms: row.effective_from_ms,
        set_by: row.set_by,
    }
}
