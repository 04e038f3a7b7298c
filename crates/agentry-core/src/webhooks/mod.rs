//! Webhooks: endpoints a tenant registers to receive events
//! ([`crate::events`]) as signed HTTP POSTs per the Standard Webhooks
//! specification ([`signing`]), each delivery a job ([`delivery`]) retried
//! on a schedule that spans more than a day, logged (status, response
//! code, latency), sent again by hand on request, and an endpoint that
//! fails without a success for `webhooks.disable_after_hours` disabled with
//! an audit event and a `webhook.disabled` event.
//!
//! Who: managing webhooks needs `manage_integrations` (the route table
//! checks it). A member sees and changes the endpoints they own;
//! `manage_tenant` sees all of the tenant's. An endpoint acts for its owner
//! — whoever created it, or last changed its url or events or rotated its
//! secret — and receives only the events its owner may read, checked with
//! the owner's access as it stands at each delivery (while they still hold
//! `manage_integrations`). The delivery log shows a payload only to a
//! viewer who may read the event it carries.
//!
//! Where: every delivery goes through the guarded outbound client — no
//! loopback, private or metadata address unless `webhooks.allow` lists it —
//! and a URL that points at a refused address is refused when it is set.
//!
//! Must not: know what an event means (its publisher does) or sign anything
//! but the exact bytes it stores and sends.

mod delivery;
pub mod signing;

use std::sync::Arc;
use std::time::Duration;

use agentry_db::Db;
use agentry_db::events::{DeliveryRecord, EventRecord, WebhookRecord};
use agentry_db::jobs::JobRecord;
use agentry_types::{EventType, JobKind, Permission};
use serde::{Deserialize, Serialize};

use crate::audit::Audit;
use crate::error::Error;
use crate::events::{Events, Fanout, readable, rfc3339};
use crate::identity::{TenantAccess, now_ms};
use crate::jobs::{Jobs, NewJob, owner_of};
use crate::outbound::{AllowEntry, Outbound, OutboundPolicy, Scheme};
use crate::page::{Cursor, Page, PageRequest};
use crate::secrets::{Place, Sealer};
use signing::SigningKeys;

/// Operator settings of webhooks (`[webhooks]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksSettings {
    /// Addresses, CIDR blocks and host names deliveries may reach although
    /// they are private (same shape as `agents.outbound.allow`).
    pub allow: Vec<AllowEntry>,
    /// Deadline of one delivery attempt.
    pub timeout_secs: u64,
    /// Waits before each retry of a failed delivery, in seconds; its length
    /// is the number of retries. The default spans about 27 hours.
    pub retry_schedule_secs: Vec<u64>,
    /// An endpoint failing without a success for this long is disabled.
    pub disable_after_hours: f64,
    /// Deliveries sent at once by this process.
    pub workers: usize,
    /// Endpoints a tenant may have.
    pub max_per_tenant: usize,
}

impl Default for WebhooksSettings {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            timeout_secs: 15,
            retry_schedule_secs: vec![5, 300, 1800, 7200, 18_000, 36_000, 36_000],
            disable_after_hours: 120.0,
            workers: 8,
            max_per_tenant: 100,
        }
    }
}

impl WebhooksSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=300).contains(&self.timeout_secs) {
            return Err("webhooks.timeout_secs must be 1-300".into());
        }
        if self.retry_schedule_secs.len() > 50 || self.retry_schedule_secs.iter().any(|s| *s > 7 * 86_400) {
            return Err("webhooks.retry_schedule_secs holds at most 50 waits of at most a week".into());
        }
        if !(self.disable_after_hours > 0.0 && self.disable_after_hours <= 24.0 * 365.0) {
            return Err("webhooks.disable_after_hours must be more than 0 and at most a year".into());
        }
        if !(1..=256).contains(&self.workers) {
            return Err("webhooks.workers must be 1-256".into());
        }
        if !(1..=10_000).contains(&self.max_per_tenant) {
            return Err("webhooks.max_per_tenant must be 1-10000".into());
        }
        Ok(())
    }

    fn outbound_policy(&self) -> OutboundPolicy {
        OutboundPolicy {
            allow: self.allow.clone(),
            max_bytes: 64 * 1024,
            timeout: Duration::from_secs(self.timeout_secs),
            max_redirects: 0,
            allowed_schemes: vec![Scheme::Http, Scheme::Https],
        }
    }
}

/// What a webhook endpoint is created with.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed (http or https; a private address only if `webhooks.allow` lists it).
    pub url: String,
    /// The event types it receives, or `["*"]` for all.
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// What a change of an endpoint sets (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// `true` enables an endpoint again (a disabled one starts with a clean failure record); `false` disables it.
    pub enabled: Option<bool>,
}

/// A rotation of an endpoint's signing secret.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the previous secret keeps signing alongside the new one (default 86400, at most 7 days).
    #[schema(maximum = 604800)]
    pub overlap_secs: Option<u64>,
}

/// An endpoint as the API shows it (its secret only when created or rotated).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    /// `enabled` or `disabled`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When deliveries started failing without a success since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
    /// The signing secret (`whsec_…`): shown only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Until when the previous secret also signs, during a rotation's overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until_ms: Option<i64>,
    pub owner: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One delivery as the log shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// The message id, sent as `webhook-id` (the same on every attempt).
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered`, `failed`, or `skipped` (the endpoint's creator may not read the event).
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last attempt's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<i32>,
    /// How long the last attempt took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The payload as sent; null when the viewer may not read the event it carries.
    pub payload: serde_json::Value,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at_ms: Option<i64>,
}

impl DeliveryView {
    /// A delivery as `viewer` sees it: its payload only if they may read the event it carries.
    fn shown_to(viewer: &TenantAccess, row: DeliveryRecord) -> Self {
        let payload = if readable(viewer, row.event_owner.as_deref(), &row.event_readers) {
            serde_json::from_str(&row.body).unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Null
        };
        Self {
            payload,
            id: row.id,
            webhook_id: row.webhook_id,
            event_id: row.event_id,
            event_type: row.event_type,
            status: row.status,
            attempts: row.attempts,
            response_status: row.response_status,
            latency_ms: row.latency_ms,
            error: row.error,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
            delivered_at_ms: row.delivered_at_ms,
        }
    }
}

/// The longest description.
const MAX_DESCRIPTION_CHARS: usize = 500;
/// The longest URL.
const MAX_URL_CHARS: usize = 2048;
/// How long an ended delivery stays in its endpoint's log.
const DELIVERY_LOG_MS: i64 = 7 * 86_400_000;
/// The longest rotation overlap.
const MAX_OVERLAP_SECS: u64 = 7 * 86_400;

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    jobs: Jobs,
    events: Events,
    audit: Audit,
    sealer: Sealer,
    outbound: Outbound,
    settings: WebhooksSettings,
}

impl Webhooks {
    /// The service; registers its delivery workers with `jobs` and its fan-out with `events`.
    pub fn new(db: Db, jobs: Jobs, events: Events, audit: Audit, sealer: Sealer, settings: WebhooksSettings) -> Result<Self, Error> {
        let outbound = Outbound::new(settings.outbound_policy()).map_err(|e| Error::Internal(format!("webhooks: {e}")))?;
        let workers = settings.workers;
        let webhooks = Self { inner: Arc::new(Inner { db, jobs: jobs.clone(), events: events.clone(), audit, sealer, outbound, settings }) };
        jobs.register_dedicated(JobKind::WebhookDelivery, Arc::new(delivery::Deliverer(webhooks.clone())), workers);
        events.set_fanout(Arc::new(webhooks.clone()));
        Ok(webhooks)
    }

    /// Register an endpoint; its secret is in this answer only.
    pub async fn create(&self, access: &TenantAccess, input: CreateWebhook) -> Result<WebhookView, Error> {
        let url = self.checked_url(&input.url)?;
        let events = checked_events(input.events)?;
        let description = checked_description(input.description)?;
        let existing = self.inner.db.webhooks(access.tenant_id(), None, self.inner.settings.max_per_tenant as i64).await?;
        if existing.len() >= self.inner.settings.max_per_tenant {
            return Err(Error::Conflict(format!("the tenant has {} webhooks, the most allowed (webhooks.max_per_tenant); delete one first", existing.len())));
        }
        let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
        let (keys, secret) = SigningKeys::generate();
        let now = now_ms();
        let record = WebhookRecord {
            secrets: self.seal(&id, &keys)?,
            id,
            tenant_id: access.tenant_id().to_owned(),
            url,
            events: serde_json::to_string(&events).unwrap_or_default(),
            description,
            owner: owner_of(access),
            delegation: access.delegation().as_stored().to_owned(),
            status: "enabled".into(),
            disabled_reason: None,
            failing_since_ms: None,
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.inner.db.insert_webhook(&record).await?;
        Ok(WebhookView { secret: Some(secret), ..self.view(record) })
    }

    /// The endpoints the caller may see, newest first.
    pub async fn list(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<WebhookView>, Error> {
        // Few per tenant (webhooks.max_per_tenant): filtered here rather than in SQL.
        let rows = self.inner.db.webhooks(access.tenant_id(), page.after_key(), self.inner.settings.max_per_tenant as i64 + 1).await?;
        let visible: Vec<WebhookRecord> = rows.into_iter().filter(|row| may_see(access, row)).take(page.fetch() as usize).collect();
        Ok(page.page(visible, |row| Cursor::new(row.created_at_ms, &row.id), |row| self.view(row)))
    }

    pub async fn get(&self, access: &TenantAccess, id: &str) -> Result<WebhookView, Error> {
        Ok(self.view(self.visible(access, id).await?))
    }

    /// Change an endpoint's url, events, description or whether it is enabled.
    pub async fn update(&self, access: &TenantAccess, id: &str, input: UpdateWebhook) -> Result<WebhookView, Error> {
        let mut record = self.visible(access, id).await?;
        if input.url.is_some() || input.events.is_some() {
            act_for(&mut record, access);
        }
        if let Some(url) = input.url {
            record.url = self.checked_url(&url)?;
        }
        if let Some(events) = input.events {
            record.events = serde_json::to_string(&checked_events(events)?).unwrap_or_default();
        }
        if let Some(description) = input.description {
            record.description = checked_description(description)?;
        }
        match input.enabled {
            Some(true) => {
                record.status = "enabled".into();
                record.disabled_reason = None;
                record.failing_since_ms = None;
            }
            Some(false) => {
                record.status = "disabled".into();
                record.disabled_reason = Some("disabled by hand".into());
            }
            None => {}
        }
        record.updated_at_ms = now_ms();
        self.store(record).await
    }

    /// Delete an endpoint and its delivery log; deliveries still queued end unsent.
    pub async fn delete(&self, access: &TenantAccess, id: &str) -> Result<(), Error> {
        let record = self.visible(access, id).await?;
        if !self.inner.db.delete_webhook(&record.tenant_id, &record.id).await? {
            return Err(Error::NotFound(format!("webhook '{id}'")));
        }
        Ok(())
    }

    /// A new signing secret (in this answer only); the previous one keeps signing for the overlap.
    pub async fn rotate_secret(&self, access: &TenantAccess, id: &str, input: RotateSecret) -> Result<WebhookView, Error> {
        let overlap = input.overlap_secs.unwrap_or(86_400);
        if overlap > MAX_OVERLAP_SECS {
            return Err(Error::invalid(format!("'overlap_secs' must be at most {MAX_OVERLAP_SECS} (7 days)"), "overlap_secs"));
        }
        let mut record = self.visible(access, id).await?;
        let mut keys = self.open(&record)?;
        let now = now_ms();
        let secret = keys.rotate(now + i64::try_from(overlap * 1000).unwrap_or(i64::MAX));
        record.secrets = self.seal(&record.id, &keys)?;
        act_for(&mut record, access);
        record.updated_at_ms = now;
        Ok(WebhookView { secret: Some(secret), ..self.store(record).await? })
    }

    /// An endpoint's deliveries, newest first.
    pub async fn deliveries(&self, access: &TenantAccess, id: &str, page: &PageRequest) -> Result<Page<DeliveryView>, Error> {
        let record = self.visible(access, id).await?;
        let rows = self.inner.db.deliveries(&record.id, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.id), |row| DeliveryView::shown_to(access, row)))
    }

    /// Send a delivery again (same message id and payload), whatever became of it.
    pub async fn redeliver(&self, access: &TenantAccess, id: &str, delivery_id: &str) -> Result<DeliveryView, Error> {
        let record = self.visible(access, id).await?;
        let delivery = self.inner.db.delivery(&record.tenant_id, delivery_id).await?.filter(|d| d.webhook_id == record.id);
        let delivery = delivery.ok_or_else(|| Error::NotFound(format!("delivery '{delivery_id}'")))?;
        if delivery.status == "pending" {
            return Err(Error::Conflict(format!("delivery '{delivery_id}' is still being sent; wait for it to end")));
        }
        require_enabled(&record)?;
        let job = self.delivery_job(&record, &delivery);
        self.inner.db.redeliver(&delivery.id, &job, now_ms()).await?;
        self.inner.jobs.wake(JobKind::WebhookDelivery, 1);
        let after = self.inner.db.delivery(&record.tenant_id, delivery_id).await?.ok_or_else(|| Error::NotFound(format!("delivery '{delivery_id}'")))?;
        Ok(DeliveryView::shown_to(access, after))
    }

    /// Send a `webhook.test` event to this endpoint only.
    pub async fn test(&self, access: &TenantAccess, id: &str) -> Result<DeliveryView, Error> {
        let record = self.visible(access, id).await?;
        require_enabled(&record)?;
        let event = EventRecord {
            seq: 0,
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: record.tenant_id.clone(),
            event_type: EventType::WebhookTest.as_str().to_owned(),
            owner: None,
            readers: Permission::ManageIntegrations.as_str().to_owned(),
            data: serde_json::json!({ "webhook_id": record.id }).to_string(),
            created_at_ms: now_ms(),
        };
        let (delivery, job) = self.delivery_for(&record, &event);
        self.inner.db.insert_delivery_with_job(&delivery, &job).await?;
        self.inner.jobs.wake(JobKind::WebhookDelivery, 1);
        Ok(DeliveryView::shown_to(access, delivery))
    }

    /// Write a changed endpoint and show it.
    async fn store(&self, record: WebhookRecord) -> Result<WebhookView, Error> {
        if !self.inner.db.update_webhook(&record).await? {
            return Err(Error::NotFound(format!("webhook '{}'", record.id)));
        }
        Ok(self.view(record))
    }

    fn view(&self, row: WebhookRecord) -> WebhookView {
        let previous_secret_until_ms = self.open(&row).ok().and_then(|keys| keys.previous_until_ms(now_ms()));
        WebhookView {
            events: serde_json::from_str(&row.events).unwrap_or_default(),
            id: row.id,
            url: row.url,
            description: row.description,
            status: row.status,
            disabled_reason: row.disabled_reason,
            failing_since_ms: row.failing_since_ms,
            secret: None,
            previous_secret_until_ms,
            owner: row.owner,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        }
    }

    async fn visible(&self, access: &TenantAccess, id: &str) -> Result<WebhookRecord, Error> {
        match self.inner.db.webhook(access.tenant_id(), id).await? {
            Some(row) if may_see(access, &row) => Ok(row),
            _ => Err(Error::NotFound(format!("webhook '{id}'"))),
        }
    }

    fn checked_url(&self, url: &str) -> Result<String, Error> {
        let url = url.trim();
        if url.chars().count() > MAX_URL_CHARS {
            return Err(Error::invalid(format!("'url' must be at most {MAX_URL_CHARS} characters"), "url"));
        }
        self.inner.outbound.check(url).map_err(|e| Error::invalid(format!("'url' cannot be used: {e}"), "url"))?;
        Ok(url.to_owned())
    }

    fn seal(&self, id: &str, keys: &SigningKeys) -> Result<String, Error> {
        let json = serde_json::to_vec(keys).unwrap_or_default();
        self.inner.sealer.seal(&Place::webhook_secrets(id), &json).map_err(|e| Error::Internal(e.to_string()))
    }

    fn open(&self, row: &WebhookRecord) -> Result<SigningKeys, Error> {
        let json = self.inner.sealer.open(&Place::webhook_secrets(&row.id), &row.secrets).map_err(|e| Error::Internal(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|_| Error::Internal(format!("webhook '{}': its signing keys are unreadable", row.id)))
    }

    /// The delivery of `event` to `webhook`, with the job that sends it.
    fn delivery_for(&self, webhook: &WebhookRecord, event: &EventRecord) -> (DeliveryRecord, JobRecord) {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or(serde_json::Value::Null);
        let body = serde_json::json!({ "type": event.event_type, "timestamp": rfc3339(event.created_at_ms), "id": event.id, "data": data });
        let delivery = DeliveryRecord {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: webhook.tenant_id.clone(),
            webhook_id: webhook.id.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            event_owner: event.owner.clone(),
            event_readers: event.readers.clone(),
            body: body.to_string(),
            status: "pending".into(),
            attempts: 0,
            response_status: None,
            latency_ms: None,
            error: None,
            created_at_ms: event.created_at_ms,
            updated_at_ms: event.created_at_ms,
            delivered_at_ms: None,
        };
        let job = self.delivery_job(webhook, &delivery);
        (delivery, job)
    }

    fn delivery_job(&self, webhook: &WebhookRecord, delivery: &DeliveryRecord) -> JobRecord {
        let payload = serde_json::json!({ "webhook_id": webhook.id });
        let new = NewJob {
            kind: JobKind::WebhookDelivery,
            subject_id: delivery.id.clone(),
            subject_version: 0,
            payload,
            priority: 0,
            idempotency_key: None,
            max_attempts: Some(i32::try_from(self.inner.settings.retry_schedule_secs.len() + 1).unwrap_or(i32::MAX)),
        };
        self.inner.jobs.record_for(&webhook.tenant_id, &webhook.owner, &webhook.delegation, new)
    }
}

#[async_trait::async_trait]
impl Fanout for Webhooks {
    async fn deliveries(&self, event: &EventRecord) -> Vec<(DeliveryRecord, JobRecord)> {
        let endpoints = match self.inner.db.enabled_webhooks(&event.tenant_id).await {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::error!(%error, event = %event.id, "could not read the tenant's webhooks; the event is not delivered");
                return Vec::new();
            }
        };
        endpoints.iter().filter(|endpoint| listens_to(endpoint, &event.event_type)).map(|endpoint| self.delivery_for(endpoint, event)).collect()
    }

    fn committed(&self, count: usize) {
        self.inner.jobs.wake(JobKind::WebhookDelivery, count);
    }

    async fn prune(&self) {
        if let Err(error) = self.inner.db.prune_deliveries(now_ms() - DELIVERY_LOG_MS).await {
            tracing::warn!(%error, "could not prune the webhook delivery log");
        }
    }
}

/// Whoever sets where an endpoint sends, what it receives or who can verify it
/// becomes the one it acts for: a key scoped to `manage_integrations` cannot
/// aim another credential's wider access at its own receiver.
fn act_for(record: &mut WebhookRecord, access: &TenantAccess) {
    record.owner = owner_of(access);
    record.delegation = access.delegation().as_stored().to_owned();
}

/// Sending by hand needs an enabled endpoint.
fn require_enabled(record: &WebhookRecord) -> Result<(), Error> {
    if record.status != "enabled" {
        return Err(Error::Conflict(format!("webhook '{}' is disabled; enable it first (PATCH with enabled: true)", record.id)));
    }
    Ok(())
}

fn may_see(access: &TenantAccess, row: &WebhookRecord) -> bool {
    access.can(Permission::ManageTenant) || row.owner == owner_of(access)
}

/// Whether an endpoint receives events of `event_type`: named, or all
/// (`*`) but `job.progress`, which is for live streams unless named.
fn listens_to(endpoint: &WebhookRecord, event_type: &str) -> bool {
    let all = event_type != EventType::JobProgress.as_str();
    serde_json::from_str::<Vec<String>>(&endpoint.events).is_ok_and(|events| events.iter().any(|e| (e == "*" && all) || e == event_type))
}

fn checked_events(events: Vec<String>) -> Result<Vec<String>, Error> {
    if events.is_empty() || events.len() > EventType::ALL.len() + 1 {
        return Err(Error::invalid("'events' must list event types (or \"*\" for all); see docs/events.md", "events"));
    }
    let mut checked: Vec<String> = Vec::with_capacity(events.len());
    for event in events {
        if event != "*" && event.parse::<EventType>().is_err() {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            return Err(Error::invalid(format!("unknown event type '{event}'; known: *, {}", known.join(", ")), "events"));
        }
        if !checked.contains(&event) {
            checked.push(event);
        }
    }
    Ok(checked)
}

fn checked_description(description: String) -> Result<String, Error> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS || description.chars().any(char::is_control) {
        return Err(Error::invalid(format!("'description' must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"), "description"));
    }
    Ok(description)
}
