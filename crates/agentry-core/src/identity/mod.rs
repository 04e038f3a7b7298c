//! Identity and access: who is calling ([`Principal`], from a JWT access
//! token, an API key or the master key) and what they may do in a tenant
//! ([`TenantAccess`], the only way to get a tenant-scoped permission set).
//!
//! Submodules: `passwords` (argon2id, policy), `tokens` (JWT, JWKS, key
//! rotation), `api_keys` (format, hashing), `sessions` (login, refresh
//! rotation with reuse detection, logout), `accounts` (tenants, users,
//! memberships, roles), `groups` (named sets of members for document ACLs),
//! `keys` (API key lifecycle), `invitations` (joining tenants by invitation,
//! e-mail verification), `views` (what the API shows of its objects).
//!
//! Must not: know about HTTP (the server maps [`Error`] to statuses
//! and reads headers into [`RequestMeta`]).

mod accounts;
pub mod api_keys;
#[cfg(test)]
mod ceiling_tests;
mod delegation;
mod groups;
mod invitations;
mod keys;
mod mfa;
pub mod oidc;
pub mod passwords;
mod sessions;
pub mod tokens;
mod views;

use agentry_types::AuditAction;
use std::sync::Arc;
use std::time::Duration;

use agentry_db::Db;
use agentry_db::identity::{ApiKeyRow, UserRow};
use agentry_types::{BuiltinRole, Permission, PermissionSet};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

pub use accounts::RoleInfo;
pub use delegation::Delegation;
pub use invitations::{AcceptedInvitation, CreatedInvitation, InvitationInfo, NewInvitation};
pub use keys::{ApiKeyInfo, CreatedApiKey, NewApiKey};
pub use mfa::{SecondFactor, TOTP_ISSUER, TotpEnrolment};
pub use passwords::{Argon2Settings, PasswordPolicy};
pub use sessions::{LoginOutcome, LoginTokens, SessionInfo};
pub use views::{Account, Group, GroupInfo, GroupMember, Me, Membership, PrincipalInfo, PrincipalKind, Tenant, VisibleTenant};

pub use crate::audit::RequestMeta;
use crate::audit::{Actor, Audit, AuditEvent, Outcome};
use crate::secrets::Sealer;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub use crate::error::Error;

/// Tunables of the identity service.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySettings {
    /// Access-token lifetime in seconds (at most 900).
    pub access_token_ttl_secs: u64,
    /// Session (refresh-token) lifetime in seconds.
    pub session_ttl_secs: u64,
    /// Failed logins before an account is locked.
    pub lockout_threshold: u32,
    /// How long a locked account stays locked, in seconds.
    pub lockout_secs: u64,
    /// Failed logins from one IP address per minute before it is refused.
    pub ip_failures_per_minute: u32,
    /// Whether anyone may create an account (POST /api/v1/auth/register).
    pub self_registration: bool,
    pub argon2: Argon2Settings,
    pub password_policy: PasswordPolicy,
    /// `[[identity.oidc]]`: OpenID Connect providers.
    pub oidc: Vec<oidc::OidcProviderConfig>,
    /// How long an invitation link can be accepted, in seconds (also verification links).
    pub invitation_ttl_secs: u64,
    /// Invitations one tenant may send per hour (counted over the last hour).
    pub invitations_per_hour: u32,
    /// This server's address as people reach it (`https://agentry.example.com`):
    /// invitation and verification links point there. Required with `smtp`.
    pub public_url: Option<String>,
    /// `[identity.smtp]`: mail invitation and verification links (without it,
    /// invitation links are shown to the inviting admin instead).
    pub smtp: Option<crate::mail::SmtpSettings>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            session_ttl_secs: 30 * 24 * 3600,
            lockout_threshold: 5,
            lockout_secs: 900,
            ip_failures_per_minute: 20,
            self_registration: false,
            argon2: Argon2Settings::default(),
            password_policy: PasswordPolicy::default(),
            oidc: Vec::new(),
            invitation_ttl_secs: 7 * 24 * 3600,
            invitations_per_hour: 100,
            public_url: None,
            smtp: None,
        }
    }
}

/// An authenticated caller. Opaque: only [`Identity::authenticate`] makes
/// one (the master key included), so holding one proves the credential
/// was checked; other crates read it through its accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub(crate) Credential);

/// What a [`Principal`] authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Credential {
    /// A signed-in user (JWT access token of a live session).
    User { user_id: String, session_id: String, platform_admin: bool, mfa: bool },
    /// A program with an API key, bound to one tenant.
    ApiKey { key_id: String, user_id: String, tenant_id: String, scopes: PermissionSet },
    /// The break-glass master key: every permission everywhere.
    MasterKey,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        match &self.0 {
            Credential::User { user_id, .. } => Actor::User(user_id.clone()),
            Credential::ApiKey { key_id, .. } => Actor::ApiKey(key_id.clone()),
            Credential::MasterKey => Actor::MasterKey,
        }
    }

    /// What the caller authenticated with.
    pub fn kind(&self) -> PrincipalKind {
        match &self.0 {
            Credential::User { .. } => PrincipalKind::User,
            Credential::ApiKey { .. } => PrincipalKind::ApiKey,
            Credential::MasterKey => PrincipalKind::MasterKey,
        }
    }

    /// The user behind the principal (the key's owner for API keys).
    pub fn user_id(&self) -> Option<&str> {
        match &self.0 {
            Credential::User { user_id, .. } | Credential::ApiKey { user_id, .. } => Some(user_id),
            Credential::MasterKey => None,
        }
    }

    /// The API key's id, when the caller used one.
    pub fn api_key_id(&self) -> Option<&str> {
        match &self.0 {
            Credential::ApiKey { key_id, .. } => Some(key_id),
            _ => None,
        }
    }

    /// The session of a signed-in user.
    pub fn session_id(&self) -> Option<&str> {
        match &self.0 {
            Credential::User { session_id, .. } => Some(session_id),
            _ => None,
        }
    }

    /// The credential's id as the API shows it (none for the master key).
    pub fn id(&self) -> Option<&str> {
        match &self.0 {
            Credential::User { user_id, .. } => Some(user_id),
            Credential::ApiKey { key_id, .. } => Some(key_id),
            Credential::MasterKey => None,
        }
    }

    /// Platform administration (tenants, any tenant): the master key and platform admins.
    pub fn is_platform_admin(&self) -> bool {
        matches!(self.0, Credential::MasterKey | Credential::User { platform_admin: true, .. })
    }
}

/// A principal's standing in one tenant. Only [`Identity::tenant_access`]
/// makes one (its fields are private to this module), so holding it proves
/// the caller belongs to the tenant; every tenant-scoped operation takes it
/// as a required argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantAccess {
    tenant_id: String,
    tenant_slug: String,
    principal: Principal,
    /// The role name the permissions come from (`None` for platform admins without a membership).
    role: Option<String>,
    permissions: PermissionSet,
    mfa_required: bool,
}

impl TenantAccess {
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn tenant_slug(&self) -> &str {
        &self.tenant_slug
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The role name the permissions come from (`None` for platform admins without a membership).
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    pub fn permissions(&self) -> PermissionSet {
        self.permissions
    }

    /// Whether the tenant requires a second factor of its members.
    pub fn mfa_required(&self) -> bool {
        self.mfa_required
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.permissions.contains(permission)
    }

    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.can(permission) { Ok(()) } else { Err(Error::Forbidden(format!("missing permission '{permission}'"))) }
    }

    /// The privilege ceiling: refuse to grant, or to act on a holder of,
    /// permissions the caller does not hold itself. `what` names the grant
    /// in the refusal ("role 'admin'", "these scopes").
    pub fn require_within(&self, granted: PermissionSet, what: &str) -> Result<(), Error> {
        if granted.is_subset(self.permissions) {
            return Ok(());
        }
        let missing: Vec<&str> = granted.iter().filter(|p| !self.can(*p)).map(Permission::as_str).collect();
        Err(Error::Forbidden(format!("{what} carries permissions you do not hold: {}", missing.join(", "))))
    }
}

/// The bucket a client address is limited and counted in: the address
/// itself for IPv4, its /64 network for IPv6 (one host usually holds a whole
/// /64, so per-address counting would give it 2^64 fresh buckets).
pub fn address_bucket(ip: Option<&str>) -> String {
    match ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok()).map(|ip| ip.to_canonical()) {
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => v4.to_string(),
        None => ip.unwrap_or_default().to_owned(),
    }
}

/// A permission set as stored (a role's grants, a key's scopes). One that
/// does not parse grants nothing (fail closed) and is logged.
pub(crate) fn stored_permissions(json: &str, kind: &str, id: &str) -> PermissionSet {
    serde_json::from_str(json).unwrap_or_else(|error| {
        tracing::error!(%kind, %id, %error, "stored permissions do not parse; granting nothing");
        PermissionSet::empty()
    })
}

/// What identifies a principal's standing in a tenant, for the access cache.
fn principal_key(principal: &Principal) -> String {
    match &principal.0 {
        Credential::MasterKey => "master".into(),
        Credential::User { user_id, platform_admin, mfa, .. } => format!("user:{user_id}:{platform_admin}:{mfa}"),
        Credential::ApiKey { key_id, .. } => format!("key:{key_id}"),
    }
}

/// A session as cached: whether it may be used (session live, user
/// active), whether it passed MFA, and its user's platform role.
#[derive(Debug, Clone, Copy)]
struct SessionState {
    live: bool,
    mfa: bool,
    platform_admin: bool,
}

/// A verified API key, as cached.
struct VerifiedKey {
    row: ApiKeyRow,
    scopes: PermissionSet,
    /// A disabled owner's keys stop working.
    owner_active: bool,
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    db: Db,
    /// The break-glass credential (see [`Credential::MasterKey`]).
    master_key: Arc<SecretString>,
    settings: Arc<IdentitySettings>,
    passwords: passwords::PasswordHasherPool,
    tokens: tokens::TokenSigner,
    audit: Audit,
    /// Seals and opens TOTP secrets (the token signer holds its own clone for signing keys).
    sealer: Sealer,
    /// Verified API keys by hash (see [`api_keys::CACHE_TTL`]).
    keys: moka::sync::Cache<String, Arc<VerifiedKey>>,
    /// Access tokens whose signature and claims verified, by token (the
    /// expiry is re-checked on every hit).
    verified_tokens: moka::sync::Cache<String, Arc<tokens::AccessClaims>>,
    /// Session state by id, trusted for the same bound as keys.
    live_sessions: moka::sync::Cache<String, SessionState>,
    /// Failed logins per client IP in the current minute.
    ip_failures: moka::sync::Cache<String, Arc<std::sync::atomic::AtomicU32>>,
    /// Resolved tenant access by principal and tenant reference.
    access: moka::sync::Cache<String, TenantAccess>,
    /// Discovered OpenID Connect provider metadata by provider name.
    oidc_metadata: moka::sync::Cache<String, openidconnect::core::CoreProviderMetadata>,
    /// For provider calls; never follows redirects.
    oidc_http: reqwest::Client,
    /// API key uses waiting to be written (id → time).
    key_uses: Arc<parking_lot::Mutex<std::collections::HashMap<String, i64>>>,
    /// The SMTP transport, when `identity.smtp` is set (used by the outbox sender).
    mailer: Option<crate::mail::Mailer>,
    /// Wakes the outbox sender when this process queues mail.
    mail_queued: Arc<tokio::sync::Notify>,
    /// Hashes of presented keys that matched no key, for [`UNKNOWN_KEY_TTL`]:
    /// a flood of random keys costs one lookup each, not one query each.
    unknown_keys: moka::sync::Cache<String, ()>,
    /// Kinds of rejection (token, key) and client addresses audited in the
    /// current [`REJECTION_AUDIT_WINDOW`]; later ones only count in a metric.
    audited_rejections: moka::sync::Cache<String, ()>,
    /// Failed sign-ins per e-mail address that has no account, so that such
    /// an address locks like a real one and lockout never tells whether an
    /// account exists.
    unknown_account_failures: moka::sync::Cache<String, Arc<sessions::UnknownAccount>>,
}

/// How long a presented key that matched nothing is answered from memory.
/// A key created meanwhile is fresh random bytes, so it cannot be in here.
const UNKNOWN_KEY_TTL: Duration = Duration::from_secs(30);
/// Rejected credentials are audited at most once per client address per window.
const REJECTION_AUDIT_WINDOW: Duration = Duration::from_secs(60);

impl Identity {
    /// Load signing keys (creating the first) and build the caches. `sealer`
    /// seals the secrets identity stores (signing keys, TOTP secrets).
    pub async fn new(db: Db, audit: Audit, sealer: Sealer, master_key: SecretString, settings: IdentitySettings) -> Result<Self, Error> {
        if master_key.expose_secret().len() < 16 {
            return Err(Error::invalid("the master key must be at least 16 characters", "master_key"));
        }
        if settings.access_token_ttl_secs == 0 || settings.access_token_ttl_secs > 900 {
            return Err(Error::invalid("identity.access_token_ttl_secs must be between 1 and 900", "access_token_ttl_secs"));
        }
        if settings.invitation_ttl_secs == 0 {
            return Err(Error::invalid("identity.invitation_ttl_secs must be at least 1", "invitation_ttl_secs"));
        }
        if settings.invitations_per_hour == 0 {
            return Err(Error::invalid("identity.invitations_per_hour must be at least 1", "invitations_per_hour"));
        }
        let public_host = match &settings.public_url {
            Some(url) => Some(
                reqwest::Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .ok_or_else(|| Error::invalid("identity.public_url must be an http(s) URL", "public_url"))?,
            ),
            None => None,
        };
        let mailer = match &settings.smtp {
            Some(_) if public_host.is_none() => return Err(Error::invalid("identity.smtp needs identity.public_url (mailed links point there)", "public_url")),
            Some(smtp) => Some(crate::mail::Mailer::new(smtp, public_host.as_deref()).map_err(|e| Error::invalid(e.to_string(), "smtp"))?),
            None => None,
        };
        let passwords = passwords::PasswordHasherPool::new(settings.argon2)?;
        let tokens = tokens::TokenSigner::load(db.clone(), Duration::from_secs(settings.access_token_ttl_secs), sealer.clone()).await?;
        Ok(Self {
            master_key: Arc::new(master_key),
            db,
            settings: Arc::new(settings),
            passwords,
            tokens,
            audit,
            sealer,
            keys: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(api_keys::CACHE_TTL).build(),
            verified_tokens: moka::sync::Cache::builder().max_capacity(20_000).time_to_live(api_keys::CACHE_TTL).build(),
            live_sessions: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(api_keys::CACHE_TTL).build(),
            ip_failures: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(Duration::from_secs(60)).build(),
            access: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(api_keys::CACHE_TTL).build(),
            oidc_metadata: moka::sync::Cache::builder().max_capacity(64).time_to_live(oidc::METADATA_TTL).build(),
            oidc_http: oidc::http_client()?,
            key_uses: Default::default(),
            mailer,
            mail_queued: Default::default(),
            unknown_keys: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(UNKNOWN_KEY_TTL).build(),
            audited_rejections: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(REJECTION_AUDIT_WINDOW).build(),
            // Forgotten after a day without failures (a real account's count lasts until its next success).
            unknown_account_failures: moka::sync::Cache::builder().max_capacity(100_000).time_to_idle(Duration::from_secs(24 * 3600)).build(),
        })
    }

    pub fn tokens(&self) -> &tokens::TokenSigner {
        &self.tokens
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    /// The background task that sends queued mail, when `identity.smtp` is set.
    pub fn outbox_sender(&self) -> Option<crate::mail::OutboxSender> {
        let (mailer, smtp) = (self.mailer.clone()?, self.settings.smtp.as_ref()?);
        let retry_base = Duration::from_secs(smtp.retry_base_secs.max(1));
        Some(crate::mail::OutboxSender::new(self.db.clone(), mailer, retry_base, self.mail_queued.clone()))
    }

    /// Record an audit event; a failure to store it is an error (security
    /// events must be durable before the answer leaves). Takes the event's
    /// fields one by one so call sites read as one line per event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record(
        &self,
        tenant: Option<&str>,
        actor: Actor,
        action: AuditAction,
        resource: Option<String>,
        outcome: Outcome,
        meta: &RequestMeta,
        metadata: serde_json::Value,
    ) -> Result<(), Error> {
        self.audit.record(AuditEvent { tenant, actor, action, resource, outcome, meta, metadata }).await?;
        Ok(())
    }

    /// Who is behind a bearer credential: the master key, a JWT access
    /// token or an API key.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        if bool::from(bearer.as_bytes().ct_eq(self.master_key.expose_secret().as_bytes())) {
            return Ok(Principal(Credential::MasterKey));
        }
        if api_keys::looks_like_key(bearer) {
            return self.authenticate_key(bearer).await;
        }
        // Neither a key of ours nor JWT-shaped: a wrong API key, as OpenAI clients expect.
        if bearer.split('.').count() != 3 {
            return Err(Error::InvalidApiKey);
        }
        let claims = match self.verified_tokens.get(bearer).filter(|c| c.exp > now_ms() / 1000) {
            Some(claims) => claims,
            None => {
                let claims = Arc::new(self.tokens.verify(bearer, tokens::TokenUse::Access).await?);
                self.verified_tokens.insert(bearer.to_owned(), claims.clone());
                claims
            }
        };
        let state = match self.live_sessions.get(&claims.sid) {
            Some(state) => state,
            None => {
                let session = self.db.session(&claims.sid).await?.filter(|s| s.user_id == claims.sub);
                let user = self.db.user_by_id(&claims.sub).await?;
                let state = SessionState {
                    live: session.as_ref().is_some_and(|s| s.revoked_at_ms.is_none() && s.expires_at_ms > now_ms()) && user.as_ref().is_some_and(|u| u.is_active),
                    mfa: session.is_some_and(|s| s.mfa),
                    platform_admin: user.is_some_and(|u| u.platform_admin),
                };
                self.live_sessions.insert(claims.sid.clone(), state);
                state
            }
        };
        if !state.live {
            return Err(Error::TokenInvalid("session revoked or expired, or user disabled".into()));
        }
        Ok(Principal(Credential::User { user_id: claims.sub.clone(), session_id: claims.sid.clone(), platform_admin: state.platform_admin, mfa: state.mfa }))
    }

    async fn authenticate_key(&self, secret: &str) -> Result<Principal, Error> {
        let hash = api_keys::hash(secret);
        let verified = match self.keys.get(&hash) {
            Some(verified) => verified,
            None if self.unknown_keys.contains_key(&hash) => return Err(Error::InvalidApiKey),
            None => {
                let Some(row) = self.db.api_key_by_hash(&hash).await? else {
                    self.unknown_keys.insert(hash, ());
                    return Err(Error::InvalidApiKey);
                };
                let scopes = stored_permissions(&row.scopes, "api key", &row.id);
                let owner_active = self.db.user_by_id(&row.user_id).await?.is_some_and(|u| u.is_active);
                let verified = Arc::new(VerifiedKey { row, scopes, owner_active });
                self.keys.insert(hash, verified.clone());
                verified
            }
        };
        let now = now_ms();
        let row = &verified.row;
        if row.revoked_at_ms.is_some() || row.expires_at_ms.is_some_and(|t| t <= now) || !verified.owner_active {
            return Err(Error::InvalidApiKey);
        }
        self.key_uses.lock().insert(row.id.clone(), now);
        Ok(Principal(Credential::ApiKey { key_id: row.id.clone(), user_id: row.user_id.clone(), tenant_id: row.tenant_id.clone(), scopes: verified.scopes }))
    }

    /// Signed-in sessions not expired or revoked, per tenant slug, most first (for the `active_sessions` gauge).
    pub async fn active_sessions_by_tenant(&self) -> Result<Vec<(String, i64)>, Error> {
        Ok(self.db.active_sessions_by_tenant(now_ms()).await?)
    }

    /// Write pending API key last-used times (called periodically and at shutdown).
    pub async fn flush_key_uses(&self) -> Result<(), Error> {
        let uses: Vec<(String, i64)> = self.key_uses.lock().drain().collect();
        if !uses.is_empty() {
            self.db.touch_api_keys(&uses).await?;
        }
        Ok(())
    }

    /// The principal's access to a tenant (by id or slug); `NotFound` when
    /// it does not exist or the principal does not belong to it.
    /// Cached for [`api_keys::CACHE_TTL`]: membership and role changes made
    /// in this process apply at once, those made on other replicas within
    /// that bound.
    pub async fn tenant_access(&self, principal: &Principal, tenant_ref: &str) -> Result<TenantAccess, Error> {
        let key = format!("{}|{tenant_ref}", principal_key(principal));
        if let Some(cached) = self.access.get(&key) {
            return Ok(TenantAccess { principal: principal.clone(), ..cached });
        }
        let access = self.resolve_tenant_access(principal, tenant_ref).await?;
        self.access.insert(key, access.clone());
        Ok(access)
    }

    /// Forget cached tenant access (after membership, role or policy changes).
    pub(crate) fn access_changed(&self) {
        self.access.invalidate_all();
    }

    async fn resolve_tenant_access(&self, principal: &Principal, tenant_ref: &str) -> Result<TenantAccess, Error> {
        let tenant = self.db.tenant(tenant_ref).await?.ok_or(Error::NotFound("tenant".into()))?;
        let access = |role: Option<String>, permissions| TenantAccess {
            tenant_id: tenant.id.clone(),
            tenant_slug: tenant.slug.clone(),
            principal: principal.clone(),
            role,
            permissions,
            mfa_required: tenant.mfa_required,
        };
        match &principal.0 {
            Credential::MasterKey => Ok(access(None, PermissionSet::all())),
            Credential::User { mfa: false, .. } if tenant.mfa_required => Err(Error::MfaRequired),
            Credential::User { user_id, platform_admin, .. } => match self.db.membership(&tenant.id, user_id).await? {
                Some(m) => {
                    let permissions = self.role_permissions(&tenant.id, &m.role).await?;
                    let permissions = if *platform_admin { PermissionSet::all() } else { permissions };
                    Ok(access(Some(m.role), permissions))
                }
                None if *platform_admin => Ok(access(None, PermissionSet::all())),
                None => Err(Error::NotFound("tenant".into())),
            },
            Credential::ApiKey { tenant_id, user_id, scopes, .. } => {
                if *tenant_id != tenant.id {
                    return Err(Error::NotFound("tenant".into()));
                }
                let owner = self.db.membership(&tenant.id, user_id).await?.ok_or(Error::InvalidApiKey)?;
                let permissions = self.role_permissions(&tenant.id, &owner.role).await?;
                Ok(access(Some(owner.role), permissions.intersect(*scopes)))
            }
        }
    }

    /// The tenant a request means when it names none: the API key's, or a
    /// user's only membership (`None` for the master key or several tenants).
    pub async fn default_tenant(&self, principal: &Principal) -> Result<Option<String>, Error> {
        match &principal.0 {
            Credential::ApiKey { tenant_id, .. } => Ok(Some(tenant_id.clone())),
            Credential::MasterKey => Ok(None),
            Credential::User { user_id, .. } => Ok(match self.db.memberships_of_user(user_id).await?.as_slice() {
                [only] => Some(only.tenant_id.clone()),
                _ => None,
            }),
        }
    }

    /// The account behind a principal (the key's owner for API keys).
    pub(crate) async fn user_of(&self, principal: &Principal) -> Result<Option<UserRow>, Error> {
        match principal.user_id() {
            Some(user_id) => Ok(self.db.user_by_id(user_id).await?),
            None => Ok(None),
        }
    }

    /// What a role grants in a tenant (built-in or custom; unknown grants nothing).
    pub async fn role_permissions(&self, tenant_id: &str, role: &str) -> Result<PermissionSet, Error> {
        if let Ok(builtin) = role.parse::<BuiltinRole>() {
            return Ok(builtin.permissions().iter().copied().collect());
        }
        Ok(match self.db.role(tenant_id, role).await? {
            Some(row) => stored_permissions(&row.permissions, "role", &row.name),
            None => PermissionSet::empty(),
        })
    }

    /// Make a new JWT signing key current (platform admins), audited.
    pub async fn rotate_signing_key(&self, principal: &Principal, meta: &RequestMeta) -> Result<String, Error> {
        if !principal.is_platform_admin() {
            return Err(Error::Forbidden("platform administrators only".into()));
        }
        let kid = self.tokens.rotate().await?;
        self.record(None, principal.actor(), AuditAction::SigningKeyRotate, Some(format!("kid:{kid}")), Outcome::Success, meta, serde_json::json!({})).await?;
        Ok(kid)
    }

    /// Audit a successful action done in a tenant by another service or route.
    pub async fn record_success(&self, access: &TenantAccess, action: AuditAction, resource: Option<String>, meta: &RequestMeta, metadata: serde_json::Value) -> Result<(), Error> {
        self.record(Some(&access.tenant_id), access.principal.actor(), action, resource, Outcome::Success, meta, metadata).await
    }

    /// Audit a refused credential: forged, tampered or unknown tokens and
    /// keys (not plain expiry, which every client meets). At most one event
    /// per kind and client address per [`REJECTION_AUDIT_WINDOW`], so a flood of
    /// random keys cannot flood the audit log; the metric
    /// `auth_rejected_credentials_total` counts every refusal. Returns the error.
    pub async fn record_rejected_credential(&self, error: Error, meta: &RequestMeta) -> Error {
        let (action, metadata) = match &error {
            Error::TokenInvalid(reason) => (AuditAction::AuthTokenRejected, serde_json::json!({ "reason": reason })),
            Error::InvalidApiKey => (AuditAction::AuthApiKeyRejected, serde_json::json!({})),
            _ => return error,
        };
        metrics::counter!("auth_rejected_credentials_total", "kind" => action.as_str()).increment(1);
        let address = format!("{action}|{}", address_bucket(meta.ip.as_deref()));
        if self.audited_rejections.contains_key(&address) {
            return error;
        }
        self.audited_rejections.insert(address, ());
        match self.record(None, Actor::Anonymous, action, None, Outcome::Denied, meta, metadata).await {
            Ok(()) => error,
            Err(audit_failure) => audit_failure,
        }
    }

    /// Audit a refused request (permission denied).
    pub async fn record_denied(&self, access: Option<&TenantAccess>, principal: &Principal, what: &str, meta: &RequestMeta) -> Result<(), Error> {
        let tenant = access.map(|a| a.tenant_id.as_str());
        self.record(tenant, principal.actor(), AuditAction::PermissionDenied, Some(what.to_owned()), Outcome::Denied, meta, serde_json::json!({})).await
    }
}
