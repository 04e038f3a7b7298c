//! OpenID Connect sign-in (authorization code + PKCE) with any number of
//! providers (Keycloak, Okta, Entra ID, Google…), through the `openidconnect`
//! crate: discovery, the authorization URL with state, nonce and an S256
//! PKCE challenge, the code exchange, and ID-token validation (signature by
//! the provider's JWKS, issuer, audience, expiry, nonce).
//!
//! A pending login (state → nonce, PKCE verifier) is stored in the database
//! and consumed once, so the callback may land on any replica. The provider
//! subject is linked to a user: an existing link, else a user with the same
//! verified email, else a new user (when the provider allows it). Groups in
//! the ID token (claim named by `groups_claim`) map to roles per tenant.
//! Provider metadata and keys are cached for [`METADATA_TTL`].
//!
//! Must not: follow redirects when talking to providers (SSRF), or trust any
//! claim before the ID token is verified.

use agentry_types::AuditAction;
use std::time::Duration;

use agentry_db::oidc::OidcLoginRow;
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde::{Deserialize, Serialize};

use super::accounts::new_user_row;
use super::sessions::{LoginOutcome, normalise_email};
use super::{Credential, Error, Identity, Principal, RequestMeta, now_ms};
use crate::audit::{Actor, Outcome};

/// How long discovered metadata and keys are reused.
pub const METADATA_TTL: Duration = Duration::from_secs(600);
/// How long a started login may take to come back.
const LOGIN_TTL_MS: i64 = 10 * 60 * 1000;

/// A group → role grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMapping {
    /// Value of the groups claim.
    pub group: String,
    /// Tenant slug or id.
    pub tenant: String,
    pub role: String,
}

/// `[[identity.oidc]]`: one provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Used in URLs: `/api/v1/auth/oidc/{name}/start`.
    pub name: String,
    /// The issuer URL; `{issuer}/.well-known/openid-configuration` must exist.
    pub issuer: String,
    pub client_id: String,
    #[serde(default, skip_serializing)]
    pub client_secret: Option<String>,
    /// This server's callback: `https://…/api/v1/auth/oidc/{name}/callback`.
    pub redirect_uri: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Claim holding the user's groups (e.g. `groups`); none: no mapping.
    #[serde(default)]
    pub groups_claim: Option<String>,
    #[serde(default)]
    pub role_mappings: Vec<RoleMapping>,
    /// Create a user on first sign-in (otherwise only linked or existing emails may sign in).
    #[serde(default = "yes")]
    pub create_users: bool,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn yes() -> bool {
    true
}

/// A client for a discovered provider: authorization endpoint set, token and
/// user-info endpoints as the metadata says.
type OidcClient = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The HTTP client for provider calls (built once per `Identity`).
pub(crate) fn http_client() -> Result<reqwest::Client, Error> {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(10)).build().map_err(|e| Error::Internal(format!("oidc http client: {e}")))
}

fn upstream(what: &str) -> impl FnOnce(String) -> Error + '_ {
    move |detail| {
        tracing::warn!(%detail, "OpenID Connect: {what}");
        Error::TokenInvalid(format!("the identity provider sign-in failed ({what})"))
    }
}

impl Identity {
    fn oidc_provider(&self, name: &str) -> Result<&OidcProviderConfig, Error> {
        self.settings.oidc.iter().find(|p| p.name == name).ok_or(Error::NotFound("identity provider".into()))
    }

    async fn oidc_metadata(&self, provider: &OidcProviderConfig) -> Result<CoreProviderMetadata, Error> {
        if let Some(metadata) = self.oidc_metadata.get(&provider.name) {
            return Ok(metadata);
        }
        let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| upstream("issuer URL")(e.to_string()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.oidc_http).await.map_err(|e| upstream("discovery")(format!("{e:?}")))?;
        self.oidc_metadata.insert(provider.name.clone(), metadata.clone());
        Ok(metadata)
    }

    async fn oidc_client(&self, provider: &OidcProviderConfig) -> Result<OidcClient, Error> {
        let metadata = self.oidc_metadata(provider).await?;
        let redirect = RedirectUrl::new(provider.redirect_uri.clone()).map_err(|e| Error::Internal(format!("redirect_uri: {e}")))?;
        let secret = provider.client_secret.clone().map(ClientSecret::new);
        Ok(CoreClient::from_provider_metadata(metadata, ClientId::new(provider.client_id.clone()), secret).set_redirect_uri(redirect))
    }

    /// The provider's authorization URL for a new sign-in.
    pub async fn oidc_start(&self, name: &str) -> Result<String, Error> {
        self.oidc_flow(name, None).await
    }

    /// The provider's authorization URL for linking it to the signed-in
    /// user's account: the identity the provider then asserts is linked to
    /// this account (the person proved both), the only way an identity
    /// reaches a password account. The flow is finished by
    /// [`Self::oidc_callback`] with the same signed-in user (the client posts
    /// code and state with its access token), so a victim's browser landing
    /// on an attacker's link state links nothing.
    pub async fn oidc_link_start(&self, principal: &Principal, name: &str) -> Result<String, Error> {
        let Credential::User { user_id, .. } = &principal.0 else {
            return Err(Error::Forbidden("linking an identity provider needs a signed-in user".into()));
        };
        self.oidc_flow(name, Some(user_id.clone())).await
    }

    async fn oidc_flow(&self, name: &str, link_user_id: Option<String>) -> Result<String, Error> {
        let provider = self.oidc_provider(name)?;
        let client = self.oidc_client(provider).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in provider.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        self.db
            .insert_oidc_login(&OidcLoginRow {
                state: state.secret().clone(),
                provider: provider.name.clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                created_at_ms: now_ms(),
                link_user_id,
            })
            .await?;
        Ok(url.to_string())
    }

    /// The callback: exchange the code, verify the ID token, sign the user
    /// in. `linking_user` is the signed-in user finishing a link flow (see
    /// [`Self::oidc_link_start`]); a link state finished by anyone else is
    /// refused and used up.
    pub async fn oidc_callback(&self, name: &str, code: &str, state: &str, linking_user: Option<&str>, meta: &RequestMeta) -> Result<LoginOutcome, Error> {
        let provider = self.oidc_provider(name)?;
        let pending = self.db.take_oidc_login(state, now_ms() - LOGIN_TTL_MS).await?.filter(|p| p.provider == provider.name);
        let Some(pending) = pending else {
            return Err(Error::invalid("unknown or expired sign-in state", "state"));
        };
        if pending.link_user_id.as_deref() != linking_user {
            let message = match &pending.link_user_id {
                Some(_) => format!("this flow links a provider to an account: finish it with POST /api/v1/auth/oidc/{name}/link/callback and that account's access token"),
                None => format!("this is a sign-in, not a link flow: start a link with POST /api/v1/auth/oidc/{name}/link"),
            };
            return Err(Error::Forbidden(message));
        }
        let link_user_id = pending.link_user_id.clone();
        let result = match self.oidc_verify(provider, code, pending).await {
            Ok(identity) => match link_user_id {
                Some(user_id) => self.oidc_link(provider, identity, &user_id, meta).await,
                None => self.oidc_sign_in(provider, identity, meta).await,
            },
            Err(error) => Err(error),
        };
        if let Err(error) = &result {
            let metadata = serde_json::json!({ "reason": error.to_string() });
            self.record(None, Actor::Anonymous, AuditAction::AuthOidcLogin, Some(format!("provider:{name}")), Outcome::Failure, meta, metadata).await?;
        }
        result
    }

    async fn oidc_verify(&self, provider: &OidcProviderConfig, code: &str, pending: OidcLoginRow) -> Result<VerifiedIdentity, Error> {
        let client = self.oidc_client(provider).await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| upstream("token endpoint")(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier))
            .request_async(&self.oidc_http)
            .await
            .map_err(|e| upstream("code exchange")(format!("{e:?}")))?;
        let id_token = response.id_token().ok_or_else(|| upstream("no ID token")(String::new()))?;
        let verifier = client.id_token_verifier();
        let claims = match id_token.claims(&verifier, &Nonce::new(pending.nonce.clone())) {
            Ok(claims) => claims.clone(),
            Err(error) => {
                // The provider may have rotated its keys: rediscover once.
                self.oidc_metadata.invalidate(&provider.name);
                return Err(upstream("ID token validation")(error.to_string()));
            }
        };
        // Verified above: the raw payload can now be read for the groups claim.
        let groups = match &provider.groups_claim {
            Some(claim) => raw_claims(&id_token.to_string())
                .and_then(|payload| payload.get(claim).cloned())
                .map(|value| match value {
                    serde_json::Value::Array(items) => items.into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                    serde_json::Value::String(one) => vec![one],
                    _ => Vec::new(),
                })
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(VerifiedIdentity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| normalise_email(e.as_str())),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.to_string()),
            groups,
        })
    }

    /// Finish a link flow: the identity joins the account that started it.
    async fn oidc_link(&self, provider: &OidcProviderConfig, identity: VerifiedIdentity, user_id: &str, meta: &RequestMeta) -> Result<LoginOutcome, Error> {
        match self.db.user_by_identity(&provider.name, &identity.subject).await? {
            Some(linked) if linked == user_id => {}
            Some(_) => return Err(Error::AlreadyExists("link of this identity to another account")),
            None => self.db.link_identity(&provider.name, &identity.subject, user_id, now_ms()).await?,
        }
        self.db.user_by_id(user_id).await?.filter(|u| u.is_active).ok_or_else(|| Error::Forbidden("the account is disabled".into()))?;
        let metadata = serde_json::json!({ "provider": provider.name, "subject": identity.subject });
        self.record(None, Actor::User(user_id.to_owned()), AuditAction::AuthOidcLink, Some(format!("provider:{}", provider.name)), Outcome::Success, meta, metadata).await?;
        self.after_first_factor(user_id, meta).await
    }

    async fn oidc_sign_in(&self, provider: &OidcProviderConfig, identity: VerifiedIdentity, meta: &RequestMeta) -> Result<LoginOutcome, Error> {
        let now = now_ms();
        let linked = self.db.user_by_identity(&provider.name, &identity.subject).await?;
        let user_id = match linked {
            Some(user_id) => user_id,
            None => {
                let Some(email) = identity.email.clone().filter(|_| identity.email_verified) else {
                    return Err(Error::Forbidden("the identity provider did not assert a verified email address".into()));
                };
                let user_id = match self.db.user_by_email(&email).await? {
                    // Whoever set that account's password (or created it unverified) must not gain this identity's sign-in.
                    Some(existing) if existing.password_hash.is_some() || !existing.email_verified => {
                        return Err(Error::Forbidden(
                            "an account with this e-mail address already exists: sign in with its password, then link this provider with POST /api/v1/auth/oidc/{provider}/link"
                                .into(),
                        ));
                    }
                    Some(existing) => existing.id,
                    None if provider.create_users => {
                        let user = new_user_row(&email, identity.name.as_deref(), None, false, true, now);
                        self.db.insert_user(&user).await?;
                        user.id
                    }
                    None => return Err(Error::Forbidden("no account for this identity; ask an administrator".into())),
                };
                self.db.link_identity(&provider.name, &identity.subject, &user_id, now).await?;
                user_id
            }
        };
        let user = self.db.user_by_id(&user_id).await?.filter(|u| u.is_active).ok_or_else(|| Error::Forbidden("the account is disabled".into()))?;
        for mapping in provider.role_mappings.iter().filter(|m| identity.groups.contains(&m.group)) {
            let Some(tenant) = self.db.tenant(&mapping.tenant).await? else {
                tracing::warn!(tenant = %mapping.tenant, "OpenID Connect role mapping names an unknown tenant");
                continue;
            };
            let current = self.db.membership(&tenant.id, &user.id).await?;
            if current.as_ref().is_some_and(|m| m.role == mapping.role) {
                continue;
            }
            if let Some(current) = &current
                && self.keep_an_admin(&tenant.id, current, Some(&mapping.role)).await.is_err()
            {
                tracing::warn!(tenant = %tenant.slug, user = %user.id, "OpenID Connect group mapping would demote the last admin; kept the admin role");
                continue;
            }
            self.db.upsert_membership(&tenant.id, &user.id, &mapping.role, now).await?;
            self.access_changed();
            let metadata = serde_json::json!({ "role": mapping.role, "group": mapping.group, "provider": provider.name });
            self.record(Some(&tenant.id), Actor::System, AuditAction::MembershipUpdate, Some(format!("user:{}", user.id)), Outcome::Success, meta, metadata).await?;
        }
        let outcome = self.after_first_factor(&user.id, meta).await?;
        let metadata = serde_json::json!({ "provider": provider.name, "subject": identity.subject, "groups": identity.groups });
        self.record(None, Actor::User(user.id.clone()), AuditAction::AuthOidcLogin, Some(format!("provider:{}", provider.name)), Outcome::Success, meta, metadata).await?;
        Ok(outcome)
    }
}

struct VerifiedIdentity {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    name: Option<String>,
    groups: Vec<String>,
}

/// The JSON payload of a JWT (only call on a verified token).
fn raw_claims(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}
