//! Events about time passing rather than something done: `api_key.expiring`,
//! published once per key `events.api_key_expiry_notice_days` before it
//! expires. Every process looks every `events.notice_interval_secs`; a key
//! is claimed in the store as it is announced, so however many replicas
//! look, its owner hears of it once.
//!
//! Must not: change a key (only the claim's mark).

use std::time::Duration;

use agentry_types::{EventType, Permission};
use tokio_util::sync::CancellationToken;

use super::{Audience, Events, rfc3339};
use crate::identity::now_ms;

/// Keys claimed per look.
const KEYS_PER_LOOK: i64 = 500;

impl Events {
    /// Look for keys to announce until `stop` (nothing when notices are off).
    pub fn spawn_notices(&self, stop: CancellationToken) {
        let days = self.inner.settings.api_key_expiry_notice_days;
        if days == 0 {
            return;
        }
        let this = self.clone();
        let every = Duration::from_secs(self.inner.settings.notice_interval_secs);
        tokio::spawn(async move {
            loop {
                this.announce_expiring_keys(i64::from(days) * 86_400_000).await;
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    async fn announce_expiring_keys(&self, window_ms: i64) {
        loop {
            let now = now_ms();
            let keys = match self.inner.db.claim_expiring_api_keys(now, now + window_ms, KEYS_PER_LOOK).await {
                Ok(keys) => keys,
                Err(error) => {
                    tracing::warn!(%error, "could not look for expiring API keys");
                    return;
                }
            };
            let claimed = keys.len();
            for key in keys {
                let data = serde_json::json!({
                    "api_key_id": key.id,
                    "name": key.name,
                    "prefix": key.prefix,
                    "user_id": key.user_id,
                    "expires_at": key.expires_at_ms.map(rfc3339),
                });
                // The key's owner hears of it (and manage_tenant, who reads everything).
                let audience = Audience::owner(Some(format!("user:{}", key.user_id)), &[Permission::UseModels, Permission::ManageApiKeys]);
                self.publish(&key.tenant_id, EventType::ApiKeyExpiring, audience, data).await;
            }
            if claimed < KEYS_PER_LOOK as usize {
                return;
            }
        }
    }
}
