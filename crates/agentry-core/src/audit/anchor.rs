//! Anchors: a chain's head (seq and hash) signed with the anchor key, to be
//! kept outside the database. Verifying a chain against an anchor detects
//! what a chain alone cannot: deleting its newest events (truncation), or
//! replacing the whole chain.
//!
//! The signature is HMAC-SHA256 under the key derived with the anchor label
//! (not the chain key, so an anchor can never pass for an event hash) over
//! the anchor's other fields, encoded as a JSON array in a fixed order.
//!
//! Must not: touch storage (the `Audit` service reads the head and checks
//! the chain).

use serde::{Deserialize, Serialize};

use super::keys::{AuditKey, AuditKeys};

/// A signed chain head, as `agentry audit anchor` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Anchor {
    /// The chain: a tenant id, or "" for the platform chain.
    pub chain: String,
    /// The head's sequence number (0 for an empty chain).
    pub seq: i64,
    /// The head's hash (64 zeros for an empty chain).
    pub hash: String,
    /// When the anchor was taken, Unix milliseconds.
    pub at_ms: i64,
    /// The id of the key that signed it.
    pub key_id: String,
    /// Hex HMAC-SHA256 over the fields above.
    pub signature: String,
}

fn message(chain: &str, seq: i64, hash: &str, at_ms: i64, key_id: &str) -> String {
    serde_json::json!(["agentry audit anchor v1", chain, seq, hash, at_ms, key_id]).to_string()
}

impl Anchor {
    /// Sign a head with `key`. Crate-private: only a verification that
    /// holds signs one ([`crate::Audit::anchor`], [`crate::Audit::verify_against`]).
    pub(crate) fn sign(key: &AuditKey, chain: &str, seq: i64, hash: &str, at_ms: i64) -> Self {
        let signature = key.anchor_mac(message(chain, seq, hash, at_ms, key.id()).as_bytes());
        Self { chain: chain.to_owned(), seq, hash: hash.to_owned(), at_ms, key_id: key.id().to_owned(), signature }
    }

    /// Check the signature with the keys held; `Err` says why it does not hold.
    pub fn check(&self, keys: &AuditKeys) -> Result<(), String> {
        let Some(key) = keys.get(&self.key_id) else {
            return Err(format!("the anchor was signed with key id {} which this server does not hold", self.key_id));
        };
        if key.anchor_mac_holds(message(&self.chain, self.seq, &self.hash, self.at_ms, &self.key_id).as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err("the anchor's signature does not match: it was forged or altered".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_anchor_checks_and_a_changed_or_forged_one_does_not() {
        let keys = AuditKeys::from_master_keys(b"master", []);
        let anchor = Anchor::sign(keys.current(), "t1", 7, &"ab".repeat(32), 1_700_000_000_000);
        assert_eq!(anchor.check(&keys), Ok(()));
        let mut moved = anchor.clone();
        moved.seq = 3;
        assert!(moved.check(&keys).unwrap_err().contains("forged"));
        let forged = Anchor::sign(AuditKeys::from_master_keys(b"attacker", []).current(), "t1", 3, &"cd".repeat(32), 1);
        assert!(forged.check(&keys).unwrap_err().contains("does not hold"));
        let mut relabelled = forged;
        relabelled.key_id = anchor.key_id.clone();
        assert!(relabelled.check(&keys).unwrap_err().contains("forged"));
    }
}
