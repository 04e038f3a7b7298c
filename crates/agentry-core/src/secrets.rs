//! Secrets at rest: values the server must read back — JWT signing keys,
//! TOTP secrets, the headers (credentials) of registered MCP servers — are
//! sealed with AES-256-GCM under a key derived from the master key before
//! they are stored, and opened where they are used. Also the one HKDF step
//! every key derived from the master key goes through ([`derive_key`]; the
//! audit chain's keys use it with their own labels), and the two passes over
//! stored secrets: [`seal_stored`] (startup: seal what is still in clear)
//! and [`reseal_stored`] (master key rotation).
//!
//! Why a stored value is `enc:v1:<key_id>:<base64url(nonce || ciphertext || tag)>`:
//! - the `enc:v1:` prefix tells a sealed value from one written in clear by
//!   an older version (the startup pass seals those, and only those), and
//!   leaves room for another scheme (`v2`) without guessing;
//! - `key_id` names the master key that sealed the value (16 hex characters
//!   of SHA-256 of the derived key: not secret, not reversible), so after a
//!   rotation values sealed under a previous master key open while the
//!   server holds it (`master.key.previous`), and one whose key is gone
//!   fails with an error naming that id instead of a bare "does not open";
//! - the nonce is 96 random bits per value (GCM's nonce size): one key seals
//!   far fewer than 2^32 values, where random nonces would start to risk a
//!   repeat;
//! - base64url text keeps the columns TEXT on SQLite and PostgreSQL alike.
//!
//! The plaintext is exactly what the column held in clear before sealing
//! (base64 DER, base32 secret, JSON object), so the startup pass seals a
//! value without knowing what it is.
//!
//! The ciphertext is bound to its place ([`Place`]: column and row, e.g.
//! `users.totp_secret:<user id>`) as associated data, so a sealed value
//! copied to another row or column does not open, and nothing but a holder
//! of the master key can write a value that opens (a signing key inserted
//! into the database by someone without it is refused, not trusted).
//!
//! AEAD and HKDF come from `ring`; nothing here is hand-written crypto.
//!
//! Must not: read files or settings (the server passes the master keys in),
//! touch the database except through agentry-db's `secrets` listing and
//! rewrite, or put plaintext or key material in errors or logs (errors name
//! places and key ids only).

use std::sync::Arc;

use agentry_db::secrets::{SecretSlot, SecretUpdate};
use agentry_db::{Db, DbError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use ring::{aead, hkdf};
use sha2::{Digest, Sha256};

/// HKDF info label of the key that seals secrets at rest.
pub const SECRETS_INFO: &[u8] = b"agentry secrets v1";
/// What every sealed value starts with.
pub const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = aead::NONCE_LEN;
/// The public stand-in master key of [`Sealer::development`].
const DEVELOPMENT_MASTER_KEY: &[u8] = b"agentry development secrets key (public, not a secret)";

/// HKDF-SHA256 (empty salt) of `master` under `info`: one 32-byte block.
/// Every key derived from a master key comes from here, each with its own label.
pub(crate) fn derive_key(master: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(master);
    match prk.expand(&[info], hkdf::HKDF_SHA256).and_then(|okm| okm.fill(&mut out)) {
        Ok(()) => out,
        // 32 bytes is HKDF_SHA256's own output length, far below its 255 × 32 limit.
        Err(_) => unreachable!("HKDF-SHA256 always yields one 32-byte block"),
    }
}

/// The public id of a derived key: the first 16 hex characters of its SHA-256.
pub(crate) fn key_id(derived: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(derived))[..16].to_owned()
}

/// Where a sealed value lives (column and row), bound to it as associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place(String);

impl Place {
    /// `signing_keys.private_der` of key `kid`.
    pub fn signing_key(kid: &str) -> Self {
        Self(format!("signing_keys.private_der:{kid}"))
    }

    /// `users.totp_secret` of a user.
    pub fn totp_secret(user_id: &str) -> Self {
        Self(format!("users.totp_secret:{user_id}"))
    }

    /// `mcp_servers.headers` of a tenant's server (names hold no `/`).
    pub fn mcp_headers(tenant_id: &str, name: &str) -> Self {
        Self(format!("mcp_servers.headers:{tenant_id}/{name}"))
    }

    /// `webhooks.secrets` of a webhook endpoint.
    pub fn webhook_secrets(id: &str) -> Self {
        Self(format!("webhooks.secrets:{id}"))
    }

    /// The place of a stored secret as agentry-db lists it.
    pub fn of(slot: &SecretSlot) -> Self {
        match slot {
            SecretSlot::SigningKey { kid } => Self::signing_key(kid),
            SecretSlot::TotpSecret { user_id } => Self::totp_secret(user_id),
            SecretSlot::McpHeaders { tenant_id, name } => Self::mcp_headers(tenant_id, name),
            SecretSlot::WebhookSecrets { id } => Self::webhook_secrets(id),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a secret could not be sealed, opened or rewritten. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{0}: the stored value is not sealed (the startup step seals values stored in clear)")]
    NotSealed(Place),
    #[error("{0}: the sealed value is malformed")]
    Malformed(Place),
    #[error("{place}: sealed under master key {key_id}, which this server does not hold (list that master key in master.key.previous)")]
    UnknownKey { place: Place, key_id: String },
    #[error("{0}: the sealed value does not open (altered, or copied from another place)")]
    Rejected(Place),
    #[error("{0}: cannot seal the value")]
    Seal(Place),
    #[error(transparent)]
    Db(#[from] DbError),
}

struct SealKey {
    id: String,
    key: aead::LessSafeKey,
}

impl SealKey {
    fn derive(master: &[u8]) -> Self {
        let derived = derive_key(master, SECRETS_INFO);
        let id = key_id(&derived);
        let key = match aead::UnboundKey::new(&aead::AES_256_GCM, &derived) {
            Ok(key) => aead::LessSafeKey::new(key),
            // AES-256-GCM takes exactly 32 bytes of key, which HKDF gave.
            Err(_) => unreachable!("a 32-byte key fits AES-256-GCM"),
        };
        Self { id, key }
    }
}

/// Seals with the current master key's derived key; opens with it or with
/// any previous master key's. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    /// Current first.
    keys: Arc<[SealKey]>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("key_ids", &self.ids()).finish()
    }
}

impl Sealer {
    /// Keys from the current master key and any previous ones (duplicates ignored).
    pub fn from_master_keys<'a>(current: &[u8], previous: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut keys = vec![SealKey::derive(current)];
        for master in previous {
            let key = SealKey::derive(master);
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        Self { keys: keys.into() }
    }

    /// A sealer from a public, fixed master key: for tests and benchmarks
    /// only (anyone can open what it seals). A server passes its own keys.
    pub fn development() -> Self {
        Self::from_master_keys(DEVELOPMENT_MASTER_KEY, [])
    }

    /// The id of the key new values are sealed under.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Ids of every key held, current first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether `stored` is a sealed value (of any key).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED_PREFIX)
    }

    /// Seal `plaintext` for `place` under the current key.
    pub fn seal(&self, place: &Place, plaintext: &[u8]) -> Result<String, SecretError> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut body = plaintext.to_vec();
        key.key
            .seal_in_place_append_tag(aead::Nonce::assume_unique_for_key(nonce), aead::Aad::from(place.as_str().as_bytes()), &mut body)
            .map_err(|_| SecretError::Seal(place.clone()))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + body.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        Ok(format!("{SEALED_PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(&sealed)))
    }

    /// Open a value sealed for `place` under any key held.
    pub fn open(&self, place: &Place, stored: &str) -> Result<Vec<u8>, SecretError> {
        let rest = stored.strip_prefix(SEALED_PREFIX).ok_or_else(|| SecretError::NotSealed(place.clone()))?;
        let (key_id, body) = rest.split_once(':').ok_or_else(|| SecretError::Malformed(place.clone()))?;
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| SecretError::UnknownKey { place: place.clone(), key_id: key_id.to_owned() })?;
        let mut bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| SecretError::Malformed(place.clone()))?;
        if bytes.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(SecretError::Malformed(place.clone()));
        }
        let mut ciphertext = bytes.split_off(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(&bytes).map_err(|_| SecretError::Malformed(place.clone()))?;
        let plaintext = key.key.open_in_place(nonce, aead::Aad::from(place.as_str().as_bytes()), &mut ciphertext).map_err(|_| SecretError::Rejected(place.clone()))?;
        Ok(plaintext.to_vec())
    }

    /// [`Self::open`] for a value that was UTF-8 text when sealed.
    pub fn open_string(&self, place: &Place, stored: &str) -> Result<String, SecretError> {
        String::from_utf8(self.open(place, stored)?).map_err(|_| SecretError::Malformed(place.clone()))
    }
}

/// What a pass over the stored secrets did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Stored secrets looked at.
    pub seen: usize,
    /// Rows rewritten.
    pub rewritten: u64,
    /// Ids of master keys that sealed stored values but are not held (they will not open).
    pub unknown_keys: std::collections::BTreeSet<String>,
}

/// The key id a sealed value names, if it is sealed.
fn sealed_key_id(stored: &str) -> Option<&str> {
    stored.strip_prefix(SEALED_PREFIX).and_then(|rest| rest.split_once(':')).map(|(id, _)| id)
}

/// Seal every stored secret that is still in clear (written before
/// secrets were sealed) and write it back; sealed values are left as they
/// are. Idempotent; run at startup right after the migrations.
pub async fn seal_stored(db: &Db, sealer: &Sealer) -> Result<SealReport, SecretError> {
    let stored = db.stored_secrets().await?;
    let mut updates = Vec::new();
    for secret in stored.iter().filter(|s| !Sealer::is_sealed(&s.value)) {
        let new = sealer.seal(&Place::of(&secret.slot), secret.value.as_bytes())?;
        updates.push(SecretUpdate { slot: secret.slot.clone(), old: secret.value.clone(), new });
    }
    let rewritten = if updates.is_empty() { 0 } else { db.rewrite_secrets(&updates, || Ok(())).await? };
    let held = sealer.ids();
    let unknown_keys = stored.iter().filter_map(|s| sealed_key_id(&s.value)).filter(|id| !held.contains(id)).map(str::to_owned).collect();
    Ok(SealReport { seen: stored.len(), rewritten, unknown_keys })
}

/// Reseal every stored secret under `to`'s current key: sealed values are
/// opened with `from` (every key it holds), values still in clear are taken
/// as they are. One transaction; `before_commit` runs inside it after the
/// updates (see [`Db::rewrite_secrets`]). A value that does not open stops
/// the whole pass before anything is written.
pub async fn reseal_stored<F>(db: &Db, from: &Sealer, to: &Sealer, before_commit: F) -> Result<SealReport, SecretError>
where
    F: FnOnce() -> Result<(), String>,
{
    let stored = db.stored_secrets().await?;
    let mut updates = Vec::with_capacity(stored.len());
    for secret in &stored {
        let place = Place::of(&secret.slot);
        let plaintext = if Sealer::is_sealed(&secret.value) { from.open(&place, &secret.value)? } else { secret.value.as_bytes().to_vec() };
        updates.push(SecretUpdate { slot: secret.slot.clone(), old: secret.value.clone(), new: to.seal(&place, &plaintext)? });
    }
    let rewritten = db.rewrite_secrets(&updates, before_commit).await?;
    Ok(SealReport { seen: stored.len(), rewritten, unknown_keys: Default::default() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_place_and_unaltered() {
        let sealer = Sealer::from_master_keys(b"master key a", []);
        let place = Place::totp_secret("u1");
        let sealed = sealer.seal(&place, b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(sealed.starts_with(&format!("enc:v1:{}:", sealer.current_id())), "{sealed}");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(sealer.open(&place, &sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_eq!(sealer.open_string(&place, &sealed).unwrap(), "JBSWY3DPEHPK3PXP");
        // Random nonces: the same secret seals differently each time.
        assert_ne!(sealer.seal(&place, b"JBSWY3DPEHPK3PXP").unwrap(), sealed);

        // Another row or column: refused.
        assert!(matches!(sealer.open(&Place::totp_secret("u2"), &sealed), Err(SecretError::Rejected(_))));
        assert!(matches!(sealer.open(&Place::signing_key("u1"), &sealed), Err(SecretError::Rejected(_))));

        // Any altered byte: refused.
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(body).unwrap();
        for index in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[index] ^= 1;
            let tampered = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes));
            assert!(matches!(sealer.open(&place, &tampered), Err(SecretError::Rejected(_))), "byte {index}");
            bytes[index] ^= 1;
        }
        let truncated = format!("{head}:{}", URL_SAFE_NO_PAD.encode(&bytes[..NONCE_LEN + 4]));
        assert!(matches!(sealer.open(&place, &truncated), Err(SecretError::Malformed(_))));
        assert!(matches!(sealer.open(&place, &format!("{head}:not base64!")), Err(SecretError::Malformed(_))));
        assert!(matches!(sealer.open(&place, "enc:v1:nokeyid"), Err(SecretError::Malformed(_))));
        assert!(matches!(sealer.open(&place, "JBSWY3DPEHPK3PXP"), Err(SecretError::NotSealed(_))));
    }

    #[test]
    fn previous_keys_open_and_unknown_keys_are_named() {
        let old = Sealer::from_master_keys(b"old master key", []);
        let place = Place::mcp_headers("t1", "files");
        let sealed = old.seal(&place, br#"{"Authorization":"Bearer x"}"#).unwrap();
        let rotated = Sealer::from_master_keys(b"new master key", [b"old master key".as_slice(), b"new master key".as_slice()]);
        assert_eq!(rotated.ids(), vec![Sealer::from_master_keys(b"new master key", []).current_id(), old.current_id()]);
        assert_eq!(rotated.open(&place, &sealed).unwrap(), br#"{"Authorization":"Bearer x"}"#);
        assert!(rotated.seal(&place, b"x").unwrap().contains(rotated.current_id()));

        let forgot = Sealer::from_master_keys(b"new master key", []);
        let error = forgot.open(&place, &sealed).unwrap_err();
        assert!(matches!(&error, SecretError::UnknownKey { key_id, .. } if key_id == old.current_id()), "{error:?}");
        let message = error.to_string();
        assert!(message.contains(old.current_id()) && message.contains("master.key.previous") && message.contains("mcp_servers.headers:t1/files"), "{message}");
        assert!(!message.contains("Bearer"));
    }

    #[test]
    fn derived_keys_are_separate_per_label_and_debug_shows_ids_only() {
        assert_ne!(derive_key(b"m", SECRETS_INFO), derive_key(b"m", crate::audit::CHAIN_INFO));
        assert_ne!(Sealer::from_master_keys(b"m", []).current_id(), crate::audit::AuditKeys::from_master_keys(b"m", []).current().id());
        let debug = format!("{:?}", Sealer::development());
        assert!(debug.contains("key_ids"), "{debug}");
    }
}
