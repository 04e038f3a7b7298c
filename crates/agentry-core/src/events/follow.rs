//! One subscriber's stream: the events it may read, in log order, from
//! after the event it names (or from now), live from the process's tail and
//! from the log itself when it resumes or falls behind. Its access is
//! checked again every [`RECHECK`]: a member removed from the tenant, or a
//! revoked key, stops receiving events within that bound.
//!
//! Must not: hold more than one page of the log per subscriber.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agentry_db::events::EventRecord;
use agentry_types::EventType;
use futures::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{EventView, Events, readable};
use crate::identity::{Identity, TenantAccess};

/// A subscriber's events.
pub type EventStream = BoxStream<'static, EventView>;

/// How often a subscriber's access is checked again.
const RECHECK: Duration = Duration::from_secs(30);

/// Events read from the log at a time while catching up.
const PAGE: i64 = 200;

struct Follower {
    events: Events,
    identity: Identity,
    access: TenantAccess,
    types: Vec<EventType>,
    live: broadcast::Receiver<Arc<EventRecord>>,
    /// The newest `seq` this subscriber has passed.
    last: i64,
    /// Read from the log until it has nothing newer.
    catching_up: bool,
    backlog: VecDeque<EventRecord>,
    checked: Instant,
}

impl Events {
    /// The events `access` may read, of `types` (all when empty), after
    /// event `after` (from now when `None`; the log keeps
    /// `events.retention_hours`).
    pub fn follow(&self, identity: Identity, access: TenantAccess, after: Option<i64>, types: Vec<EventType>) -> EventStream {
        let live = self.inner.live.subscribe();
        let follower = Follower {
            events: self.clone(),
            identity,
            access,
            types,
            live,
            last: after.unwrap_or_else(|| self.inner.tail_seq.load(Ordering::Acquire)),
            catching_up: after.is_some(),
            backlog: VecDeque::new(),
            checked: Instant::now(),
        };
        Box::pin(futures::stream::unfold(follower, |mut follower| async move { follower.next().await.map(|view| (view, follower)) }))
    }
}

impl Follower {
    async fn next(&mut self) -> Option<EventView> {
        loop {
            let record = match self.backlog.pop_front() {
                Some(record) => record,
                None if self.catching_up => {
                    match self.events.inner.db.events_after(self.access.tenant_id(), self.last, PAGE).await {
                        Ok(rows) if rows.is_empty() => self.catching_up = false,
                        Ok(rows) => self.backlog.extend(rows),
                        Err(error) => {
                            tracing::warn!(%error, "a subscriber could not read the event log; ending its stream");
                            return None;
                        }
                    }
                    continue;
                }
                None => match self.live.recv().await {
                    Ok(record) if record.tenant_id == self.access.tenant_id() => (*record).clone(),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        self.catching_up = true;
                        continue;
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if record.seq <= self.last {
                continue;
            }
            self.last = record.seq;
            if !self.still_allowed().await {
                return None;
            }
            if !readable(&self.access, record.owner.as_deref(), &record.readers) {
                continue;
            }
            let Some(view) = EventView::of(&record) else { continue };
            if self.types.is_empty() || self.types.contains(&view.event_type) {
                return Some(view);
            }
        }
    }

    /// Whether the subscriber's credential still reaches the tenant (checked at most every [`RECHECK`]).
    async fn still_allowed(&mut self) -> bool {
        if self.checked.elapsed() < RECHECK {
            return true;
        }
        match self.identity.redeem(self.access.tenant_id(), self.access.delegation().as_stored()).await {
            Ok(now) => {
                self.access = now;
                self.checked = Instant::now();
                true
            }
            Err(error) => {
                tracing::info!(%error, "an event subscriber lost its access; ending its stream");
                false
            }
        }
    }
}
