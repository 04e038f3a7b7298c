//! JWT access tokens: Ed25519 (`EdDSA`) signatures with a `kid`, the JWKS
//! that publishes the public keys, and signing-key rotation.
//!
//! Keys live in the database (`signing_keys`) so every replica signs and
//! verifies with the same set. Rotation adds a new key and retires the old
//! ones; a retired key still verifies until every token it signed has
//! expired, so rotating logs nobody out. A replica that meets an unknown
//! `kid` reloads the set once (at most every few seconds).
//!
//! Verification accepts only `EdDSA` with a known `kid`, our issuer and
//! audience, `typ = access`, and a current `exp`/`nbf` (no `alg: none`, no
//! algorithm confusion: the algorithm list has one entry).
//!
//! Private keys are stored sealed (`crate::secrets`, bound to their `kid`):
//! a row that does not open under a master key the server holds is an
//! error, never a key to trust.
//!
//! Must not: decide whether the session behind a token is still live (the
//! identity service checks that), or store a private key unsealed.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parking_lot::RwLock;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

use agentry_db::Db;
use agentry_db::identity::SigningKeyRow;

use super::{Error, now_ms};
use crate::secrets::{Place, Sealer};

pub const ISSUER: &str = "agentry";
pub const AUDIENCE: &str = "agentry-api";
/// Clock skew tolerated on `exp`/`nbf`.
const LEEWAY_SECS: u64 = 5;
/// Least time between two reloads triggered by unknown `kid`s.
const RELOAD_INTERVAL_MS: i64 = 5_000;

/// What a token is for: API access, or the second step of a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    Access,
    /// Proves the password was right; exchanged with a second factor for a session.
    MfaChallenge,
}

impl TokenUse {
    fn typ(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::MfaChallenge => "mfa",
        }
    }
}

/// How long an MFA challenge stays valid.
pub const MFA_CHALLENGE_TTL: Duration = Duration::from_secs(300);

/// The claims of an access token (or an MFA challenge: `typ = mfa`, empty `sid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    pub typ: String,
}

struct LoadedKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_key: String,
    retired_at_ms: Option<i64>,
}

struct KeySet {
    /// Newest first; the first unretired key signs.
    keys: Vec<LoadedKey>,
    loaded_at_ms: i64,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct TokenSigner {
    db: Db,
    sealer: Sealer,
    ttl: Duration,
    set: Arc<RwLock<KeySet>>,
}

fn load_key(row: &SigningKeyRow, sealer: &Sealer) -> Result<LoadedKey, Error> {
    let bad = |what: &str| Error::Internal(format!("signing key {}: {what}", row.kid));
    let private_der = sealer.open_string(&Place::signing_key(&row.kid), &row.private_der).map_err(|e| Error::Internal(e.to_string()))?;
    let der = STANDARD.decode(&private_der).map_err(|_| bad("private key is not base64"))?;
    Ok(LoadedKey {
        kid: row.kid.clone(),
        encoding: EncodingKey::from_ed_der(&der),
        decoding: DecodingKey::from_ed_components(&row.public_key).map_err(|e| bad(&e.to_string()))?,
        public_key: row.public_key.clone(),
        retired_at_ms: row.retired_at_ms,
    })
}

/// A new key pair, its private key sealed for its row.
fn generate_key(now: i64, sealer: &Sealer) -> Result<SigningKeyRow, Error> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| Error::Internal("cannot generate an Ed25519 key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| Error::Internal("generated key does not parse".into()))?;
    let kid = format!("k{}", uuid::Uuid::now_v7().simple());
    let private_der = sealer.seal(&Place::signing_key(&kid), STANDARD.encode(pkcs8.as_ref()).as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(SigningKeyRow { kid, private_der, public_key: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()), created_at_ms: now, retired_at_ms: None })
}

impl TokenSigner {
    /// Load the keys, creating the first one if there is none.
    pub async fn load(db: Db, ttl: Duration, sealer: Sealer) -> Result<Self, Error> {
        let signer = Self { db, sealer, ttl, set: Arc::new(RwLock::new(KeySet { keys: Vec::new(), loaded_at_ms: 0 })) };
        signer.reload().await?;
        if signer.set.read().keys.iter().all(|k| k.retired_at_ms.is_some()) {
            signer.db.insert_signing_key(&generate_key(now_ms(), &signer.sealer)?).await?;
            signer.reload().await?;
        }
        Ok(signer)
    }

    /// Access-token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    async fn reload(&self) -> Result<(), Error> {
        let now = now_ms();
        let rows = self.db.signing_keys(now - self.ttl.as_millis() as i64 - (LEEWAY_SECS as i64) * 1000).await?;
        let keys = rows.iter().map(|row| load_key(row, &self.sealer)).collect::<Result<Vec<_>, _>>()?;
        *self.set.write() = KeySet { keys, loaded_at_ms: now };
        Ok(())
    }

    /// Make a new signing key current; older keys keep verifying until their tokens expire.
    pub async fn rotate(&self) -> Result<String, Error> {
        let now = now_ms();
        let row = generate_key(now, &self.sealer)?;
        self.db.insert_signing_key(&row).await?;
        self.db.retire_signing_keys_except(&row.kid, now).await?;
        self.reload().await?;
        Ok(row.kid)
    }

    /// A signed token: an access token for a session, or an MFA challenge.
    pub fn issue(&self, user_id: &str, session_id: &str, purpose: TokenUse) -> Result<(String, AccessClaims), Error> {
        let now = now_ms() / 1000;
        let ttl = match purpose {
            TokenUse::Access => self.ttl,
            TokenUse::MfaChallenge => MFA_CHALLENGE_TTL,
        };
        let claims = AccessClaims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: user_id.into(),
            sid: session_id.into(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            typ: purpose.typ().into(),
        };
        let set = self.set.read();
        let key = set.keys.iter().find(|k| k.retired_at_ms.is_none()).ok_or_else(|| Error::Internal("no active signing key".into()))?;
        let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::EdDSA) };
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|e| Error::Internal(format!("sign token: {e}")))?;
        Ok((token, claims))
    }

    /// Verify signature and claims for the given use; any failure is
    /// `TokenInvalid` with a reason (`TokenExpired` when only `exp` failed).
    pub async fn verify(&self, token: &str, purpose: TokenUse) -> Result<AccessClaims, Error> {
        let invalid = |reason: &str| Error::TokenInvalid(reason.to_owned());
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed token"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(invalid("unsupported algorithm"));
        }
        let kid = header.kid.ok_or_else(|| invalid("token has no kid"))?;
        if !self.knows(&kid) && now_ms() - self.set.read().loaded_at_ms > RELOAD_INTERVAL_MS {
            self.reload().await?;
        }
        let set = self.set.read();
        let key = set.keys.iter().find(|k| k.kid == kid).ok_or_else(|| invalid("unknown signing key"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => Error::TokenExpired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => invalid("token not yet valid"),
            jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature"),
            _ => invalid("invalid token"),
        })?;
        if data.claims.typ != purpose.typ() {
            return Err(invalid("wrong kind of token"));
        }
        Ok(data.claims)
    }

    fn knows(&self, kid: &str) -> bool {
        self.set.read().keys.iter().any(|k| k.kid == kid)
    }

    /// The public keys as a JWK Set (RFC 7517), current and still-verifying ones.
    pub fn jwks(&self) -> serde_json::Value {
        let set = self.set.read();
        let keys: Vec<_> = set.keys.iter().map(|k| serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.public_key })).collect();
        serde_json::json!({ "keys": keys })
    }
}
