//! Signing secrets and signatures per the Standard Webhooks specification
//! (<https://www.standardwebhooks.com>): a secret is `whsec_` followed by
//! the base64 of its key; a message's signature is `v1,` followed by the
//! base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`;
//! during a rotation's overlap every live key signs, the signatures
//! separated by spaces, so a receiver holding either secret verifies.
//!
//! Written here rather than with a crate: the scheme is one HMAC (ring,
//! already in the workspace) and a base64 string, and the tests check it
//! against the reference implementation (`standardwebhooks` on PyPI).
//!
//! Must not: store or log a key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// Bytes of a new key.
const KEY_BYTES: usize = 32;

/// One signing key and, once rotated out, when it stops signing (no `Debug`: it would print the key).
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKey {
    /// The key (base64).
    key: String,
    /// When it stops signing (ms); `None` for the current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    until_ms: Option<i64>,
}

/// A webhook's keys: the current one first.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SigningKeys {
    keys: Vec<SigningKey>,
}

impl SigningKeys {
    /// A fresh key set, and its secret as shown once (`whsec_…`).
    pub fn generate() -> (Self, String) {
        let (key, secret) = new_key();
        (Self { keys: vec![key] }, secret)
    }

    /// Rotate: a new current key; the old current one keeps signing until
    /// `old_until_ms` (older ones are dropped). Returns the new secret.
    pub fn rotate(&mut self, old_until_ms: i64) -> String {
        let (key, secret) = new_key();
        let mut keys = vec![key];
        if let Some(mut current) = self.keys.first().cloned() {
            current.until_ms = Some(old_until_ms);
            keys.push(current);
        }
        self.keys = keys;
        secret
    }

    /// The `webhook-signature` header of a message: one signature per key still signing at `now_ms`.
    pub fn sign(&self, message_id: &str, timestamp_secs: i64, body: &[u8], now_ms: i64) -> String {
        let signatures: Vec<String> = self
            .keys
            .iter()
            .filter(|key| key.until_ms.is_none_or(|until| until > now_ms))
            .filter_map(|key| STANDARD.decode(&key.key).ok())
            .map(|key| {
                let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
                let mut context = hmac::Context::with_key(&key);
                context.update(message_id.as_bytes());
                context.update(b".");
                context.update(timestamp_secs.to_string().as_bytes());
                context.update(b".");
                context.update(body);
                format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
            })
            .collect();
        signatures.join(" ")
    }

    /// When the previous key stops signing, during a rotation's overlap.
    pub fn previous_until_ms(&self, now_ms: i64) -> Option<i64> {
        self.keys.iter().filter_map(|key| key.until_ms).find(|until| *until > now_ms)
    }
}

fn new_key() -> (SigningKey, String) {
    let mut bytes = [0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let key = STANDARD.encode(bytes);
    let secret = format!("whsec_{key}");
    (SigningKey { key, until_ms: None }, secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_key_signs_until_its_overlap_ends() {
        let (mut keys, _) = SigningKeys::generate();
        let one = keys.sign("msg_1", 1_700_000_000, b"{}", 0);
        assert!(one.starts_with("v1,") && !one.contains(' '));
        keys.rotate(1_000);
        let both = keys.sign("msg_1", 1_700_000_000, b"{}", 999);
        assert_eq!(both.split(' ').count(), 2);
        assert!(both.ends_with(&one), "the old key's signature is unchanged");
        assert_eq!(keys.sign("msg_1", 1_700_000_000, b"{}", 1_000).split(' ').count(), 1);
    }

    #[test]
    fn the_signature_matches_the_specification_example() {
        // The example of the Standard Webhooks reference libraries.
        let keys = SigningKeys { keys: vec![SigningKey { key: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), until_ms: None }] };
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(keys.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body, 0), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
