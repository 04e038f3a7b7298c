//! API keys: format, hashing and the verified-key cache.
//!
//! A key is `agk_` + 43 base64url characters (32 random bytes). It is shown
//! once; the database keeps its SHA-256 (a fast hash is right here: the
//! secret has 256 bits of entropy, so there is nothing to brute-force, and
//! verification must cost microseconds) and a display prefix.
//!
//! Verified keys are cached by hash for [`CACHE_TTL`]: that is the documented
//! bound on how long a revocation made on another replica can go unnoticed.
//! Revocation through this process invalidates its cache entry at once.
//!
//! Must not: decide what a key may do (the identity service intersects its
//! scopes with the owner's current role).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The recognisable start of every key (secret scanners can match it).
pub const KEY_PREFIX: &str = "agk_";
/// How long a verified key is trusted without asking the database.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Characters of the key kept for display (`agk_` + 8).
const DISPLAY_LEN: usize = 12;

/// A freshly generated key: the secret (to show once) and what is stored.
pub struct NewKey {
    pub secret: String,
    pub hash: String,
    pub display_prefix: String,
}

pub fn generate() -> NewKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    NewKey { hash: hash(&secret), display_prefix: secret[..DISPLAY_LEN].to_owned(), secret }
}

/// Hex SHA-256 of a key (or of a refresh token).
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether a bearer credential looks like one of our API keys.
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(KEY_PREFIX) && credential.len() == KEY_PREFIX.len() + 43
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_recognisable_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(looks_like_key(&a.secret));
        assert!(!looks_like_key("sk-master"));
        assert_eq!(hash(&a.secret), a.hash);
        assert_eq!(a.display_prefix.len(), 12);
        assert!(a.secret.starts_with(&a.display_prefix));
    }
}
