//! The two writes to a chain besides appending (see the module doc):
//! erasing the personal fields of the events that name a person, and
//! deleting a chain's oldest events past its retention. Each records the
//! keyed event that vouches for it before it changes anything, so a crash
//! between the two leaves a chain that still verifies.
//!
//! Neither vouches for what it has not checked: the chain must verify in
//! full first (a broken chain is evidence, never erased or cut), and each
//! event named is checked against its key again just before — so a
//! database writer who edits an event (moves its time back, plants a
//! person's id in it) cannot get the server to sign its deletion.

use agentry_db::audit::AuditRow;
use agentry_types::AuditAction;

use super::format::{check_keyed, erase_many_metadata, prune_metadata};
use super::{Actor, Audit, AuditEvent, Outcome, PLATFORM_CHAIN, RequestMeta};
use crate::error::Error;

/// Events named by one `audit.erase` event.
const ERASE_BATCH: i64 = 500;

impl Audit {
    /// Erase the personal fields of every keyed event of `chain` whose actor
    /// is one of `ids` (a person's user id and their API keys' ids) or whose
    /// resource or metadata quote one of them or `email`, each batch after an
    /// `audit.erase` event by `actor` naming it. How many events were erased.
    pub async fn erase_person(&self, chain: &str, ids: &[String], email: &str, actor: &Actor) -> Result<u64, Error> {
        self.require_intact(chain).await?;
        let mut erased = 0;
        for id in ids {
            erased += self.erase_naming(chain, id, email, actor).await?;
        }
        Ok(erased)
    }

    async fn erase_naming(&self, chain: &str, id: &str, email: &str, actor: &Actor) -> Result<u64, Error> {
        let mut after = 0;
        let mut erased = 0;
        loop {
            let rows = self.db.audit_events_naming(chain, id, email, after, ERASE_BATCH).await?;
            let Some(last) = rows.last() else { break };
            after = last.seq;
            let mut named = Vec::with_capacity(rows.len());
            for row in &rows {
                self.check_row(row)?;
                named.push((row.seq, row.fields_hash.clone().unwrap_or_default()));
            }
            self.record_about_chain(chain, actor.clone(), AuditAction::AuditErase, erase_many_metadata(&named)).await?;
            let seqs: Vec<i64> = named.iter().map(|(seq, _)| *seq).collect();
            erased += self.db.erase_audit_fields(chain, &seqs, crate::identity::now_ms()).await?;
        }
        Ok(erased)
    }

    /// Delete the events of `chain` written before `before_ms`, after an
    /// `audit.prune` event naming the last of them. How many were deleted.
    pub async fn prune(&self, chain: &str, before_ms: i64) -> Result<u64, Error> {
        let Some((through_seq, _)) = self.db.audit_last_before(chain, before_ms).await? else { return Ok(0) };
        self.require_intact(chain).await?;
        let row = self.db.audit_event(chain, through_seq).await?.ok_or_else(|| Error::Conflict("the audit chain changed while it was pruned; try again".into()))?;
        self.check_row(&row)?;
        if row.at_ms >= before_ms {
            return Err(Error::Conflict("the audit chain changed while it was pruned; try again".into()));
        }
        self.record_about_chain(chain, Actor::System, AuditAction::AuditPrune, prune_metadata(through_seq, &row.hash, before_ms)).await?;
        Ok(self.db.delete_audit_through(chain, through_seq).await?)
    }

    /// Refuse to change a chain that does not verify: its breaks are evidence.
    async fn require_intact(&self, chain: &str) -> Result<(), Error> {
        let verification = self.verify(chain).await?;
        if !verification.valid {
            let reason = verification.reason.unwrap_or_default();
            return Err(Error::Conflict(format!("the audit chain does not verify ({reason}): it is left as it is until that is looked into")));
        }
        Ok(())
    }

    /// A keyed event whose content still matches its key's HMAC.
    fn check_row(&self, row: &AuditRow) -> Result<(), Error> {
        let key =
            row.key_id.as_deref().and_then(|id| self.keys.get(id)).ok_or_else(|| Error::Conflict(format!("audit event {} is not keyed by a key this server holds", row.seq)))?;
        check_keyed(row, key).map_err(|reason| Error::Conflict(format!("audit event {}: {reason}", row.seq)))
    }

    async fn record_about_chain(&self, chain: &str, actor: Actor, action: AuditAction, metadata: serde_json::Value) -> Result<i64, Error> {
        let tenant = (chain != PLATFORM_CHAIN).then_some(chain);
        Ok(self.record(AuditEvent { tenant, actor, action, resource: None, outcome: Outcome::Success, meta: &RequestMeta::default(), metadata }).await?)
    }
}
