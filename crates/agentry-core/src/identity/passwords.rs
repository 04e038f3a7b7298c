//! Password hashing (argon2id, PHC strings) and the password policy.
//!
//! Hashing and verification run on the blocking pool: argon2 is meant to be
//! slow (~tens of ms) and must not stall the async workers. A login for an
//! unknown account still verifies against a fixed dummy hash, so the answer
//! takes the same time whether or not the account exists.
//!
//! Must not: store anything or know about users (the identity service does).

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Params, Version};

use super::Error;

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Argon2Settings {
    /// Memory in KiB (OWASP: ≥ 19456).
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Hashes and verifications running at once (each holds `memory_kib`);
    /// more wait their turn, so a flood of sign-ins cannot exhaust memory or
    /// the blocking pool.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: u32,
}

fn default_max_concurrent() -> u32 {
    std::thread::available_parallelism().map_or(2, |n| n.get() as u32).max(2)
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1, max_concurrent: default_max_concurrent() }
    }
}

/// What a new password must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    /// Require at least one letter and one digit or symbol.
    pub require_mixed: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 12, max_length: 256, require_mixed: true }
    }
}

impl PasswordPolicy {
    /// Check a new password; a failure names `param` (the request field).
    pub fn check(&self, password: &str, param: &str) -> Result<(), Error> {
        let length = password.chars().count();
        let invalid = |message: String| Error::invalid(message, param);
        if length < self.min_length {
            return Err(invalid(format!("password must have at least {} characters", self.min_length)));
        }
        if length > self.max_length {
            return Err(invalid(format!("password must have at most {} characters", self.max_length)));
        }
        if self.require_mixed && !(password.chars().any(char::is_alphabetic) && password.chars().any(|c| !c.is_alphabetic())) {
            return Err(invalid("password must mix letters with digits or symbols".into()));
        }
        Ok(())
    }
}

/// How long a password check waits for a turn at argon2 before "busy".
const PERMIT_WAIT: Duration = Duration::from_secs(5);
/// Longer presented passwords are never hashed (the policy's maximum is far below).
const MAX_VERIFIED_BYTES: usize = 4096;

/// Hashes and verifies passwords with fixed parameters.
#[derive(Clone)]
pub struct PasswordHasherPool {
    argon2: Arc<Argon2<'static>>,
    /// Verified against when the account does not exist (equal timing).
    dummy_hash: Arc<str>,
    /// Bounds the argon2 computations in flight (`max_concurrent`).
    permits: Arc<tokio::sync::Semaphore>,
}

impl PasswordHasherPool {
    pub fn new(settings: Argon2Settings) -> Result<Self, Error> {
        let params = Params::new(settings.memory_kib, settings.iterations, settings.parallelism, None).map_err(|e| Error::Internal(format!("invalid argon2 parameters: {e}")))?;
        if settings.max_concurrent == 0 {
            return Err(Error::invalid("identity.argon2.max_concurrent must be at least 1", "max_concurrent"));
        }
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let salt = SaltString::generate(&mut OsRng);
        let dummy_hash = argon2.hash_password(b"agentry timing equaliser", &salt).map_err(|e| Error::Internal(format!("argon2: {e}")))?.to_string();
        Ok(Self { argon2: Arc::new(argon2), dummy_hash: dummy_hash.into(), permits: Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent as usize)) })
    }

    /// A turn at argon2, or "busy" after [`PERMIT_WAIT`]: under a flood,
    /// callers are turned away rather than queued without bound.
    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Error> {
        match tokio::time::timeout(PERMIT_WAIT, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(Error::Internal(format!("argon2 permits: {closed}"))),
            Err(_) => Err(Error::RateLimited { message: "the server is busy checking passwords; retry shortly".into(), retry_after: Duration::from_secs(1) }),
        }
    }

    /// A PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, Error> {
        let _permit = self.permit().await?;
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2.hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await
        .map_err(|e| Error::Internal(format!("hashing task: {e}")))?
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
    }

    /// Whether `password` matches `hash`; with `None` (no such account or no
    /// password) verifies against the dummy hash and answers `false`.
    /// A password longer than [`MAX_VERIFIED_BYTES`] is wrong without being hashed.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, Error> {
        if password.len() > MAX_VERIFIED_BYTES {
            return Ok(false);
        }
        let _permit = self.permit().await?;
        let argon2 = self.argon2.clone();
        let real = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches =
            tokio::task::spawn_blocking(move || PasswordHash::new(&hash).is_ok_and(|parsed| argon2.verify_password(password.as_bytes(), &parsed).is_ok())).await.unwrap_or(false);
        Ok(matches && real)
    }
}
