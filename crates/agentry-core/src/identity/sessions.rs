//! Sign-in and sessions: password login with per-account lockout and
//! per-IP backoff, refresh-token rotation with reuse detection, logout,
//! listing and revoking sessions.
//!
//! A refresh token is used once: refreshing returns a new one and marks the
//! old one used. Presenting a used token again means it was copied, so the
//! whole session (the token family) is revoked and the reuse audited.

use agentry_types::AuditAction;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agentry_db::identity::SessionRow;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;

use super::tokens::TokenUse;
use super::{Credential, Error, Identity, Principal, RequestMeta, api_keys, now_ms};
use crate::audit::{Actor, Outcome};

/// What a correct password gets: tokens, or (with a second factor enrolled)
/// a challenge to answer at `/api/v1/auth/mfa/verify`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginOutcome {
    Tokens(LoginTokens),
    MfaRequired { mfa_required: bool, mfa_token: String, methods: [&'static str; 2], expires_in: u64 },
}

/// What a successful login or refresh returns.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LoginTokens {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    pub session_id: String,
    pub user_id: String,
}

/// A live session as its owner sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    pub id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at_ms: i64,
    pub last_used_at_ms: i64,
    pub expires_at_ms: i64,
    pub current: bool,
}

fn refresh_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("agr_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The user and session behind a signed-in principal; sessions, passwords
/// and second factors belong to users, not to API keys or the master key.
pub(crate) fn signed_in(principal: &Principal) -> Result<(&str, &str), Error> {
    match &principal.0 {
        Credential::User { user_id, session_id, .. } => Ok((user_id, session_id)),
        _ => Err(Error::invalid("this belongs to signed-in users, not to API keys or the master key", "authorization")),
    }
}

/// Normalised email (trimmed, lowercase).
pub(crate) fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Failed sign-ins for an e-mail address that has no account, counted
/// like a real account's so lockout does not tell whether one exists.
#[derive(Debug, Default)]
pub(crate) struct UnknownAccount {
    failures: AtomicU32,
    locked_until_ms: std::sync::atomic::AtomicI64,
}

impl Identity {
    /// Check the password and open a session.
    pub async fn login(&self, email: &str, password: &str, meta: &RequestMeta) -> Result<LoginOutcome, Error> {
        let ip = super::address_bucket(meta.ip.as_deref());
        let ip_count = self.ip_failures.get_with(ip.clone(), || Arc::new(AtomicU32::new(0)));
        if ip_count.load(Ordering::Relaxed) >= self.settings.ip_failures_per_minute {
            return Err(Error::Locked { retry_after: Duration::from_secs(60) });
        }
        let email = normalise_email(email);
        let user = self.db.user_by_email(&email).await?;
        let now = now_ms();
        if let Some(until) = user.as_ref().and_then(|u| u.locked_until_ms).filter(|&until| until > now) {
            return Err(Error::Locked { retry_after: Duration::from_millis((until - now) as u64) });
        }
        // An address without an account locks after as many failures, with the same answer and countdown.
        let unknown = user.is_none().then(|| self.unknown_account_failures.get_with(email.clone(), Default::default));
        if let Some(until) = unknown.as_ref().map(|u| u.locked_until_ms.load(Ordering::Relaxed)).filter(|&until| until > now) {
            return Err(Error::Locked { retry_after: Duration::from_millis((until - now) as u64) });
        }
        let hash = user.as_ref().filter(|u| u.is_active).and_then(|u| u.password_hash.clone());
        if !self.passwords.verify(password.to_owned(), hash).await? {
            ip_count.fetch_add(1, Ordering::Relaxed);
            if let Some(unknown) = &unknown
                && unknown.failures.fetch_add(1, Ordering::Relaxed) + 1 >= self.settings.lockout_threshold
            {
                // As for a real account, the count is not reset by locking: each later failure locks again.
                unknown.locked_until_ms.store(now + (self.settings.lockout_secs * 1000) as i64, Ordering::Relaxed);
            }
            self.record_auth_failure(user.as_ref().map(|u| u.id.as_str()), AuditAction::AuthLogin, meta, serde_json::json!({ "email": email })).await?;
            return Err(Error::InvalidCredentials);
        }
        let user = user.ok_or(Error::InvalidCredentials)?;
        if user.failed_logins > 0 {
            self.db.clear_login_failures(&user.id).await?;
        }
        let outcome = self.after_first_factor(&user.id, meta).await?;
        let resource = match &outcome {
            LoginOutcome::Tokens(tokens) => Some(format!("session:{}", tokens.session_id)),
            LoginOutcome::MfaRequired { .. } => None,
        };
        let metadata = match &outcome {
            LoginOutcome::Tokens(_) => serde_json::json!({ "method": "password" }),
            LoginOutcome::MfaRequired { .. } => serde_json::json!({ "method": "password", "mfa": "required" }),
        };
        self.record(None, Actor::User(user.id.clone()), AuditAction::AuthLogin, resource, Outcome::Success, meta, metadata).await?;
        Ok(outcome)
    }

    /// After a first factor (password or identity provider): a session, or an
    /// MFA challenge when the user has a second factor enrolled.
    pub(crate) async fn after_first_factor(&self, user_id: &str, meta: &RequestMeta) -> Result<LoginOutcome, Error> {
        if self.db.mfa(user_id).await?.is_some_and(|m| m.totp_enabled) {
            let (mfa_token, _) = self.tokens.issue(user_id, "", TokenUse::MfaChallenge)?;
            return Ok(LoginOutcome::MfaRequired { mfa_required: true, mfa_token, methods: ["totp", "recovery_code"], expires_in: super::tokens::MFA_CHALLENGE_TTL.as_secs() });
        }
        Ok(LoginOutcome::Tokens(self.open_session(user_id, false, meta).await?))
    }

    /// A failed password or second factor: counts toward the account's
    /// lockout (when the account exists) and is audited.
    pub(crate) async fn record_auth_failure(&self, user_id: Option<&str>, action: AuditAction, meta: &RequestMeta, mut metadata: serde_json::Value) -> Result<(), Error> {
        if let Some(user_id) = user_id {
            let lock_until = now_ms() + (self.settings.lockout_secs * 1000) as i64;
            if self.db.record_login_failure(user_id, i64::from(self.settings.lockout_threshold), lock_until).await? {
                metadata["locked"] = true.into();
            }
        }
        let actor = user_id.map_or(Actor::Anonymous, |id| Actor::User(id.to_owned()));
        self.record(None, actor, action, None, Outcome::Failure, meta, metadata).await
    }

    pub(crate) async fn open_session(&self, user_id: &str, mfa: bool, meta: &RequestMeta) -> Result<LoginTokens, Error> {
        let now = now_ms();
        let refresh = refresh_secret();
        let session = SessionRow {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_owned(),
            ip: meta.ip.clone(),
            user_agent: meta.user_agent.clone(),
            created_at_ms: now,
            last_used_at_ms: now,
            expires_at_ms: now + (self.settings.session_ttl_secs * 1000) as i64,
            revoked_at_ms: None,
            revoke_reason: None,
            mfa,
        };
        self.db.insert_session(&session, &api_keys::hash(&refresh)).await?;
        self.tokens_for(user_id, &session.id, refresh)
    }

    fn tokens_for(&self, user_id: &str, session_id: &str, refresh_token: String) -> Result<LoginTokens, Error> {
        let (access_token, _) = self.tokens.issue(user_id, session_id, TokenUse::Access)?;
        Ok(LoginTokens {
            access_token,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().as_secs(),
            refresh_token,
            session_id: session_id.to_owned(),
            user_id: user_id.to_owned(),
        })
    }

    /// Exchange a refresh token for new tokens; a reused token revokes its session.
    pub async fn refresh(&self, refresh_token: &str, meta: &RequestMeta) -> Result<LoginTokens, Error> {
        let invalid = || Error::TokenInvalid("invalid refresh token".into());
        let old_hash = api_keys::hash(refresh_token);
        let token = self.db.refresh_token(&old_hash).await?.ok_or_else(invalid)?;
        let session = self.db.session(&token.session_id).await?.ok_or_else(invalid)?;
        let now = now_ms();
        if session.revoked_at_ms.is_some() || session.expires_at_ms <= now {
            return Err(invalid());
        }
        let new_secret = refresh_secret();
        if token.used_at_ms.is_some() || !self.db.rotate_refresh_token(&old_hash, &api_keys::hash(&new_secret), &session.id, now).await? {
            self.db.revoke_sessions(&session.user_id, Some(&session.id), "refresh token reuse", now).await?;
            self.live_sessions.invalidate(&session.id);
            let resource = Some(format!("session:{}", session.id));
            self.record(None, Actor::User(session.user_id.clone()), AuditAction::AuthRefreshReuse, resource, Outcome::Denied, meta, serde_json::json!({})).await?;
            return Err(Error::TokenInvalid("refresh token already used; the session has been revoked".into()));
        }
        self.tokens_for(&session.user_id, &session.id, new_secret)
    }

    /// Change the caller's password (the current one is required); every
    /// other session of the user is revoked.
    pub async fn change_password(&self, principal: &Principal, current: &str, new: &str, meta: &RequestMeta) -> Result<(), Error> {
        let (user_id, session_id) = signed_in(principal)?;
        let user = self.db.user_by_id(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        if !self.passwords.verify(current.to_owned(), user.password_hash.clone()).await? {
            self.record_auth_failure(Some(user_id), AuditAction::AuthPasswordChange, meta, serde_json::json!({})).await?;
            return Err(Error::invalid("the current password is wrong", "current_password"));
        }
        self.settings.password_policy.check(new, "new_password")?;
        let now = now_ms();
        self.db.set_password_hash(user_id, &self.passwords.hash(new.to_owned()).await?, now).await?;
        self.db.revoke_other_sessions(user_id, session_id, "password changed", now).await?;
        self.live_sessions.invalidate_all();
        self.record(None, principal.actor(), AuditAction::AuthPasswordChange, None, Outcome::Success, meta, serde_json::json!({})).await
    }

    /// The caller's live sessions.
    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<SessionInfo>, Error> {
        let (user_id, session_id) = signed_in(principal)?;
        let rows = self.db.sessions_of_user(user_id, now_ms()).await?;
        Ok(rows
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == session_id,
                id: s.id,
                ip: s.ip,
                user_agent: s.user_agent,
                created_at_ms: s.created_at_ms,
                last_used_at_ms: s.last_used_at_ms,
                expires_at_ms: s.expires_at_ms,
            })
            .collect())
    }

    /// Revoke one of the caller's sessions, or all of them (`None`). Logout is
    /// revoking the current one.
    pub async fn revoke_sessions(&self, principal: &Principal, session: Option<&str>, meta: &RequestMeta) -> Result<u64, Error> {
        let (user_id, _) = signed_in(principal)?;
        let revoked = self.db.revoke_sessions(user_id, session, "revoked by user", now_ms()).await?;
        if session.is_some() && revoked == 0 {
            return Err(Error::NotFound("session".into()));
        }
        match session {
            Some(id) => self.live_sessions.invalidate(id),
            None => self.live_sessions.invalidate_all(),
        }
        let resource = Some(session.map_or_else(|| "session:*".to_owned(), |id| format!("session:{id}")));
        self.record(None, principal.actor(), AuditAction::SessionRevoke, resource, Outcome::Success, meta, serde_json::json!({ "count": revoked })).await?;
        Ok(revoked)
    }
}
