//! Schedules: a cron expression in a time zone ([`timing`]) and an action
//! carried out at each due time — run an agent with an input (its answer
//! goes to a thread when one is named, and to webhooks as `run.completed`),
//! or fetch a collection's URL documents again. Every replica polls for due
//! schedules ([`fire`]); a due time is fired by exactly one of them (the
//! store's compare-and-set, [`agentry_db::schedules`]) and carried out as a
//! job (kind `schedule`), so a crash between firing and finishing loses
//! nothing. Each fire is kept in the schedule's history and published as a
//! `schedule.fired` event.
//!
//! Who: managing schedules needs `manage_integrations` (the route table
//! checks it). A member sees and changes the schedules they own;
//! `manage_tenant` sees all of the tenant's. A schedule acts for its owner —
//! whoever created it or last changed its timing or action, or enabled it —
//! with their access as it stands at each fire (while they still hold
//! `manage_integrations`); a fire by hand acts for whoever fired it.
//!
//! Must not: know how an agent runs or a document is fetched (agents and
//! knowledge do), or fire anything but through the store's compare-and-set.

mod fire;
pub mod timing;

use std::sync::Arc;

use agentry_db::Db;
use agentry_db::schedules::{ScheduleRecord, ScheduleRunRow};
use agentry_types::{JobKind, Permission};
use serde::{Deserialize, Serialize};

use crate::agents::Agents;
use crate::error::Error;
use crate::events::Events;
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{Jobs, owner_of};
use crate::knowledge::Knowledge;
use crate::knowledge::connectors::ConnectorSpec;
use crate::page::{Cursor, Page, PageRequest};
pub use timing::Misfire;
use timing::Timing;

/// Operator settings of schedules (`[schedules]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulesSettings {
    /// How often this process looks for due schedules (ms).
    pub poll_ms: u64,
    /// A due time found later than this was missed (no server ran): its
    /// schedule's `misfire` policy applies.
    pub misfire_grace_secs: u64,
    /// The shortest time between two due times of one schedule.
    pub min_interval_secs: u64,
    /// Schedules a tenant may have.
    pub max_per_tenant: usize,
    /// How long a schedule's history keeps a fire.
    pub history_days: u64,
    /// Schedule actions carried out at once by this process.
    pub workers: usize,
}

impl Default for SchedulesSettings {
    fn default() -> Self {
        Self { poll_ms: 1000, misfire_grace_secs: 60, min_interval_secs: 60, max_per_tenant: 100, history_days: 30, workers: 2 }
    }
}

impl SchedulesSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(100..=60_000).contains(&self.poll_ms) {
            return Err("schedules.poll_ms must be 100-60000".into());
        }
        if !(1..=86_400).contains(&self.misfire_grace_secs) {
            return Err("schedules.misfire_grace_secs must be 1-86400".into());
        }
        if !(1..=86_400).contains(&self.min_interval_secs) {
            return Err("schedules.min_interval_secs must be 1-86400".into());
        }
        if !(1..=10_000).contains(&self.max_per_tenant) {
            return Err("schedules.max_per_tenant must be 1-10000".into());
        }
        if !(1..=3650).contains(&self.history_days) {
            return Err("schedules.history_days must be 1-3650".into());
        }
        if !(1..=64).contains(&self.workers) {
            return Err("schedules.workers must be 1-64".into());
        }
        Ok(())
    }
}

/// What a schedule does at each due time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleAction {
    /// Queue a background run of `agent` with `input` as the user's
    /// message, on `thread_id` when given (the answer joins that thread).
    RunAgent {
        agent: String,
        input: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread_id: Option<String>,
    },
    /// Fetch every document of the collection that came from a URL again (a new version each).
    RefetchCollection { collection_id: String },
    /// Collect documents into the collection with a connector (sitemap, feed or crawl).
    RunConnector { collection_id: String, connector: ConnectorSpec },
}

impl ScheduleAction {
    fn kind(&self) -> &'static str {
        match self {
            Self::RunAgent { .. } => "run_agent",
            Self::RefetchCollection { .. } => "refetch_collection",
            Self::RunConnector { .. } => "run_connector",
        }
    }
}

/// The longest `input` of a `run_agent` action.
const MAX_INPUT_CHARS: usize = 32_000;
/// The longest schedule name.
const MAX_NAME_CHARS: usize = 200;
/// The longest cron expression.
const MAX_CRON_CHARS: usize = 120;

/// What a schedule is created with.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    pub name: String,
    /// Five fields (minute hour day-of-month month day-of-week), or six with
    /// seconds first; `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    pub cron: String,
    /// An IANA time zone the expression is read in (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    pub action: ScheduleAction,
    /// What a due time missed while no server ran becomes (default `catch_up_once`).
    #[serde(default)]
    pub misfire: Misfire,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn utc() -> String {
    "UTC".into()
}

fn enabled() -> bool {
    true
}

/// What a change of a schedule sets (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSchedule {
    pub name: Option<String>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
    pub action: Option<ScheduleAction>,
    pub misfire: Option<Misfire>,
    pub enabled: Option<bool>,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    /// The expression in words.
    pub description: String,
    pub action: ScheduleAction,
    pub misfire: Misfire,
    pub enabled: bool,
    /// Who it acts for (`user:<id>` or `master`).
    pub owner: String,
    /// The next due time (null while disabled).
    pub next_fire_ms: Option<i64>,
    pub last_fired_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One fire of a schedule and what it did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleRunView {
    pub id: String,
    pub schedule_id: String,
    /// The due time it is for (the time it was asked for, when fired by hand).
    pub due_ms: i64,
    pub fired_at_ms: i64,
    /// `cron` (on time), `catch_up` (a time missed while no server ran, fired once), `skip` (missed and skipped) or `manual`.
    pub trigger: String,
    /// `queued`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    /// The job that carries it out.
    pub job_id: Option<String>,
    /// The agent run it queued (`run_agent`), and where that run is now.
    pub run_id: Option<String>,
    pub run_status: Option<String>,
    /// The action's outcome (`refetch_collection`: documents queued and skipped).
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub finished_at_ms: Option<i64>,
}

impl From<ScheduleRunRow> for ScheduleRunView {
    fn from(row: ScheduleRunRow) -> Self {
        let r = row.record;
        Self {
            result: r.result.as_deref().and_then(|json| serde_json::from_str(json).ok()),
            id: r.id,
            schedule_id: r.schedule_id,
            due_ms: r.due_ms,
            fired_at_ms: r.fired_at_ms,
            trigger: r.trigger,
            status: r.status,
            job_id: r.job_id,
            run_id: r.run_id,
            run_status: row.run_status,
            error: r.error,
            finished_at_ms: r.finished_at_ms,
        }
    }
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Schedules {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    jobs: Jobs,
    events: Events,
    agents: Agents,
    knowledge: Knowledge,
    settings: SchedulesSettings,
}

impl Schedules {
    /// The service; registers the workers that carry out fires with `jobs`.
    pub fn new(db: Db, jobs: Jobs, events: Events, agents: Agents, knowledge: Knowledge, settings: SchedulesSettings) -> Self {
        let workers = settings.workers;
        let schedules = Self { inner: Arc::new(Inner { db, jobs: jobs.clone(), events, agents, knowledge, settings }) };
        jobs.register_dedicated(JobKind::Schedule, Arc::new(fire::Firer(schedules.clone())), workers);
        schedules
    }

    pub async fn create(&self, access: &TenantAccess, input: CreateSchedule) -> Result<ScheduleView, Error> {
        let name = checked_name(input.name)?;
        let timing = self.checked_timing(&input.cron, &input.timezone)?;
        self.check_action(access, &input.action).await?;
        let count = self.inner.db.count_schedules(access.tenant_id()).await?;
        if count >= self.inner.settings.max_per_tenant as i64 {
            return Err(Error::Conflict(format!("the tenant has {count} schedules, the most allowed (schedules.max_per_tenant); delete one first")));
        }
        let now = now_ms();
        let record = ScheduleRecord {
            id: format!("sch_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: access.tenant_id().to_owned(),
            name,
            cron: input.cron.trim().to_owned(),
            timezone: input.timezone,
            action: serde_json::to_string(&input.action).map_err(|e| Error::Internal(e.to_string()))?,
            misfire: input.misfire.as_str().to_owned(),
            enabled: input.enabled,
            owner: owner_of(access),
            delegation: access.delegation().as_stored().to_owned(),
            next_fire_ms: if input.enabled { timing.next_after(now) } else { None },
            last_fired_ms: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.inner.db.insert_schedule(&record).await?;
        view(record)
    }

    /// The schedules the caller may see, newest first.
    pub async fn list(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<ScheduleView>, Error> {
        // Few per tenant (schedules.max_per_tenant): filtered here rather than in SQL.
        let rows = self.inner.db.schedules(access.tenant_id(), page.after_key(), self.inner.settings.max_per_tenant as i64 + 1).await?;
        let visible = rows.into_iter().filter(|row| may_see(access, row)).take(page.fetch() as usize).map(view).collect::<Result<Vec<_>, _>>()?;
        Ok(page.page(visible, |v| Cursor::new(v.created_at_ms, &v.id), |v| v))
    }

    pub async fn get(&self, access: &TenantAccess, id: &str) -> Result<ScheduleView, Error> {
        view(self.visible(access, id).await?)
    }

    /// Change a schedule. A change of its timing or action, or enabling
    /// it, makes the caller the one it acts for.
    pub async fn update(&self, access: &TenantAccess, id: &str, input: UpdateSchedule) -> Result<ScheduleView, Error> {
        let mut record = self.visible(access, id).await?;
        if let Some(name) = input.name {
            record.name = checked_name(name)?;
        }
        if let Some(misfire) = input.misfire {
            record.misfire = misfire.as_str().to_owned();
        }
        let resumed = input.enabled == Some(true) && !record.enabled;
        let changed_timing = input.cron.is_some() || input.timezone.is_some();
        let retimed = changed_timing || resumed;
        if let Some(cron) = input.cron {
            record.cron = cron.trim().to_owned();
        }
        if let Some(timezone) = input.timezone {
            record.timezone = timezone;
        }
        // Timing set earlier stays valid under settings changed since (a larger schedules.min_interval_secs).
        let timing = if changed_timing {
            self.checked_timing(&record.cron, &record.timezone)?
        } else {
            Timing::parse(&record.cron, &record.timezone).map_err(|message| Error::invalid(message, "cron"))?
        };
        let action = match input.action {
            Some(action) => action,
            None => stored_action(&record)?,
        };
        if let Some(enabled) = input.enabled {
            record.enabled = enabled;
        }
        let action_json = serde_json::to_string(&action).map_err(|e| Error::Internal(e.to_string()))?;
        if retimed || record.action != action_json {
            self.check_action(access, &action).await?;
            record.action = action_json;
            record.owner = owner_of(access);
            record.delegation = access.delegation().as_stored().to_owned();
        }
        let now = now_ms();
        // Untouched timing keeps its next due time: one due this very moment still fires.
        if retimed || !record.enabled {
            record.next_fire_ms = if record.enabled { timing.next_after(now) } else { None };
        }
        record.updated_at_ms = now;
        if !self.inner.db.update_schedule(&record).await? {
            return Err(Error::NotFound(format!("schedule '{id}'")));
        }
        view(record)
    }

    pub async fn delete(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        let record = self.visible(access, id).await?;
        if !self.inner.db.delete_schedule(access.tenant_id(), &record.id).await? {
            return Err(Error::NotFound(format!("schedule '{id}'")));
        }
        Ok(())
    }

    /// A schedule's fires, newest first.
    pub async fn runs(&self, access: &TenantAccess, id: &str, page: &PageRequest) -> Result<Page<ScheduleRunView>, Error> {
        let record = self.visible(access, id).await?;
        let rows = self.inner.db.schedule_runs(&record.id, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.record.fired_at_ms, &row.record.id), ScheduleRunView::from))
    }

    /// Fire a schedule now, acting for the caller; its timing stays.
    pub async fn trigger(&self, access: &TenantAccess, id: &str) -> Result<ScheduleRunView, Error> {
        let record = self.visible(access, id).await?;
        self.check_action(access, &stored_action(&record)?).await?;
        let run = self.fire_by_hand(access, &record).await?;
        let row = ScheduleRunRow { record: run, run_status: None };
        Ok(row.into())
    }

    async fn visible(&self, access: &TenantAccess, id: &str) -> Result<ScheduleRecord, Error> {
        match self.inner.db.schedule(access.tenant_id(), id).await? {
            Some(row) if may_see(access, &row) => Ok(row),
            _ => Err(Error::NotFound(format!("schedule '{id}'"))),
        }
    }

    fn checked_timing(&self, cron: &str, timezone: &str) -> Result<Timing, Error> {
        if cron.chars().count() > MAX_CRON_CHARS {
            return Err(Error::invalid(format!("'cron' must be at most {MAX_CRON_CHARS} characters"), "cron"));
        }
        let timing = Timing::parse(cron, timezone).map_err(|message| {
            let param = if message.starts_with("unknown time zone") { "timezone" } else { "cron" };
            Error::invalid(message, param)
        })?;
        let Some(gap) = timing.shortest_gap_ms(now_ms(), 100) else {
            if timing.next_after(now_ms()).is_none() {
                return Err(Error::invalid(format!("cron expression '{cron}' has no due time in the next five years"), "cron"));
            }
            return Ok(timing);
        };
        let min_ms = i64::try_from(self.inner.settings.min_interval_secs * 1000).unwrap_or(i64::MAX);
        if gap < min_ms {
            return Err(Error::invalid(
                format!("cron expression '{cron}' fires every {} s; schedules fire at most every {} s (schedules.min_interval_secs)", gap / 1000, min_ms / 1000),
                "cron",
            ));
        }
        Ok(timing)
    }

    /// The caller could carry out `action` now: the agent and thread exist
    /// for them, the collection is theirs to upload to.
    async fn check_action(&self, access: &TenantAccess, action: &ScheduleAction) -> Result<(), Error> {
        match action {
            ScheduleAction::RunAgent { agent, input, thread_id } => {
                if input.trim().is_empty() || input.chars().count() > MAX_INPUT_CHARS {
                    return Err(Error::invalid(format!("'action.input' must be 1 to {MAX_INPUT_CHARS} characters, not all blank"), "action"));
                }
                let found = self.inner.agents.agent(access, agent).await.map_err(|e| match e {
                    Error::NotFound(_) => Error::invalid(format!("unknown agent '{agent}'"), "action"),
                    other => other,
                })?;
                if !found.usable {
                    return Err(Error::Forbidden(format!("you may not run agent '{agent}'")));
                }
                if let Some(thread) = thread_id {
                    self.inner.agents.thread(access, thread).await?;
                }
            }
            ScheduleAction::RefetchCollection { collection_id } => {
                access.require(Permission::UploadDocuments)?;
                self.inner.knowledge.collection(access, collection_id).await?;
            }
            ScheduleAction::RunConnector { collection_id, connector } => self.inner.knowledge.check_connector(access, collection_id, connector).await?,
        }
        Ok(())
    }
}

fn checked_name(name: String) -> Result<String, Error> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!("'name' must be 1 to {MAX_NAME_CHARS} characters, without control characters"), "name"));
    }
    Ok(name)
}

fn stored_action(record: &ScheduleRecord) -> Result<ScheduleAction, Error> {
    serde_json::from_str(&record.action).map_err(|e| Error::Internal(format!("schedule '{}': unreadable action: {e}", record.id)))
}

fn may_see(access: &TenantAccess, row: &ScheduleRecord) -> bool {
    access.can(Permission::ManageTenant) || row.owner == owner_of(access)
}

fn view(record: ScheduleRecord) -> Result<ScheduleView, Error> {
    Ok(ScheduleView {
        description: Timing::parse(&record.cron, &record.timezone).map(|t| t.describe()).unwrap_or_default(),
        action: stored_action(&record)?,
        misfire: Misfire::stored(&record.misfire),
        id: record.id,
        name: record.name,
        cron: record.cron,
        timezone: record.timezone,
        enabled: record.enabled,
        owner: record.owner,
        next_fire_ms: record.next_fire_ms,
        last_fired_ms: record.last_fired_ms,
        created_at_ms: record.created_at_ms,
        updated_at_ms: record.updated_at_ms,
    })
}
