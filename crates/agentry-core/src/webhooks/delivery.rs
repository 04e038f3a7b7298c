//! One attempt at a delivery (a `webhook_delivery` job, subject: the
//! delivery): check that the endpoint's creator may still read the event,
//! sign the stored body with the endpoint's live keys, POST it through the
//! guarded client, and record how it went. A 2xx answer delivers; anything
//! else — another status, a refused address, a timeout — is retried after
//! the next wait of `webhooks.retry_schedule_secs` (with ±10 % jitter),
//! and ends `failed` when the schedule runs out. An endpoint failing
//! without a success for `webhooks.disable_after_hours` is disabled.
//!
//! Must not: follow redirects or read more of an answer than its status
//! (the outbound client caps the body).

use std::time::Instant;

use agentry_db::events::{AttemptOutcome, WebhookRecord};
use agentry_db::jobs::JobRecord;
use agentry_types::{AuditAction, EventType, JobStatus, Permission};
use rand::Rng;

use super::Webhooks;
use crate::audit::{Actor, AuditEvent, Outcome, RequestMeta};
use crate::events::{Audience, readable};
use crate::identity::now_ms;
use crate::jobs::{JobContext, JobFailure, JobHandler};
use crate::outbound::OutboundError;

pub(super) struct Deliverer(pub(super) Webhooks);

/// The error a delivery to a refused address records.
const REFUSED_ADDRESS: &str = "the URL's host is at a loopback, private, link-local or reserved address that webhooks.allow does not list";

#[async_trait::async_trait]
impl JobHandler for Deliverer {
    async fn run(&self, job: &JobRecord, context: &JobContext) -> Result<(), JobFailure> {
        let webhooks = &self.0;
        let db = &webhooks.inner.db;
        let retry = |e: agentry_db::DbError| JobFailure::Retry(e.to_string());
        let Some(delivery) = db.delivery(&job.tenant_id, &job.subject_id).await.map_err(retry)? else {
            return Err(JobFailure::Permanent("the delivery is gone (its webhook was deleted)".into()));
        };
        let Some(webhook) = db.webhook(&job.tenant_id, &delivery.webhook_id).await.map_err(retry)? else {
            return Err(JobFailure::Permanent("the webhook was deleted".into()));
        };
        let now = now_ms();
        if webhook.status != "enabled" {
            let reason = "the webhook is disabled";
            record(db, &delivery.id, AttemptOutcome { status: "failed", response_status: None, latency_ms: None, error: Some(reason), at_ms: now }).await?;
            return Err(JobFailure::Permanent(reason.into()));
        }
        if !context.access.can(Permission::ManageIntegrations) || !readable(&context.access, delivery.event_owner.as_deref(), &delivery.event_readers) {
            let reason = "the webhook's owner may not read this event (or no longer holds manage_integrations)";
            record(db, &delivery.id, AttemptOutcome { status: "skipped", response_status: None, latency_ms: None, error: Some(reason), at_ms: now }).await?;
            return Ok(());
        }
        let keys = webhooks.open(&webhook).map_err(|e| JobFailure::Permanent(e.to_string()))?;
        let timestamp = now / 1000;
        let headers = vec![
            ("webhook-id".to_owned(), delivery.id.clone()),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
            ("webhook-signature".to_owned(), keys.sign(&delivery.id, timestamp, delivery.body.as_bytes(), now)),
            ("user-agent".to_owned(), concat!("Agentry-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned()),
        ];
        let started = Instant::now();
        let sent = tokio::select! {
            sent = webhooks.inner.outbound.post(&webhook.url, &headers, delivery.body.clone().into_bytes()) => sent,
            () = context.cancel.cancelled() => return Err(JobFailure::Cancelled),
        };
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        metrics::histogram!("webhook_delivery_seconds").record(started.elapsed().as_secs_f64());
        let (response_status, error) = match &sent {
            Ok(posted) if (200..300).contains(&posted.status) => (Some(i32::from(posted.status)), None),
            Ok(posted) => (Some(i32::from(posted.status)), Some(format!("the endpoint answered {}", posted.status))),
            // Which internal name resolves where is not the endpoint owner's to learn.
            Err(OutboundError::AddressNotAllowed { .. }) => (None, Some(REFUSED_ADDRESS.to_owned())),
            Err(error) => (None, Some(error.to_string())),
        };
        let at_ms = now_ms();
        let Some(error) = error else {
            metrics::counter!("webhook_deliveries_total", "outcome" => "delivered").increment(1);
            record(db, &delivery.id, AttemptOutcome { status: "delivered", response_status, latency_ms: Some(latency_ms), error: None, at_ms }).await?;
            db.mark_webhook_healthy(&webhook.id).await.map_err(retry)?;
            return Ok(());
        };
        metrics::counter!("webhook_deliveries_total", "outcome" => "failed").increment(1);
        let failing_since = db.mark_webhook_failing(&webhook.id, at_ms).await.map_err(retry)?.unwrap_or(at_ms);
        let disable_after_ms = (webhooks.inner.settings.disable_after_hours * 3_600_000.0) as i64;
        let last_attempt = job.attempts >= job.max_attempts;
        if at_ms - failing_since >= disable_after_ms {
            record(db, &delivery.id, AttemptOutcome { status: "failed", response_status, latency_ms: Some(latency_ms), error: Some(&error), at_ms }).await?;
            self.disable(&webhook, failing_since).await;
            return Err(JobFailure::Permanent(format!("{error}; the webhook was disabled after failing since {failing_since}")));
        }
        let status = if last_attempt { "failed" } else { "pending" };
        record(db, &delivery.id, AttemptOutcome { status, response_status, latency_ms: Some(latency_ms), error: Some(&error), at_ms }).await?;
        Err(JobFailure::Retry(error))
    }

    async fn ended(&self, job: &JobRecord, status: JobStatus, reason: &str) {
        // A delivery that ends unsent outside its own attempt (cancelled, or dead before an attempt recorded it).
        if let Ok(Some(delivery)) = self.0.inner.db.delivery(&job.tenant_id, &job.subject_id).await
            && delivery.status == "pending"
        {
            let error = format!("{status}: {reason}");
            let outcome = AttemptOutcome { status: "failed", response_status: delivery.response_status, latency_ms: delivery.latency_ms, error: Some(&error), at_ms: now_ms() };
            if let Err(error) = self.0.inner.db.record_attempt(&delivery.id, &outcome).await {
                tracing::warn!(%error, delivery = %delivery.id, "could not record that a delivery ended");
            }
        }
    }

    async fn requeued(&self, job: &JobRecord) {
        if let Err(error) = self.0.inner.db.reopen_delivery(&job.subject_id, now_ms()).await {
            tracing::warn!(%error, delivery = %job.subject_id, "could not mark a retried delivery pending");
        }
    }

    fn retry_delay_ms(&self, attempts: i32) -> i64 {
        let schedule = &self.0.inner.settings.retry_schedule_secs;
        let index = usize::try_from(attempts.max(1) - 1).unwrap_or(0).min(schedule.len().saturating_sub(1));
        let wait_ms = schedule.get(index).map_or(1000, |secs| i64::try_from(secs * 1000).unwrap_or(i64::MAX));
        let jitter = wait_ms / 10;
        wait_ms + if jitter > 0 { rand::rng().random_range(-jitter..=jitter) } else { 0 }
    }
}

impl Deliverer {
    /// Disable an endpoint that failed for too long: audit it and tell whoever listens.
    async fn disable(&self, webhook: &WebhookRecord, failing_since: i64) {
        let inner = &self.0.inner;
        let hours = inner.settings.disable_after_hours;
        let reason = format!("every delivery failed for {hours} hours (since {})", crate::events::rfc3339(failing_since));
        match inner.db.disable_webhook(&webhook.id, &reason, now_ms()).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::error!(%error, webhook = %webhook.id, "could not disable a failing webhook");
                return;
            }
        }
        tracing::warn!(webhook = %webhook.id, "webhook disabled after sustained failure");
        let audit = AuditEvent {
            tenant: Some(&webhook.tenant_id),
            actor: Actor::System,
            action: AuditAction::WebhookDisable,
            resource: Some(format!("webhook:{}", webhook.id)),
            outcome: Outcome::Success,
            meta: &RequestMeta::default(),
            metadata: serde_json::json!({ "url": webhook.url, "reason": reason }),
        };
        if let Err(error) = inner.audit.record(audit).await {
            tracing::error!(%error, "could not audit a webhook's disabling");
        }
        // Its owner's: the URL may carry a token, and is left out.
        let data = serde_json::json!({ "webhook_id": webhook.id, "reason": reason });
        let audience = Audience::owner(Some(webhook.owner.clone()), &[Permission::ManageIntegrations]);
        inner.events.publish(&webhook.tenant_id, EventType::WebhookDisabled, audience, data).await;
    }
}

async fn record(db: &agentry_db::Db, delivery_id: &str, outcome: AttemptOutcome<'_>) -> Result<(), JobFailure> {
    db.record_attempt(delivery_id, &outcome).await.map_err(|e| JobFailure::Retry(e.to_string()))
}
