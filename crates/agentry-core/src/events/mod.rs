//! The tenant event log: what happened (runs finished, batches ended,
//! documents indexed, budgets crossed, jobs moved on, webhooks disabled),
//! appended once to a log every replica shares — the `events` table of the
//! database, PostgreSQL when replicas share one — and read two ways: as a
//! live stream a subscriber resumes after the last event it saw
//! ([`Events::follow`]), and by the fan-outs registered at start-up
//! (webhooks, [`Fanout`]), whose work is written in the same transaction as
//! the event so that an event in the log is never lost on its way out.
//!
//! Who reads an event ([`Audience`]): members with `manage_tenant` read all
//! of their tenant's; anyone else needs one of the event's reader
//! permissions and, for an event about an owned object (a run, a batch, a
//! document), to be its owner.
//!
//! Each process runs one tail ([`Events::spawn_tail`]) that reads new rows
//! in order — at once for events appended here, within
//! `events.poll_interval_ms` for those of other replicas — and hands them
//! to its subscribers through a bounded channel; a subscriber that falls
//! behind reads what it missed from the log instead, so a slow reader costs
//! memory for no one else.
//!
//! [`notices`] publishes the events nothing else would: an API key about
//! to expire.
//!
//! Must not: know what an event's subject is or who listens to it beyond the
//! fan-out trait; fail the operation that published (publishing logs and
//! counts its errors).

mod follow;
mod notices;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use agentry_db::Db;
use agentry_db::events::{DeliveryRecord, EventRecord};
use agentry_db::jobs::JobRecord;
use agentry_types::{EventType, Permission};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::identity::{TenantAccess, now_ms};
use crate::jobs::owner_of;
pub use follow::EventStream;

/// Operator settings of the event log (`[events]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsSettings {
    /// How long events stay in the log: a subscriber resumes within this window.
    pub retention_hours: u64,
    /// How often the tail looks for events other replicas appended.
    pub poll_interval_ms: u64,
    /// `api_key.expiring` is published this many days before a key expires (0: never).
    pub api_key_expiry_notice_days: u32,
    /// How often each process looks for keys to announce.
    pub notice_interval_secs: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self { retention_hours: 24, poll_interval_ms: 250, api_key_expiry_notice_days: 7, notice_interval_secs: 3600 }
    }
}

impl EventsSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=24 * 90).contains(&self.retention_hours) {
            return Err("events.retention_hours must be 1-2160".into());
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err("events.poll_interval_ms must be 10-60000".into());
        }
        if self.api_key_expiry_notice_days > 365 {
            return Err("events.api_key_expiry_notice_days must be 0-365".into());
        }
        if !(1..=86_400).contains(&self.notice_interval_secs) {
            return Err("events.notice_interval_secs must be 1-86400".into());
        }
        Ok(())
    }
}

/// Who may read an event.
#[derive(Debug, Clone)]
pub struct Audience {
    /// The owner of the object it is about, when it is owned.
    pub owner: Option<String>,
    /// Any one of these lets a member (the owner, for an owned object) read it.
    pub readers: &'static [Permission],
}

impl Audience {
    /// About an object `access` owns, read by its owner while holding one of `readers`.
    pub fn owned_by(access: &TenantAccess, readers: &'static [Permission]) -> Self {
        Self { owner: Some(owner_of(access)), readers }
    }

    /// About an object owned by `owner` (as stored: `user:<id>` or `master`).
    pub fn owner(owner: Option<String>, readers: &'static [Permission]) -> Self {
        Self { owner, readers }
    }

    /// About the tenant: read by members holding one of `readers`.
    pub fn members_with(readers: &'static [Permission]) -> Self {
        Self { owner: None, readers }
    }
}

/// Whether `access` may read an event with this owner and these readers (as stored).
pub fn readable(access: &TenantAccess, owner: Option<&str>, readers: &str) -> bool {
    if access.can(Permission::ManageTenant) {
        return true;
    }
    let holds = readers.split(',').filter_map(|name| name.parse::<Permission>().ok()).any(|p| access.can(p));
    holds && owner.is_none_or(|owner| owner == owner_of(access))
}

/// An event as subscribers and webhook receivers see it.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    /// Its place in the log: resume after it with `Last-Event-ID` or `?after=`.
    pub seq: i64,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub event_type: EventType,
    /// When it happened (RFC 3339, UTC).
    pub timestamp: String,
    /// What it is about; each type's shape is in docs/events.md.
    pub data: serde_json::Value,
}

impl EventView {
    fn of(record: &EventRecord) -> Option<Self> {
        Some(Self {
            id: record.id.clone(),
            seq: record.seq,
            event_type: record.event_type.parse().ok()?,
            timestamp: rfc3339(record.created_at_ms),
            data: serde_json::from_str(&record.data).unwrap_or(serde_json::Value::Null),
        })
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Work written in the same transaction as an event (webhook deliveries and their jobs).
#[async_trait::async_trait]
pub trait Fanout: Send + Sync + 'static {
    /// The deliveries `event` causes, with the jobs that send them.
    async fn deliveries(&self, event: &EventRecord) -> Vec<(DeliveryRecord, JobRecord)>;

    /// `count` deliveries of an event were committed.
    fn committed(&self, count: usize);

    /// Forget old work (called about once an hour, with the log's own pruning).
    async fn prune(&self);
}

/// The service. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    settings: EventsSettings,
    fanout: RwLock<Option<Arc<dyn Fanout>>>,
    /// Events read by the tail, to this process's subscribers.
    live: broadcast::Sender<Arc<EventRecord>>,
    /// Wakes the tail when this process appended an event.
    appended: Notify,
    /// The newest `seq` the tail handed out.
    tail_seq: AtomicI64,
}

/// Events a subscriber may fall behind by before it reads from the log instead.
const LIVE_CAPACITY: usize = 1024;

impl Events {
    pub fn new(db: Db, settings: EventsSettings) -> Self {
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        Self { inner: Arc::new(Inner { db, settings, fanout: RwLock::new(None), live, appended: Notify::new(), tail_seq: AtomicI64::new(0) }) }
    }

    /// Write `fanout`'s work with every event appended from now on (start-up).
    pub fn set_fanout(&self, fanout: Arc<dyn Fanout>) {
        *self.inner.fanout.write() = Some(fanout);
    }

    /// Append an event of `tenant_id`'s. Never fails its caller: an event
    /// that cannot be written is logged and counted
    /// (`events_publish_failures_total`).
    pub async fn publish(&self, tenant_id: &str, event_type: EventType, audience: Audience, data: serde_json::Value) {
        let readers: Vec<&str> = audience.readers.iter().map(|p| p.as_str()).collect();
        let record = EventRecord {
            seq: 0,
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant_id.to_owned(),
            event_type: event_type.as_str().to_owned(),
            owner: audience.owner,
            readers: readers.join(","),
            data: data.to_string(),
            created_at_ms: now_ms(),
        };
        let fanout = self.inner.fanout.read().clone();
        let deliveries = match &fanout {
            Some(fanout) => fanout.deliveries(&record).await,
            None => Vec::new(),
        };
        match self.inner.db.append_event(&record, &deliveries).await {
            Ok(_) => {
                metrics::counter!("events_published_total", "type" => event_type.as_str()).increment(1);
                self.inner.appended.notify_one();
                if let Some(fanout) = fanout {
                    fanout.committed(deliveries.len());
                }
            }
            Err(error) => {
                metrics::counter!("events_publish_failures_total", "type" => event_type.as_str()).increment(1);
                tracing::error!(%error, event = event_type.as_str(), tenant = tenant_id, "could not append an event");
            }
        }
    }

    /// Read new events in order and hand them to subscribers until `stop`;
    /// prune the log past its retention once an hour (one per process).
    pub fn spawn_tail(&self, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut after = match this.inner.db.last_event_seq().await {
                Ok(seq) => seq,
                Err(error) => {
                    tracing::error!(%error, "the event tail cannot read the log; live events are off in this process");
                    return;
                }
            };
            this.inner.tail_seq.store(after, Ordering::Release);
            let poll = Duration::from_millis(this.inner.settings.poll_interval_ms);
            let mut next_prune = std::time::Instant::now();
            loop {
                match this.inner.db.all_events_after(after, 500).await {
                    Ok(rows) if !rows.is_empty() => {
                        for row in rows {
                            after = row.seq;
                            this.inner.tail_seq.store(after, Ordering::Release);
                            // No subscriber is not an error.
                            let _ = this.inner.live.send(Arc::new(row));
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "the event tail could not read the log; trying again"),
                }
                if next_prune <= std::time::Instant::now() {
                    next_prune = std::time::Instant::now() + Duration::from_secs(3600);
                    let before = now_ms() - i64::try_from(this.inner.settings.retention_hours * 3_600_000).unwrap_or(i64::MAX);
                    if let Err(error) = this.inner.db.prune_events(before).await {
                        tracing::warn!(%error, "could not prune the event log");
                    }
                    let fanout = this.inner.fanout.read().clone();
                    if let Some(fanout) = fanout {
                        fanout.prune().await;
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = this.inner.appended.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        });
    }
}
