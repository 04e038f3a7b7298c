//! The keys of the audit chain: derived from the server's master key(s)
//! with HKDF-SHA256, held in memory, never stored in the database.
//!
//! Each master key yields two HMAC-SHA256 keys under separate labels —
//! [`CHAIN_INFO`] for event hashes and [`ANCHOR_INFO`] for anchor
//! signatures — and a key id: the first 16 hex characters of SHA-256 of the
//! chain key. The id is not secret (it cannot be turned back into a key) and
//! is stored on each event, so a verifier knows which key to use. Rotating
//! the master key adds a key: the server keeps the previous master keys
//! (the operator lists them, see the server's `master_key` module) and
//! verifies events under any key it holds; new events use the current one.
//!
//! The HKDF step is shared with the secrets at rest (`crate::secrets::derive_key`,
//! label `agentry secrets v1`). HKDF and HMAC come from `ring` (already the
//! workspace's crypto provider); nothing here is hand-written crypto.
//!
//! Must not: read files or settings (the server passes the master keys in),
//! or log key material.

use ring::hmac;

use crate::secrets::{derive_key as derive, key_id};

/// HKDF info label of the key that HMACs chain events.
pub const CHAIN_INFO: &[u8] = b"agentry audit chain v1";
/// HKDF info label of the key that signs anchors.
pub const ANCHOR_INFO: &[u8] = b"agentry audit anchor v1";
/// The public stand-in master key of [`AuditKeys::development`]: anyone can
/// derive its keys, so chains written with it are only as strong as plain
/// SHA-256. For tests and benchmarks; a server always passes its own.
const DEVELOPMENT_MASTER_KEY: &[u8] = b"agentry development audit key (public, not a secret)";

/// The audit keys derived from one master key.
#[derive(Clone)]
pub struct AuditKey {
    id: String,
    chain: hmac::Key,
    anchor: hmac::Key,
}

impl AuditKey {
    /// Derive the chain and anchor keys (and the key id) from a master key's bytes.
    pub fn derive(master: &[u8]) -> Self {
        let chain = derive(master, CHAIN_INFO);
        let anchor = derive(master, ANCHOR_INFO);
        let id = key_id(&chain);
        Self { id, chain: hmac::Key::new(hmac::HMAC_SHA256, &chain), anchor: hmac::Key::new(hmac::HMAC_SHA256, &anchor) }
    }

    /// The key id stored with events and anchors.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn chain_mac(&self, message: &[u8]) -> String {
        hex::encode(hmac::sign(&self.chain, message).as_ref())
    }

    /// Constant-time check of a hex MAC made by [`Self::chain_mac`].
    pub(crate) fn chain_mac_holds(&self, message: &[u8], mac_hex: &str) -> bool {
        hex::decode(mac_hex).is_ok_and(|tag| hmac::verify(&self.chain, message, &tag).is_ok())
    }

    pub(crate) fn anchor_mac(&self, message: &[u8]) -> String {
        hex::encode(hmac::sign(&self.anchor, message).as_ref())
    }

    /// Constant-time check of a hex MAC made by [`Self::anchor_mac`].
    pub(crate) fn anchor_mac_holds(&self, message: &[u8], mac_hex: &str) -> bool {
        hex::decode(mac_hex).is_ok_and(|tag| hmac::verify(&self.anchor, message, &tag).is_ok())
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("id", &self.id).finish_non_exhaustive()
    }
}

/// The keys a server holds: the current one (new events and anchors) and
/// previous ones (verification only).
#[derive(Clone, Debug)]
pub struct AuditKeys {
    current: AuditKey,
    previous: Vec<AuditKey>,
}

impl AuditKeys {
    /// Keys from the current master key and any previous ones (duplicates of
    /// the current key are ignored).
    pub fn from_master_keys<'a>(current: &[u8], previous: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let current = AuditKey::derive(current);
        let mut keys = Self { current, previous: Vec::new() };
        for master in previous {
            let key = AuditKey::derive(master);
            if keys.get(key.id()).is_none() {
                keys.previous.push(key);
            }
        }
        keys
    }

    /// Keys from a public, fixed master key: for tests and benchmarks only
    /// (anyone can recompute such a chain). [`crate::Audit::new`] uses them.
    pub fn development() -> Self {
        Self::from_master_keys(DEVELOPMENT_MASTER_KEY, [])
    }

    /// The key new events and anchors use.
    pub fn current(&self) -> &AuditKey {
        &self.current
    }

    /// The key with this id, if held.
    pub fn get(&self, id: &str) -> Option<&AuditKey> {
        std::iter::once(&self.current).chain(&self.previous).find(|key| key.id == id)
    }

    /// Ids of every key held, current first.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.current).chain(&self.previous).map(AuditKey::id).collect()
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    #[test]
    fn keys_are_deterministic_separate_per_label_and_identified() {
        let a = AuditKey::derive(b"master key a");
        let again = AuditKey::derive(b"master key a");
        let b = AuditKey::derive(b"master key b");
        assert_eq!(a.id(), again.id());
        assert_ne!(a.id(), b.id());
        assert_eq!(a.id().len(), 16);
        assert_eq!(a.chain_mac(b"m"), again.chain_mac(b"m"));
        assert_ne!(a.chain_mac(b"m"), a.anchor_mac(b"m"), "chain and anchor keys differ");
        assert_ne!(a.chain_mac(b"m"), b.chain_mac(b"m"));
        assert!(a.chain_mac_holds(b"m", &a.chain_mac(b"m")));
        assert!(!a.chain_mac_holds(b"m", &b.chain_mac(b"m")));
        assert!(!a.chain_mac_holds(b"m", "not hex"));
        // Not a plain hash of the message.
        assert_ne!(a.chain_mac(b"m"), hex::encode(Sha256::digest(b"m")));
    }

    #[test]
    fn a_key_set_finds_current_and_previous_keys_by_id() {
        let keys = AuditKeys::from_master_keys(b"new", [b"old".as_slice(), b"new".as_slice()]);
        let old = AuditKey::derive(b"old");
        assert_eq!(keys.ids(), vec![AuditKey::derive(b"new").id(), old.id()]);
        assert!(keys.get(old.id()).is_some());
        assert!(keys.get("0000000000000000").is_none());
    }
}
