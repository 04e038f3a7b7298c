//! Invitations and e-mail verification: how people join tenants now that
//! accounts span tenants (no tenant admin sets another person's
//! credentials; see docs/security.md).
//!
//! Adding an address to a tenant creates a pending invitation with a
//! single-use link (32 random bytes; only the SHA-256 is stored) that
//! expires (`identity.invitation_ttl_secs`) and can be revoked. With
//! `[identity.smtp]` the link is mailed through the outbox; without it the
//! link is shown to the inviter, who passes it on. The person accepts:
//! without an account by choosing their own password (public), with one by
//! signing in as that account (same e-mail) and presenting the link.
//!
//! Whether an address is proven is tracked per account (`email_verified`):
//! following a mailed link proves the mailbox; a link shown to an admin
//! proves nothing, so an account created through one stays unverified and
//! joins no other tenant (and links no SSO identity) until a verification
//! mail or a platform administrator verifies it. The invited role is
//! bounded by the inviter's permissions ([`Identity::grantable_role`]);
//! each tenant sends at most `identity.invitations_per_hour` invitations.
//!
//! Must not: show a token anywhere but the create answer (link delivery)
//! or the mail, or change an existing membership through an invitation.

use agentry_types::AuditAction;
use agentry_types::InvitationStatus;
use std::time::Duration;

use agentry_db::DbError;
use agentry_db::identity::UserRow;
use agentry_db::invitations::{EmailVerificationRow, InvitationRow};
use agentry_types::Permission;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use serde::Serialize;

use super::accounts::{check_email, new_user_row};
use super::sessions::{LoginTokens, normalise_email, signed_in};
use super::{Error, Identity, Principal, RequestMeta, TenantAccess, api_keys, now_ms};
use crate::audit::{Actor, Outcome};

/// Invitation links start with this; verification links with [`VERIFICATION_PREFIX`].
const INVITATION_PREFIX: &str = "agi_";
const VERIFICATION_PREFIX: &str = "agv_";
/// The sending window of `identity.invitations_per_hour`.
const HOUR_MS: i64 = 3_600_000;
/// Verification mails one account may ask for per hour.
const VERIFICATIONS_PER_HOUR: i64 = 5;
/// Listing bound.
const LIST_LIMIT: i64 = 1000;

/// An address to invite, with the role it will have.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: String,
    pub role: String,
}

/// An invitation as an admin sees it (never its token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvitationInfo {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    pub invited_by: String,
    /// `email` (mailed) or `link` (shown to the inviter).
    pub delivered: String,
    pub status: InvitationStatus,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub accepted_at_ms: Option<i64>,
    pub accepted_user_id: Option<String>,
    pub revoked_at_ms: Option<i64>,
}

impl InvitationInfo {
    fn from_row(row: InvitationRow, now: i64) -> Self {
        Self {
            status: status(&row, now),
            id: row.id,
            tenant_id: row.tenant_id,
            email: row.email,
            role: row.role,
            invited_by: row.invited_by,
            delivered: row.delivered,
            created_at_ms: row.created_at_ms,
            expires_at_ms: row.expires_at_ms,
            accepted_at_ms: row.accepted_at_ms,
            accepted_user_id: row.accepted_user_id,
            revoked_at_ms: row.revoked_at_ms,
        }
    }
}

/// The create answer: the invitation and, when it was not mailed, its link
/// (shown this once).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    #[serde(flatten)]
    pub invitation: InvitationInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_url: Option<String>,
}

/// What accepting answers: the membership, and sign-in tokens for an
/// account created by accepting.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AcceptedInvitation {
    pub user_id: String,
    pub tenant_id: String,
    pub tenant_slug: String,
    pub role: String,
    pub email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<LoginTokens>,
}

fn status(row: &InvitationRow, now: i64) -> InvitationStatus {
    if row.accepted_at_ms.is_some() {
        InvitationStatus::Accepted
    } else if row.revoked_at_ms.is_some() {
        InvitationStatus::Revoked
    } else if row.expires_at_ms <= now {
        InvitationStatus::Expired
    } else {
        InvitationStatus::Pending
    }
}

fn new_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M UTC").to_string())
}

const INVALID_LINK: &str = "this invitation link is not valid";

impl Identity {
    /// A link on this server's public address (`identity.public_url`).
    fn link(&self, page: &str, token: &str) -> Option<String> {
        self.settings.public_url.as_deref().map(|base| format!("{}/{page}?token={token}", base.trim_end_matches('/')))
    }

    /// Wake the outbox sender (mail was queued in this process).
    fn mail_queued(&self) {
        self.mail_queued.notify_one();
    }

    /// Invite an address into the tenant with a role the caller could grant.
    /// Mailed when SMTP is configured; otherwise the answer carries the link.
    pub async fn invite(&self, access: &TenantAccess, new: NewInvitation, meta: &RequestMeta) -> Result<CreatedInvitation, Error> {
        access.require(Permission::ManageUsers)?;
        self.grantable_role(access, &new.role).await?;
        let email = normalise_email(&new.email);
        check_email(&email)?;
        if let Some(existing) = self.db.user_by_email(&email).await?
            && self.db.membership(&access.tenant_id, &existing.id).await?.is_some()
        {
            return Err(Error::AlreadyExists("membership"));
        }
        let now = now_ms();
        let (sent, oldest) = self.db.invitations_created_since(&access.tenant_id, now - HOUR_MS).await?;
        if sent >= i64::from(self.settings.invitations_per_hour) {
            let retry_after = Duration::from_millis(oldest.map_or(HOUR_MS, |t| (t + HOUR_MS - now).max(1000)) as u64);
            let message = format!("this tenant sent {sent} invitations in the last hour (identity.invitations_per_hour); retry later");
            return Err(Error::RateLimited { message, retry_after });
        }
        let token = new_token(INVITATION_PREFIX);
        let by_mail = self.settings.smtp.is_some();
        let row = InvitationRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: access.tenant_id.clone(),
            email: email.clone(),
            role: new.role.clone(),
            token_hash: api_keys::hash(&token),
            invited_by: access.principal.user_id().unwrap_or("master").to_owned(),
            delivered: if by_mail { "email" } else { "link" }.to_owned(),
            created_at_ms: now,
            expires_at_ms: now + (self.settings.invitation_ttl_secs * 1000) as i64,
            accepted_at_ms: None,
            accepted_user_id: None,
            revoked_at_ms: None,
        };
        let url = self.link("accept-invitation", &token);
        let mail = if by_mail {
            let tenant = self.db.tenant(&access.tenant_id).await?.map_or_else(|| access.tenant_slug.clone(), |t| t.name);
            let inviter = match self.user_of(&access.principal).await? {
                Some(user) => user.email,
                None => "An administrator".to_owned(),
            };
            // ASCII lines under 76 characters: sent as 7bit, the token unbroken.
            let body = format!(
                "{inviter} invited you to join {tenant} on Agentry\n\
                 with the role '{role}'.\n\n\
                 Accept the invitation:\n{link}\n\n\
                 New here? The link lets you choose your own password.\n\
                 Already have an account with this address? Sign in\n\
                 first, then open the link.\n\n\
                 Invitation token (for programs: POST it to\n\
                 /api/v1/auth/invitations/accept, or when signed in\n\
                 to /api/v1/invitations/accept):\n{token}\n\n\
                 The invitation expires on {expires}.\n\
                 If you did not expect it, ignore this message.\n",
                role = row.role,
                link = url.as_deref().unwrap_or_default(),
                expires = utc(row.expires_at_ms),
            );
            Some(crate::mail::email_row(&email, &format!("You are invited to {tenant}"), body, now))
        } else {
            None
        };
        self.db.insert_invitation(&row, mail.as_ref()).await?;
        if mail.is_some() {
            self.mail_queued();
        }
        let metadata = serde_json::json!({ "email": email, "role": row.role, "delivered": row.delivered, "expires_at_ms": row.expires_at_ms });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::InvitationCreate, Some(format!("invitation:{}", row.id)), Outcome::Success, meta, metadata)
            .await?;
        Ok(CreatedInvitation { invitation: InvitationInfo::from_row(row, now), accept_token: (!by_mail).then(|| token.clone()), accept_url: if by_mail { None } else { url } })
    }

    /// The tenant's invitations, newest first (at most 1000).
    pub async fn invitations(&self, access: &TenantAccess) -> Result<Vec<InvitationInfo>, Error> {
        access.require(Permission::ManageUsers)?;
        let now = now_ms();
        Ok(self.db.invitations_of_tenant(&access.tenant_id, LIST_LIMIT).await?.into_iter().map(|row| InvitationInfo::from_row(row, now)).collect())
    }

    /// Revoke a pending invitation (its link stops working at once).
    /// Revoking one already revoked is a no-op; an accepted one is a member now.
    pub async fn revoke_invitation(&self, access: &TenantAccess, id: &str, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageUsers)?;
        let row = self.db.invitation(&access.tenant_id, id).await?.ok_or(Error::NotFound("invitation".into()))?;
        if row.accepted_at_ms.is_some() {
            return Err(Error::invalid("this invitation was accepted: remove the member instead", "id"));
        }
        if !self.db.revoke_invitation(&access.tenant_id, id, now_ms()).await? {
            // Lost a race with its acceptance (or another revocation): say which.
            let now = self.db.invitation(&access.tenant_id, id).await?.ok_or(Error::NotFound("invitation".into()))?;
            if now.accepted_at_ms.is_some() {
                return Err(Error::Conflict("this invitation was accepted meanwhile: remove the member instead".into()));
            }
            return Ok(());
        }
        let metadata = serde_json::json!({ "email": row.email, "role": row.role });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::InvitationRevoke, Some(format!("invitation:{id}")), Outcome::Success, meta, metadata).await
    }

    /// An invitation grants only what its inviter could grant when it is
    /// accepted: an inviter removed from the tenant, or whose role no longer
    /// covers the invited one, leaves the link dead (the ceiling holds over
    /// time, not only at sending).
    async fn inviter_still_grants(&self, invitation: &InvitationRow) -> Result<(), Error> {
        if invitation.invited_by == "master" {
            return Ok(());
        }
        let dead = || Error::invalid("the person who invited you can no longer grant this role: ask for a new invitation", "token");
        let Some(inviter) = self.db.user_by_id(&invitation.invited_by).await?.filter(|u| u.is_active) else {
            return Err(dead());
        };
        if inviter.platform_admin {
            return Ok(());
        }
        let Some(membership) = self.db.membership(&invitation.tenant_id, &inviter.id).await? else {
            return Err(dead());
        };
        let held = self.role_permissions(&invitation.tenant_id, &membership.role).await?;
        let invited = self.role_permissions(&invitation.tenant_id, &invitation.role).await?;
        if invited.is_subset(held) { Ok(()) } else { Err(dead()) }
    }

    /// The pending invitation behind a link, or why the link no longer works.
    async fn pending_invitation(&self, token: &str) -> Result<InvitationRow, Error> {
        let row = self.db.invitation_by_hash(&api_keys::hash(token.trim())).await?.ok_or_else(|| Error::invalid(INVALID_LINK, "token"))?;
        match status(&row, now_ms()) {
            InvitationStatus::Pending => {
                self.inviter_still_grants(&row).await?;
                Ok(row)
            }
            InvitationStatus::Accepted => Err(Error::invalid("this invitation was already used", "token")),
            InvitationStatus::Revoked => Err(Error::invalid("this invitation was revoked", "token")),
            InvitationStatus::Expired => Err(Error::invalid("this invitation has expired: ask for a new one", "token")),
        }
    }

    /// Accept an invitation as a new account with a password of the
    /// person's choosing; signs them in. An address that already has an
    /// account is refused: that account signs in and accepts instead.
    pub async fn accept_invitation_as_new_account(&self, token: &str, password: &str, display_name: Option<&str>, meta: &RequestMeta) -> Result<AcceptedInvitation, Error> {
        let invitation = self.pending_invitation(token).await?;
        let exists = || Error::Conflict("an account with this e-mail address already exists: sign in as it and accept with POST /api/v1/invitations/accept {\"token\"}".into());
        if let Some(existing) = self.db.user_by_email(&invitation.email).await? {
            // A mailed link proves the mailbox: its owner reclaims an account someone else made unverified for it.
            if existing.email_verified || invitation.delivered != "email" {
                return Err(exists());
            }
            return self.reclaim_and_accept(invitation, existing, password, meta).await;
        }
        self.settings.password_policy.check(password, "password")?;
        if display_name.is_some_and(|n| n.trim().is_empty() || n.len() > 200) {
            return Err(Error::invalid("display_name must have 1-200 characters", "display_name"));
        }
        // A mailed link proves the mailbox; a link handed over by an admin does not.
        let verified = invitation.delivered == "email";
        let now = now_ms();
        let user = new_user_row(&invitation.email, display_name.map(str::trim), Some(self.passwords.hash(password.to_owned()).await?), false, verified, now);
        match self.db.accept_invitation(&invitation, &user.id, Some(&user), false, now).await {
            Ok(true) => {}
            Ok(false) => return Err(Error::invalid("this invitation was already used", "token")),
            Err(DbError::Conflict { .. }) => return Err(exists()),
            Err(other) => return Err(other.into()),
        }
        self.access_changed();
        self.record_acceptance(&invitation, &user.id, verified, true, meta).await?;
        let tokens = self.open_session(&user.id, false, meta).await?;
        self.accepted(&invitation, &user.id, verified, Some(tokens)).await
    }

    /// The mailbox owner takes over an unverified account that already
    /// holds the invited address (self-registered, or made through a link
    /// handed to an admin): their password replaces the old one, every
    /// session and key of the account is revoked, and they join.
    async fn reclaim_and_accept(&self, invitation: InvitationRow, existing: UserRow, password: &str, meta: &RequestMeta) -> Result<AcceptedInvitation, Error> {
        self.settings.password_policy.check(password, "password")?;
        let now = now_ms();
        let hash = self.passwords.hash(password.to_owned()).await?;
        if !self.db.reclaim_unverified_account(&existing.id, &hash, now).await? {
            return Err(Error::Conflict("the account for this address changed meanwhile: try the link again".into()));
        }
        self.live_sessions.invalidate_all();
        self.keys.invalidate_all();
        self.access_changed();
        self.record(
            None,
            Actor::User(existing.id.clone()),
            AuditAction::UserReclaim,
            Some(format!("user:{}", existing.id)),
            Outcome::Success,
            meta,
            serde_json::json!({ "invitation": invitation.id }),
        )
        .await?;
        if !self.db.accept_invitation(&invitation, &existing.id, None, false, now).await? {
            return Err(Error::invalid("this invitation was already used", "token"));
        }
        self.access_changed();
        self.record_acceptance(&invitation, &existing.id, true, false, meta).await?;
        let tokens = self.open_session(&existing.id, false, meta).await?;
        self.accepted(&invitation, &existing.id, true, Some(tokens)).await
    }

    /// Accept an invitation as the signed-in account, whose e-mail must be
    /// the invited one. An account whose address is unverified joins no
    /// second tenant through a link that was not mailed to it.
    pub async fn accept_invitation(&self, principal: &Principal, token: &str, meta: &RequestMeta) -> Result<AcceptedInvitation, Error> {
        let (user_id, _) = signed_in(principal)?;
        let invitation = self.pending_invitation(token).await?;
        let user = self.db.user_by_id(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        if user.email != invitation.email {
            return Err(self.refuse_acceptance(&invitation, &user, "this invitation is for another e-mail address than your account's", meta).await);
        }
        if self.db.membership(&invitation.tenant_id, user_id).await?.is_some() {
            return Err(Error::AlreadyExists("membership"));
        }
        let by_mail = invitation.delivered == "email";
        if !user.email_verified && !by_mail && !self.db.memberships_of_user(user_id).await?.is_empty() {
            let reason = "your e-mail address is not verified, and an account with an unverified address joins no second tenant: \
                          verify it with the link of a verification e-mail (POST /api/v1/auth/verify-email/resend) or ask a platform administrator";
            return Err(self.refuse_acceptance(&invitation, &user, reason, meta).await);
        }
        // Following a mailed link proves the mailbox.
        let verify = by_mail && !user.email_verified;
        if !self.db.accept_invitation(&invitation, user_id, None, verify, now_ms()).await? {
            return Err(Error::invalid("this invitation was already used", "token"));
        }
        self.access_changed();
        self.record_acceptance(&invitation, user_id, user.email_verified || verify, false, meta).await?;
        self.accepted(&invitation, user_id, user.email_verified || verify, None).await
    }

    async fn accepted(&self, invitation: &InvitationRow, user_id: &str, email_verified: bool, tokens: Option<LoginTokens>) -> Result<AcceptedInvitation, Error> {
        let tenant = self.db.tenant(&invitation.tenant_id).await?.ok_or(Error::NotFound("tenant".into()))?;
        Ok(AcceptedInvitation { user_id: user_id.to_owned(), tenant_id: tenant.id, tenant_slug: tenant.slug, role: invitation.role.clone(), email_verified, tokens })
    }

    async fn record_acceptance(&self, invitation: &InvitationRow, user_id: &str, verified: bool, new_account: bool, meta: &RequestMeta) -> Result<(), Error> {
        let tenant = Some(invitation.tenant_id.as_str());
        let actor = || Actor::User(user_id.to_owned());
        let metadata = serde_json::json!({ "email": invitation.email, "role": invitation.role, "new_account": new_account, "email_verified": verified });
        self.record(tenant, actor(), AuditAction::InvitationAccept, Some(format!("invitation:{}", invitation.id)), Outcome::Success, meta, metadata).await?;
        let metadata = serde_json::json!({ "email": invitation.email, "role": invitation.role, "invitation": invitation.id });
        self.record(tenant, actor(), AuditAction::MembershipCreate, Some(format!("user:{user_id}")), Outcome::Success, meta, metadata).await
    }

    /// Audit a refused acceptance; returns the refusal.
    async fn refuse_acceptance(&self, invitation: &InvitationRow, user: &UserRow, reason: &str, meta: &RequestMeta) -> Error {
        let metadata = serde_json::json!({ "reason": reason, "email_verified": user.email_verified });
        let resource = Some(format!("invitation:{}", invitation.id));
        match self.record(Some(&invitation.tenant_id), Actor::User(user.id.clone()), AuditAction::InvitationAccept, resource, Outcome::Denied, meta, metadata).await {
            Ok(()) => Error::Forbidden(reason.to_owned()),
            Err(error) => error,
        }
    }

    /// Queue a verification mail for the account's address (SMTP configured).
    pub(crate) async fn queue_verification(&self, user: &UserRow) -> Result<(), Error> {
        if self.settings.smtp.is_none() {
            return Ok(());
        }
        let token = new_token(VERIFICATION_PREFIX);
        let now = now_ms();
        let row = EmailVerificationRow {
            token_hash: api_keys::hash(&token),
            user_id: user.id.clone(),
            email: user.email.clone(),
            created_at_ms: now,
            expires_at_ms: now + (self.settings.invitation_ttl_secs * 1000) as i64,
            used_at_ms: None,
        };
        let body = format!(
            "Confirm that this address belongs to your Agentry account:\n\
             {link}\n\n\
             Verification token (for programs: POST it to\n\
             /api/v1/auth/verify-email):\n{token}\n\n\
             The link expires on {expires}.\n\
             If you did not ask for it, ignore this message.\n",
            link = self.link("verify-email", &token).unwrap_or_default(),
            expires = utc(row.expires_at_ms),
        );
        let mail = crate::mail::email_row(&user.email, "Confirm your e-mail address", body, now);
        self.db.insert_email_verification(&row, Some(&mail)).await?;
        self.mail_queued();
        Ok(())
    }

    /// Send the signed-in account a new verification mail (at most five an hour).
    pub async fn resend_verification(&self, principal: &Principal, meta: &RequestMeta) -> Result<(), Error> {
        let (user_id, _) = signed_in(principal)?;
        let user = self.db.user_by_id(user_id).await?.ok_or(Error::NotFound("user".into()))?;
        if user.email_verified {
            return Err(Error::Conflict("your e-mail address is already verified".into()));
        }
        if self.settings.smtp.is_none() {
            return Err(Error::invalid("this server sends no mail (identity.smtp is not set): ask a platform administrator to verify your address", "email"));
        }
        if self.db.email_verifications_since(user_id, now_ms() - HOUR_MS).await? >= VERIFICATIONS_PER_HOUR {
            return Err(Error::RateLimited { message: "too many verification mails in the last hour; retry later".into(), retry_after: Duration::from_secs(600) });
        }
        self.queue_verification(&user).await?;
        self.record(None, principal.actor(), AuditAction::UserVerificationSent, Some(format!("user:{user_id}")), Outcome::Success, meta, serde_json::json!({})).await
    }

    /// Use a verification link: the account's address is verified.
    pub async fn verify_email(&self, token: &str, meta: &RequestMeta) -> Result<String, Error> {
        let Some(user_id) = self.db.use_email_verification(&api_keys::hash(token.trim()), now_ms()).await? else {
            return Err(Error::invalid("this verification link is not valid, was used or has expired", "token"));
        };
        self.record(None, Actor::User(user_id.clone()), AuditAction::UserVerifyEmail, Some(format!("user:{user_id}")), Outcome::Success, meta, serde_json::json!({ "by": "link" }))
            .await?;
        Ok(user_id)
    }

    /// A platform administrator vouches for an account's address.
    pub async fn admin_verify_email(&self, principal: &Principal, user_id: &str, meta: &RequestMeta) -> Result<(), Error> {
        if !principal.is_platform_admin() {
            return Err(Error::Forbidden("platform administrators only".into()));
        }
        if !self.db.set_email_verified(user_id, now_ms()).await? {
            return Err(Error::NotFound("user".into()));
        }
        self.record(None, principal.actor(), AuditAction::UserVerifyEmail, Some(format!("user:{user_id}")), Outcome::Success, meta, serde_json::json!({ "by": "platform_admin" }))
            .await
    }
}
