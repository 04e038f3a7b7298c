//! Budgets: a spending limit per tenant, user or API key and calendar
//! period (UTC day, ISO week, month). A call reserves its estimated cost
//! against every budget that applies before it runs; the difference to the
//! actual cost is settled after, and a failed call gives its reservation
//! back. Reservation is one atomic step across all those budgets (in
//! process, or one Lua script in Redis), so concurrent calls on any number
//! of replicas can never spend past a hard limit.
//!
//! Counters are keyed by budget and period start, so a new period starts
//! from zero; a counter that is missing (new period, new replica without
//! Redis, Redis restarted) is seeded from the usage rollups. The rollups
//! trail the counters by the usage writer's flush interval, the only window
//! in which a reseeded counter can be short.
//!
//! Must not: decide what a call costs (prices.rs) or store usage (the writer).

use std::time::Duration;

use agentry_db::billing::BudgetRow;
use agentry_db::usage::UsageFilter;
use chrono::{Datelike, Days, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Error, Subject};
use crate::coord::{Coord, Reserve};

/// Who a budget or a tier applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Tenant,
    User,
    ApiKey,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::ApiKey => "api_key",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "tenant" => Some(Self::Tenant),
            "user" => Some(Self::User),
            "api_key" => Some(Self::ApiKey),
            _ => None,
        }
    }

    /// The id this scope has for a caller, if the caller has one.
    pub fn id_of(self, subject: &Subject) -> Option<&str> {
        match self {
            Self::Tenant => Some(&subject.tenant_id),
            Self::User => subject.user_id.as_deref(),
            Self::ApiKey => subject.api_key_id.as_deref(),
        }
    }
}

/// A budget period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily",
            Self::Weekly => "weekly",
            Self::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "daily" => Some(Self::Daily),
            "weekly" => Some(Self::Weekly),
            "monthly" => Some(Self::Monthly),
            _ => None,
        }
    }

    /// First day of the period containing `day`, and the first day after it.
    pub fn bounds(self, day: NaiveDate) -> (NaiveDate, NaiveDate) {
        match self {
            Self::Daily => (day, day + Days::new(1)),
            Self::Weekly => {
                let start = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
                (start, start + Days::new(7))
            }
            Self::Monthly => {
                let start = day.with_day(1).unwrap_or(day);
                (start, start + Months::new(1))
            }
        }
    }
}

/// Today in UTC.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Time until the start of `day` (UTC).
pub fn until(day: NaiveDate) -> Duration {
    let start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    (start - Utc::now()).to_std().unwrap_or_default()
}

/// One budget as it applies now.
#[derive(Debug, Clone)]
pub struct ActiveBudget {
    pub row: BudgetRow,
    pub scope: Scope,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub key: String,
}

impl ActiveBudget {
    pub fn new(row: BudgetRow, today: NaiveDate) -> Option<Self> {
        let scope = Scope::parse(&row.scope)?;
        let (start, end) = Period::parse(&row.period)?.bounds(today);
        let key = format!("agentry:budget:{}:{start}", row.id);
        Some(Self { row, scope, start, end, key })
    }

    /// A readable name: `monthly budget of api_key key_123`.
    pub fn describe(&self) -> String {
        format!("{} budget of {} {}", self.row.period, self.row.scope, self.row.scope_id)
    }

    fn ttl(&self) -> Duration {
        until(self.end) + Duration::from_secs(86_400)
    }

    /// Create the counter from the rollups unless it exists.
    async fn seed(&self, coord: &Coord, db: &agentry_db::Db) -> Result<(), Error> {
        coord.seed(&self.key, db.usage_cost(&self.filter()).await?, self.ttl()).await;
        Ok(())
    }

    fn filter(&self) -> UsageFilter {
        let mut filter =
            UsageFilter { tenant_id: self.row.tenant_id.clone(), from_day: self.start.to_string(), to_day: (self.end - Days::new(1)).to_string(), ..UsageFilter::default() };
        match self.scope {
            Scope::Tenant => {}
            Scope::User => filter.user_id = Some(self.row.scope_id.clone()),
            Scope::ApiKey => filter.api_key_id = Some(self.row.scope_id.clone()),
        }
        filter
    }
}

/// The budgets of a policy that apply to a caller today.
pub fn applicable(budgets: &[BudgetRow], subject: &Subject) -> Vec<ActiveBudget> {
    let today = today();
    budgets.iter().filter(|b| Scope::parse(&b.scope).and_then(|s| s.id_of(subject)) == Some(b.scope_id.as_str())).filter_map(|b| ActiveBudget::new(b.clone(), today)).collect()
}

/// A refused reservation.
#[derive(Debug, Clone)]
pub struct BudgetExceeded {
    pub budget: String,
    pub limit_nusd: i64,
    pub spent_nusd: i64,
    pub resets_in: Duration,
    /// The budget that refused.
    pub(super) refused_by: Box<ActiveBudget>,
}

/// An amount held against budgets until the call settles.
#[derive(Debug, Clone, Default)]
pub struct Reservation {
    pub budgets: Vec<ActiveBudget>,
    pub amount_nusd: i64,
}

/// Rounds of seed-and-retry before a reservation gives up (a seed can race with another replica's).
const SEED_ROUNDS: usize = 3;

/// Spent so far in a budget's period: its counter (a zero reservation), seeded from the rollups if new.
pub async fn spent(coord: &Coord, db: &agentry_db::Db, budget: &ActiveBudget) -> Result<i64, Error> {
    let keys = std::slice::from_ref(&budget.key);
    for _ in 0..SEED_ROUNDS {
        match coord.reserve(keys, &[i64::MAX], 0).await {
            Reserve::Reserved(values) => return Ok(values.first().copied().unwrap_or(0)),
            Reserve::Exceeded { spent, .. } => return Ok(spent),
            Reserve::NeedsSeed(_) => budget.seed(coord, db).await?,
        }
    }
    Err(Error::Unavailable("budget counters could not be initialised".into()))
}

/// Hold `amount_nusd` against every budget, or refuse if one would pass its limit.
pub async fn reserve(coord: &Coord, db: &agentry_db::Db, budgets: Vec<ActiveBudget>, amount_nusd: i64) -> Result<Result<Reservation, BudgetExceeded>, Error> {
    if budgets.is_empty() {
        return Ok(Ok(Reservation::default()));
    }
    let keys: Vec<String> = budgets.iter().map(|b| b.key.clone()).collect();
    let limits: Vec<i64> = budgets.iter().map(|b| b.row.limit_nusd).collect();
    for _ in 0..SEED_ROUNDS {
        match coord.reserve(&keys, &limits, amount_nusd).await {
            Reserve::Reserved(_) => return Ok(Ok(Reservation { budgets, amount_nusd })),
            Reserve::Exceeded { index, spent } => {
                let b = &budgets[index];
                return Ok(Err(BudgetExceeded { budget: b.describe(), limit_nusd: b.row.limit_nusd, spent_nusd: spent, resets_in: until(b.end), refused_by: Box::new(b.clone()) }));
            }
            Reserve::NeedsSeed(missing) => {
                for index in missing {
                    budgets[index].seed(coord, db).await?;
                }
            }
        }
    }
    Err(Error::Unavailable("budget counters could not be initialised".into()))
}

/// Replace the held amount by the actual cost; returns each budget with its spent amount after.
pub async fn settle(coord: &Coord, reservation: &Reservation, actual_nusd: i64) -> Vec<(ActiveBudget, i64)> {
    if reservation.budgets.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = reservation.budgets.iter().map(|b| b.key.clone()).collect();
    let after = coord.adjust(&keys, actual_nusd - reservation.amount_nusd).await;
    reservation.budgets.iter().cloned().zip(after).collect()
}
