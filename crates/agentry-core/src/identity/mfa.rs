//! The second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, one step
//! of clock skew) with single-use recovery codes.
//!
//! Enrolment is two steps — `enrol_totp` stores a pending secret and returns
//! the otpauth URI, `confirm_totp` checks a first code, turns MFA on and
//! returns ten recovery codes (shown once, stored as SHA-256 hashes: they
//! carry 80 random bits, so a fast hash is enough). A code's time step is
//! claimed in the database, so a code works once even across replicas.
//! Failed codes count toward the account lockout like failed passwords.
//! The secret is stored sealed (`crate::secrets`, bound to the user) and
//! opened only to compute codes.

use agentry_types::AuditAction;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use totp_rs::{Algorithm, Secret, TOTP};

use super::sessions::{LoginTokens, signed_in};
use super::tokens::TokenUse;
use super::{Error, Identity, Principal, RequestMeta, api_keys, now_ms};
use crate::audit::{Actor, Outcome};
use crate::secrets::Place;

/// The issuer shown in authenticator apps.
pub const TOTP_ISSUER: &str = "Agentry";
const STEP_SECS: u64 = 30;
const RECOVERY_CODES: usize = 10;

/// A pending enrolment: add the secret to an authenticator app, then confirm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// Base32, for manual entry.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub otpauth_uri: String,
}

fn totp(secret_base32: &str, account: &str) -> Result<TOTP, Error> {
    let bytes = Secret::Encoded(secret_base32.to_owned()).to_bytes().map_err(|e| Error::Internal(format!("totp secret: {e:?}")))?;
    TOTP::new(Algorithm::SHA1, 6, 1, STEP_SECS, bytes, Some(TOTP_ISSUER.to_owned()), account.to_owned()).map_err(|e| Error::Internal(format!("totp: {e}")))
}

/// The time step `code` belongs to (now, or one step either side), if any.
fn matching_step(totp: &TOTP, code: &str) -> Option<i64> {
    let now = now_ms() as u64 / 1000;
    let current = now / STEP_SECS;
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .find(|step| subtle::ConstantTimeEq::ct_eq(totp.generate(step * STEP_SECS).as_bytes(), code.as_bytes()).into())
        .map(|step| step as i64)
}

fn recovery_code() -> String {
    let mut bytes = [0u8; 10];
    rand::rng().fill_bytes(&mut bytes);
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes).to_lowercase().replace(['-', '_'], "x");
    format!("{}-{}", &text[..6], &text[6..12])
}

/// A second factor as presented.
pub enum SecondFactor<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

impl Identity {
    /// The user's TOTP secret (base32) from its sealed stored form.
    fn open_totp_secret(&self, user_id: &str, stored: &str) -> Result<String, Error> {
        self.sealer.open_string(&Place::totp_secret(user_id), stored).map_err(|e| Error::Internal(e.to_string()))
    }

    /// Check a second factor for `user_id` (claims the step or the recovery code).
    async fn check_factor(&self, user_id: &str, factor: SecondFactor<'_>) -> Result<bool, Error> {
        let state = self.db.mfa(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        match factor {
            SecondFactor::Totp(code) => {
                let (Some(stored), true) = (state.totp_secret, state.totp_enabled) else { return Ok(false) };
                let secret = self.open_totp_secret(user_id, &stored)?;
                let user = self.db.user_by_id(user_id).await?.ok_or(Error::NotFound("user".into()))?;
                match matching_step(&totp(&secret, &user.email)?, code.trim()) {
                    Some(step) => Ok(self.db.claim_totp_step(user_id, step).await?),
                    None => Ok(false),
                }
            }
            SecondFactor::RecoveryCode(code) => Ok(state.totp_enabled && self.db.use_recovery_code(user_id, &api_keys::hash(code.trim()), now_ms()).await?),
        }
    }

    /// Start TOTP enrolment (replaces a pending, unconfirmed one).
    pub async fn enrol_totp(&self, principal: &Principal, meta: &RequestMeta) -> Result<TotpEnrolment, Error> {
        let (user_id, _) = signed_in(principal)?;
        if self.db.mfa(user_id).await?.is_some_and(|m| m.totp_enabled) {
            return Err(Error::AlreadyExists("multi-factor enrolment"));
        }
        let user = self.db.user_by_id(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        let mut bytes = [0u8; 20];
        rand::rng().fill_bytes(&mut bytes);
        let secret = Secret::Raw(bytes.to_vec()).to_encoded().to_string();
        let otpauth_uri = totp(&secret, &user.email)?.get_url();
        let sealed = self.sealer.seal(&Place::totp_secret(user_id), secret.as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
        self.db.set_totp(user_id, Some(&sealed), false, now_ms()).await?;
        self.record(None, principal.actor(), AuditAction::MfaEnrol, None, Outcome::Success, meta, serde_json::json!({ "method": "totp" })).await?;
        Ok(TotpEnrolment { secret, otpauth_uri })
    }

    /// Confirm enrolment with a first code; returns the recovery codes (shown once).
    pub async fn confirm_totp(&self, principal: &Principal, code: &str, meta: &RequestMeta) -> Result<Vec<String>, Error> {
        let (user_id, _) = signed_in(principal)?;
        let state = self.db.mfa(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        let (Some(stored), false) = (state.totp_secret, state.totp_enabled) else {
            return Err(Error::invalid("no pending enrolment: start one first", "code"));
        };
        let secret = self.open_totp_secret(user_id, &stored)?;
        let user = self.db.user_by_id(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        let Some(step) = matching_step(&totp(&secret, &user.email)?, code.trim()) else {
            self.record(None, principal.actor(), AuditAction::MfaEnrolConfirm, None, Outcome::Failure, meta, serde_json::json!({})).await?;
            return Err(Error::invalid("the code does not match", "code"));
        };
        self.db.set_totp(user_id, Some(&stored), true, now_ms()).await?;
        self.db.claim_totp_step(user_id, step).await?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        self.db.replace_recovery_codes(user_id, &codes.iter().map(|c| api_keys::hash(c)).collect::<Vec<_>>()).await?;
        self.record(None, principal.actor(), AuditAction::MfaEnrolConfirm, None, Outcome::Success, meta, serde_json::json!({ "method": "totp" })).await?;
        Ok(codes)
    }

    /// Turn MFA off; needs a current code or a recovery code.
    pub async fn disable_mfa(&self, principal: &Principal, factor: SecondFactor<'_>, meta: &RequestMeta) -> Result<(), Error> {
        let (user_id, _) = signed_in(principal)?;
        if !self.check_factor(user_id, factor).await? {
            self.record_auth_failure(Some(user_id), AuditAction::MfaDisable, meta, serde_json::json!({})).await?;
            return Err(Error::invalid("the code does not match", "code"));
        }
        self.db.set_totp(user_id, None, false, now_ms()).await?;
        self.db.replace_recovery_codes(user_id, &[]).await?;
        self.record(None, principal.actor(), AuditAction::MfaDisable, None, Outcome::Success, meta, serde_json::json!({})).await
    }

    /// The second step of a sign-in: the challenge from `login` and a factor.
    pub async fn verify_mfa(&self, mfa_token: &str, factor: SecondFactor<'_>, meta: &RequestMeta) -> Result<LoginTokens, Error> {
        let claims = self.tokens.verify(mfa_token, TokenUse::MfaChallenge).await?;
        let user = self.db.user_by_id(&claims.sub).await?.filter(|u| u.is_active).ok_or(Error::InvalidCredentials)?;
        let now = now_ms();
        if let Some(until) = user.locked_until_ms.filter(|&until| until > now) {
            return Err(Error::Locked { retry_after: std::time::Duration::from_millis((until - now) as u64) });
        }
        let method = match factor {
            SecondFactor::Totp(_) => "totp",
            SecondFactor::RecoveryCode(_) => "recovery_code",
        };
        if !self.check_factor(&user.id, factor).await? {
            self.record_auth_failure(Some(&user.id), AuditAction::MfaVerify, meta, serde_json::json!({ "method": method })).await?;
            return Err(Error::InvalidCredentials);
        }
        if user.failed_logins > 0 {
            self.db.clear_login_failures(&user.id).await?;
        }
        let tokens = self.open_session(&user.id, true, meta).await?;
        let remaining = self.db.unused_recovery_codes(&user.id).await?;
        self.record(
            None,
            Actor::User(user.id.clone()),
            AuditAction::AuthLogin,
            Some(format!("session:{}", tokens.session_id)),
            Outcome::Success,
            meta,
            serde_json::json!({ "mfa": method, "recovery_codes_left": remaining }),
        )
        .await?;
        Ok(tokens)
    }
}
