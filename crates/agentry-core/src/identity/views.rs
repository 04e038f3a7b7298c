//! What the identity service shows of its objects: tenants, memberships,
//! groups, accounts and the caller itself. Built from storage rows here and
//! nowhere else, so a column can change without changing the API.
//!
//! Must not: carry secrets or hashes (password hashes, token hashes) or
//! decide who may see a view (the service methods that return them do).

use agentry_db::groups::{GroupMemberRow, GroupRow};
use agentry_db::identity::{MembershipRow, TenantRow, UserRow};
use serde::Serialize;

/// A tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// Whether members must sign in with a second factor.
    pub mfa_required: bool,
    pub created_at_ms: i64,
}

impl From<TenantRow> for Tenant {
    fn from(row: TenantRow) -> Self {
        let TenantRow { id, slug, name, mfa_required, created_at_ms } = row;
        Self { id, slug, name, mfa_required, created_at_ms }
    }
}

/// A user's membership of a tenant, with the tenant's slug and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Membership {
    pub tenant_id: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub user_id: String,
    pub email: String,
    /// A built-in role (`admin`, `member`, `user`, `viewer`…) or a custom role's name.
    pub role: String,
    pub created_at_ms: i64,
}

impl From<MembershipRow> for Membership {
    fn from(row: MembershipRow) -> Self {
        let MembershipRow { tenant_id, tenant_slug, tenant_name, user_id, email, role, created_at_ms } = row;
        Self { tenant_id, tenant_slug, tenant_name, user_id, email, role, created_at_ms }
    }
}

/// A tenant as a principal sees it in a listing: a user sees their
/// memberships; a key and the master key see tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VisibleTenant {
    Membership(Membership),
    Tenant(Tenant),
}

/// A named set of a tenant's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Group {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl From<GroupRow> for Group {
    fn from(row: GroupRow) -> Self {
        let GroupRow { id, tenant_id, name, description, created_at_ms, updated_at_ms } = row;
        Self { id, tenant_id, name, description, created_at_ms, updated_at_ms }
    }
}

/// A member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GroupMember {
    pub user_id: String,
    pub email: String,
    pub added_at_ms: i64,
}

impl From<GroupMemberRow> for GroupMember {
    fn from(row: GroupMemberRow) -> Self {
        let GroupMemberRow { user_id, email, added_at_ms } = row;
        Self { user_id, email, added_at_ms }
    }
}

/// A group with its members, as `GET …/groups/{group_id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GroupInfo {
    #[serde(flatten)]
    pub group: Group,
    pub members: Vec<GroupMember>,
}

/// An account as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub platform_admin: bool,
    /// Whether the address is known to reach this person.
    pub email_verified: bool,
}

impl From<UserRow> for Account {
    fn from(row: UserRow) -> Self {
        Self { id: row.id, email: row.email, display_name: row.display_name, platform_admin: row.platform_admin, email_verified: row.email_verified }
    }
}

/// What kind of credential a request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    ApiKey,
    MasterKey,
}

/// The credential behind a request: its kind and id (none for the master key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PrincipalInfo {
    #[serde(rename = "type")]
    pub kind: PrincipalKind,
    pub id: Option<String>,
}

/// `GET /api/v1/auth/me`: who is calling, their account (the key's owner
/// for a key) and the tenants they see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub principal: PrincipalInfo,
    pub user: Option<Account>,
    pub tenants: Vec<VisibleTenant>,
}
