//! What applies to a tenant's calls, cached: budgets, tier assignments,
//! price overrides and optimizer/cache switches (per tenant), and the tier
//! table (platform-wide). Entries live [`POLICY_TTL`]; a change made through
//! this replica evicts its entry at once, other replicas see it within the TTL.
//!
//! Must not: enforce anything (budgets.rs and limits.rs do).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentry_db::Db;
use agentry_db::billing::{BudgetRow, TierAssignmentRow, TierRow};
use agentry_llm::pricing::Price;
use moka::sync::Cache;
use serde::{Deserialize, Serialize};

use super::{Error, TenantUsageSettings};

/// How long a cached policy is used before it is read again.
pub const POLICY_TTL: Duration = Duration::from_secs(5);

/// Everything about one tenant that a model call consults.
#[derive(Debug)]
pub struct TenantPolicy {
    pub budgets: Vec<BudgetRow>,
    pub assignments: Vec<TierAssignmentRow>,
    /// Current price per public model name: the tenant's override, else the platform-wide one.
    pub prices: HashMap<String, Price>,
    pub settings: TenantUsageSettings,
}

/// A rate-limit tier. `None` = unlimited in that dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tier {
    pub name: String,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub concurrent: Option<u64>,
    pub requests_per_day: Option<u64>,
}

/// The built-in tiers; a stored tier of the same name replaces one.
pub fn builtin_tiers() -> Vec<Tier> {
    let tier = |name: &str, rpm, tpm, concurrent, daily| Tier {
        name: name.to_owned(),
        requests_per_minute: Some(rpm),
        tokens_per_minute: Some(tpm),
        concurrent: Some(concurrent),
        requests_per_day: Some(daily),
    };
    vec![tier("free", 10, 10_000, 2, 200), tier("basic", 60, 100_000, 10, 5_000), tier("premium", 600, 1_000_000, 50, 100_000)]
}

impl From<TierRow> for Tier {
    fn from(row: TierRow) -> Self {
        let unsigned = |v: Option<i64>| v.map(|v| v.max(0) as u64);
        Self {
            name: row.name,
            requests_per_minute: unsigned(row.requests_per_minute),
            tokens_per_minute: unsigned(row.tokens_per_minute),
            concurrent: unsigned(row.concurrent),
            requests_per_day: unsigned(row.requests_per_day),
        }
    }
}

/// The caches. Cheap to clone.
#[derive(Clone)]
pub struct Policies {
    db: Db,
    tenants: Cache<String, Arc<TenantPolicy>>,
    tiers: Cache<(), Arc<HashMap<String, Tier>>>,
    defaults: TenantUsageSettings,
}

impl Policies {
    pub fn new(db: Db, defaults: TenantUsageSettings) -> Self {
        Self { db, tenants: Cache::builder().max_capacity(100_000).time_to_live(POLICY_TTL).build(), tiers: Cache::builder().time_to_live(POLICY_TTL).build(), defaults }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub async fn tenant(&self, tenant_id: &str) -> Result<Arc<TenantPolicy>, Error> {
        if let Some(policy) = self.tenants.get(tenant_id) {
            return Ok(policy);
        }
        let policy = Arc::new(self.load(tenant_id).await?);
        self.tenants.insert(tenant_id.to_owned(), policy.clone());
        Ok(policy)
    }

    async fn load(&self, tenant_id: &str) -> Result<TenantPolicy, Error> {
        let budgets = self.db.budgets_of_tenant(tenant_id).await?;
        let assignments = self.db.tier_assignments(tenant_id).await?;
        let settings = self.db.usage_settings(tenant_id).await?.map_or(self.defaults, TenantUsageSettings::from);
        // Oldest first, platform rows before the tenant's at the same time: later rows win,
        // and a tenant override wins over a platform one whatever their times.
        let mut rows = self.db.prices_for_tenant(tenant_id).await?;
        rows.sort_by_key(|r| (!r.tenant_id.is_empty(), r.effective_from_ms));
        let now = crate::identity::now_ms();
        let prices = rows.into_iter().filter(|r| r.effective_from_ms <= now).map(|r| (r.model, Price { input_per_1k: r.input_per_1k, output_per_1k: r.output_per_1k })).collect();
        Ok(TenantPolicy { budgets, assignments, prices, settings })
    }

    /// Forget a tenant's cached policy after a change (the platform-wide
    /// price table is part of every tenant's policy: `None` forgets all).
    pub fn invalidate(&self, tenant_id: Option<&str>) {
        match tenant_id {
            Some(id) => self.tenants.invalidate(id),
            None => self.tenants.invalidate_all(),
        }
    }

    /// Built-in tiers overlaid with stored ones, by name.
    pub async fn tiers(&self) -> Result<Arc<HashMap<String, Tier>>, Error> {
        if let Some(tiers) = self.tiers.get(&()) {
            return Ok(tiers);
        }
        let mut tiers: HashMap<String, Tier> = builtin_tiers().into_iter().map(|t| (t.name.clone(), t)).collect();
        for row in self.db.tiers().await? {
            tiers.insert(row.name.clone(), row.into());
        }
        let tiers = Arc::new(tiers);
        self.tiers.insert((), tiers.clone());
        Ok(tiers)
    }

    pub fn invalidate_tiers(&self) {
        self.tiers.invalidate_all();
    }
}
