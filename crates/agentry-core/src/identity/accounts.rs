//! Tenants, users, memberships and roles: bootstrap, administration, and
//! the rules that keep a tenant manageable (a role must exist before it is
//! given; the last admin of a tenant cannot be removed or demoted; a custom
//! role in use cannot be deleted) and safe: the privilege ceiling — a caller
//! gives, edits or takes away only roles whose permissions it holds itself
//! ([`TenantAccess::require_within`]), so no chain of grants ends with more
//! than its start.

use agentry_db::DbError;
use agentry_db::identity::{MembershipRow, RoleRow, TenantRow, UserRow};
use agentry_types::AuditAction;

use super::Credential;
use super::views::{Account, Me, Membership, PrincipalInfo, Tenant, VisibleTenant};
use agentry_types::{BuiltinRole, Permission, PermissionSet};
use serde::Serialize;

use super::sessions::normalise_email;
use super::{Error, Identity, Principal, RequestMeta, TenantAccess, now_ms};
use crate::audit::{Actor, Outcome};
use crate::page::{Cursor, Page, PageRequest};

/// A role as listed: built-in or custom, with what it grants.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoleInfo {
    pub name: String,
    pub builtin: bool,
    pub description: String,
    pub permissions: PermissionSet,
}

/// A new, active user row.
pub(crate) fn new_user_row(email: &str, display_name: Option<&str>, password_hash: Option<String>, platform_admin: bool, email_verified: bool, now: i64) -> UserRow {
    UserRow {
        id: uuid::Uuid::now_v7().to_string(),
        email: email.to_owned(),
        display_name: display_name.unwrap_or(email).to_owned(),
        password_hash,
        is_active: true,
        platform_admin,
        failed_logins: 0,
        locked_until_ms: None,
        created_at_ms: now,
        updated_at_ms: now,
        email_verified,
    }
}

fn conflict(what: &'static str) -> impl FnOnce(DbError) -> Error {
    move |e| match e {
        DbError::Conflict { .. } => Error::AlreadyExists(what),
        other => Error::Db(other),
    }
}

/// Lowercase letters, digits and dashes, 2–63 characters, not starting with a dash.
fn check_slug(slug: &str) -> Result<(), Error> {
    let ok = (2..=63).contains(&slug.len()) && !slug.starts_with('-') && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok { Ok(()) } else { Err(Error::invalid("slug must be 2-63 lowercase letters, digits or dashes", "slug")) }
}

/// A tenant's display name: 1-200 characters, not blank.
pub(crate) fn check_tenant_name(name: &str) -> Result<&str, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 { Err(Error::invalid("'name' must be 1 to 200 characters", "name")) } else { Ok(name) }
}

pub(crate) fn check_email(email: &str) -> Result<(), Error> {
    let ok = email.len() <= 254 && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace));
    if ok { Ok(()) } else { Err(Error::invalid("not a valid email address", "email")) }
}

impl Identity {
    /// First start: a tenant, and a platform admin who is its admin. Refused
    /// once any user exists with that email or the tenant slug is taken.
    pub async fn bootstrap(&self, tenant_slug: &str, tenant_name: &str, email: &str, password: &str) -> Result<(Tenant, String), Error> {
        check_slug(tenant_slug)?;
        let email = normalise_email(email);
        check_email(&email)?;
        self.settings.password_policy.check(password, "password")?;
        let now = now_ms();
        let tenant = TenantRow { id: uuid::Uuid::now_v7().to_string(), slug: tenant_slug.into(), name: tenant_name.into(), mfa_required: false, created_at_ms: now };
        self.db.insert_tenant(&tenant).await.map_err(conflict("tenant"))?;
        let user = new_user_row(&email, None, Some(self.passwords.hash(password.to_owned()).await?), true, true, now);
        self.db.insert_user(&user).await.map_err(conflict("user"))?;
        self.db.upsert_membership(&tenant.id, &user.id, BuiltinRole::Admin.as_str(), now).await?;
        let meta = RequestMeta::default();
        self.record(
            Some(&tenant.id),
            Actor::System,
            AuditAction::AdminBootstrap,
            Some(format!("user:{}", user.id)),
            Outcome::Success,
            &meta,
            serde_json::json!({ "email": email }),
        )
        .await?;
        Ok((tenant.into(), user.id))
    }

    /// Self-registration (when `identity.self_registration` is on): a user
    /// with no memberships and an unverified address (a verification mail
    /// is queued when SMTP is configured), who can be invited into tenants.
    pub async fn register(&self, email: &str, password: &str, display_name: Option<&str>, meta: &RequestMeta) -> Result<String, Error> {
        if !self.settings.self_registration {
            return Err(Error::Forbidden("self-registration is disabled on this server".into()));
        }
        let email = normalise_email(email);
        check_email(&email)?;
        self.settings.password_policy.check(password, "password")?;
        let user = new_user_row(&email, display_name, Some(self.passwords.hash(password.to_owned()).await?), false, false, now_ms());
        self.db.insert_user(&user).await.map_err(conflict("user"))?;
        self.record(None, Actor::User(user.id.clone()), AuditAction::UserRegister, Some(format!("user:{}", user.id)), Outcome::Success, meta, serde_json::json!({})).await?;
        self.queue_verification(&user).await?;
        Ok(user.id)
    }

    /// Disable or re-enable an account (platform administrators). Disabling
    /// revokes every session; API keys of a disabled user stop working with
    /// them (their owner no longer authenticates as a member).
    pub async fn set_user_active(&self, principal: &Principal, user_id: &str, active: bool, meta: &RequestMeta) -> Result<(), Error> {
        if !principal.is_platform_admin() {
            return Err(Error::Forbidden("platform administrators only".into()));
        }
        if principal.user_id() == Some(user_id) && !active {
            return Err(Error::invalid("you cannot disable your own account", "user_id"));
        }
        let now = now_ms();
        if !self.db.set_user_active(user_id, active, now).await? {
            return Err(Error::NotFound("user".into()));
        }
        if !active {
            self.db.revoke_sessions(user_id, None, "account disabled", now).await?;
            self.live_sessions.invalidate_all();
            self.keys.invalidate_all();
            self.access_changed();
        }
        let action = if active { AuditAction::UserEnable } else { AuditAction::UserDisable };
        self.record(None, principal.actor(), action, Some(format!("user:{user_id}")), Outcome::Success, meta, serde_json::json!({})).await
    }

    /// A new tenant with `owner` (a user id) as its admin. Platform admins only.
    pub async fn create_tenant(&self, principal: &Principal, slug: &str, name: &str, owner: Option<&str>, meta: &RequestMeta) -> Result<Tenant, Error> {
        if !principal.is_platform_admin() {
            return Err(Error::Forbidden("only platform administrators create tenants".into()));
        }
        check_slug(slug)?;
        let name = check_tenant_name(name)?;
        let owner = owner.or(principal.user_id());
        if let Some(owner) = owner {
            self.db.user_by_id(owner).await?.ok_or(Error::NotFound("user".into()))?;
        }
        let now = now_ms();
        let tenant = TenantRow { id: uuid::Uuid::now_v7().to_string(), slug: slug.into(), name: name.into(), mfa_required: false, created_at_ms: now };
        self.db.insert_tenant(&tenant).await.map_err(conflict("tenant"))?;
        if let Some(owner) = owner {
            self.db.upsert_membership(&tenant.id, owner, BuiltinRole::Admin.as_str(), now).await?;
            self.access_changed();
        }
        self.record(
            Some(&tenant.id),
            principal.actor(),
            AuditAction::TenantCreate,
            Some(format!("tenant:{}", tenant.id)),
            Outcome::Success,
            meta,
            serde_json::json!({ "slug": slug }),
        )
        .await?;
        Ok(tenant.into())
    }

    /// Tenants the principal can enter (all of them for platform admins).
    pub async fn visible_tenants(&self, principal: &Principal) -> Result<Vec<VisibleTenant>, Error> {
        let tenant = |row: TenantRow| VisibleTenant::Tenant(row.into());
        if principal.is_platform_admin() {
            return Ok(self.db.all_tenants().await?.into_iter().map(tenant).collect());
        }
        match &principal.0 {
            Credential::ApiKey { tenant_id, .. } => Ok(self.db.tenant(tenant_id).await?.into_iter().map(tenant).collect()),
            _ => {
                let user = principal.user_id().unwrap_or_default();
                Ok(self.db.memberships_of_user(user).await?.into_iter().map(|row| VisibleTenant::Membership(row.into())).collect())
            }
        }
    }

    /// Who is calling: the credential, its account and the tenants it sees.
    pub async fn me(&self, principal: &Principal) -> Result<Me, Error> {
        let (kind, id) = (principal.kind(), principal.id().map(str::to_owned));
        let user = self.user_of(principal).await?.map(Account::from);
        Ok(Me { principal: PrincipalInfo { kind, id }, user, tenants: self.visible_tenants(principal).await? })
    }

    /// The tenant's members in the order they joined, a page at a time.
    pub async fn members(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<Membership>, Error> {
        access.require(Permission::ManageUsers)?;
        let rows = self.db.members_of_tenant(&access.tenant_id, page.after_key(), page.fetch()).await?;
        Ok(page.page(rows, |row| Cursor::new(row.created_at_ms, &row.user_id), Membership::from))
    }

    /// Change a member's role.
    pub async fn set_member_role(&self, access: &TenantAccess, user_id: &str, role: &str, meta: &RequestMeta) -> Result<Membership, Error> {
        access.require(Permission::ManageUsers)?;
        self.grantable_role(access, role).await?;
        let current = self.db.membership(&access.tenant_id, user_id).await?.ok_or(Error::NotFound("member".into()))?;
        self.outranked_member(access, &current).await?;
        self.keep_an_admin(&access.tenant_id, &current, Some(role)).await?;
        self.db.upsert_membership(&access.tenant_id, user_id, role, now_ms()).await?;
        self.access_changed();
        let metadata = serde_json::json!({ "from": current.role, "to": role });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::MembershipUpdate, Some(format!("user:{user_id}")), Outcome::Success, meta, metadata).await?;
        Ok(self.db.membership(&access.tenant_id, user_id).await?.ok_or(Error::NotFound("member".into()))?.into())
    }

    /// End a membership; the user leaves the tenant's groups with it (same transaction).
    pub async fn remove_member(&self, access: &TenantAccess, user_id: &str, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageUsers)?;
        let current = self.db.membership(&access.tenant_id, user_id).await?.ok_or(Error::NotFound("member".into()))?;
        self.outranked_member(access, &current).await?;
        self.keep_an_admin(&access.tenant_id, &current, None).await?;
        self.db.delete_membership(&access.tenant_id, user_id).await?;
        self.access_changed();
        self.record(
            Some(&access.tenant_id),
            access.principal.actor(),
            AuditAction::MembershipDelete,
            Some(format!("user:{user_id}")),
            Outcome::Success,
            meta,
            serde_json::json!({}),
        )
        .await
    }

    /// Check that `access` may export (`erasing` false) or erase `user`'s
    /// data in its tenant: `manage_users`; never a platform administrator's
    /// unless the caller is one; for a member, a role within the caller's
    /// (and, erasing, not the last admin); for someone who is no longer a
    /// member (their role unknown), `manage_tenant`. Nobody erases their own.
    pub(crate) async fn check_subject(&self, access: &TenantAccess, user: &UserRow, erasing: bool) -> Result<(), Error> {
        access.require(Permission::ManageUsers)?;
        if erasing && access.principal.user_id() == Some(user.id.as_str()) {
            return Err(Error::invalid("you cannot erase your own data: ask another administrator", "user_id"));
        }
        if user.platform_admin && !access.principal.is_platform_admin() {
            return Err(Error::Forbidden("a platform administrator's data is beyond a tenant's administrators".into()));
        }
        match self.db.membership(&access.tenant_id, &user.id).await? {
            Some(current) => {
                self.outranked_member(access, &current).await?;
                if erasing {
                    self.keep_an_admin(&access.tenant_id, &current, None).await?;
                }
            }
            None => access.require(Permission::ManageTenant)?,
        }
        Ok(())
    }

    /// Forget cached sessions, keys and tenant access after a person's data was erased.
    pub(crate) fn person_erased(&self) {
        self.live_sessions.invalidate_all();
        self.keys.invalidate_all();
        self.access_changed();
    }

    pub(crate) async fn keep_an_admin(&self, tenant_id: &str, current: &MembershipRow, new_role: Option<&str>) -> Result<(), Error> {
        let admin = BuiltinRole::Admin.as_str();
        if current.role == admin && new_role != Some(admin) && self.db.count_members_with_role(tenant_id, admin).await? <= 1 {
            return Err(Error::invalid("a tenant must keep at least one admin", "role"));
        }
        Ok(())
    }

    /// A role that exists in the tenant and grants nothing the caller lacks.
    pub(crate) async fn grantable_role(&self, access: &TenantAccess, role: &str) -> Result<(), Error> {
        if role.parse::<BuiltinRole>().is_err() && self.db.role(&access.tenant_id, role).await?.is_none() {
            return Err(Error::invalid(format!("no role named '{role}' in this tenant"), "role"));
        }
        access.require_within(self.role_permissions(&access.tenant_id, role).await?, &format!("role '{role}'"))
    }

    /// Refuse to change or remove a member whose role holds more than the caller.
    pub(crate) async fn outranked_member(&self, access: &TenantAccess, member: &MembershipRow) -> Result<(), Error> {
        let held = self.role_permissions(&access.tenant_id, &member.role).await?;
        access.require_within(held, &format!("this member's role '{}'", member.role))
    }

    /// Built-in and custom roles of the tenant.
    pub async fn roles(&self, access: &TenantAccess) -> Result<Vec<RoleInfo>, Error> {
        let mut roles: Vec<RoleInfo> = BuiltinRole::ALL
            .iter()
            .map(|r| RoleInfo { name: r.as_str().into(), builtin: true, description: String::new(), permissions: r.permissions().iter().copied().collect() })
            .collect();
        for row in self.db.roles_of_tenant(&access.tenant_id).await? {
            let permissions = super::stored_permissions(&row.permissions, "role", &row.name);
            roles.push(RoleInfo { name: row.name, builtin: false, description: row.description, permissions });
        }
        Ok(roles)
    }

    /// Create or change a custom role.
    pub async fn put_role(&self, access: &TenantAccess, name: &str, description: &str, permissions: PermissionSet, meta: &RequestMeta) -> Result<RoleInfo, Error> {
        access.require(Permission::ManageRoles)?;
        if name.parse::<BuiltinRole>().is_ok() {
            return Err(Error::Conflict("built-in roles cannot be changed".into()));
        }
        check_slug(&name.replace('_', "-")).map_err(|_| Error::invalid("role names are 2-63 lowercase letters, digits, '-' or '_'", "name"))?;
        access.require_within(permissions, "the role")?;
        if self.db.role(&access.tenant_id, name).await?.is_some() {
            access.require_within(self.role_permissions(&access.tenant_id, name).await?, &format!("role '{name}'"))?;
        }
        let row = RoleRow {
            tenant_id: access.tenant_id.clone(),
            name: name.into(),
            description: description.into(),
            permissions: serde_json::to_string(&permissions).map_err(|e| Error::Internal(e.to_string()))?,
            created_at_ms: now_ms(),
        };
        self.db.upsert_role(&row).await?;
        self.access_changed();
        self.record(
            Some(&access.tenant_id),
            access.principal.actor(),
            AuditAction::RolePut,
            Some(format!("role:{name}")),
            Outcome::Success,
            meta,
            serde_json::json!({ "permissions": permissions }),
        )
        .await?;
        Ok(RoleInfo { name: name.into(), builtin: false, description: description.into(), permissions })
    }

    pub async fn delete_role(&self, access: &TenantAccess, name: &str, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageRoles)?;
        access.require_within(self.role_permissions(&access.tenant_id, name).await?, &format!("role '{name}'"))?;
        if self.db.count_members_with_role(&access.tenant_id, name).await? > 0 {
            return Err(Error::invalid("the role is still given to members", "name"));
        }
        if !self.db.delete_role(&access.tenant_id, name).await? {
            return Err(Error::NotFound("role".into()));
        }
        self.access_changed();
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::RoleDelete, Some(format!("role:{name}")), Outcome::Success, meta, serde_json::json!({})).await
    }

    /// Change the tenant's name and/or its "MFA required" policy (neither: nothing changes).
    pub async fn update_tenant(&self, access: &TenantAccess, name: Option<&str>, mfa_required: Option<bool>, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageTenant)?;
        let name = name.map(check_tenant_name).transpose()?;
        if name.is_none() && mfa_required.is_none() {
            return Ok(());
        }
        self.db.update_tenant(&access.tenant_id, name, mfa_required).await?;
        self.access_changed();
        let metadata = serde_json::json!({ "name": name, "mfa_required": mfa_required });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::TenantUpdate, None, Outcome::Success, meta, metadata).await
    }
}
