//! Groups: named sets of a tenant's members, so a document ACL can name a
//! team (`group:<id>`) instead of listing users. Owns their administration
//! (all of it needs `manage_users`, reading included: who is in which group
//! is personnel information) and its rules: names are 1-100 characters,
//! trimmed and unique in the tenant; only members of the tenant can join a
//! group, and leaving the tenant leaves its groups (see
//! `Db::delete_membership`). Every change is audited.
//!
//! Group membership widens what a member reads (documents whose ACL names
//! the group), so it is a grant under the privilege ceiling: only members of
//! a group, or callers holding every permission, change who is in it or
//! delete it; a creator who does not hold every permission is its first member.
//!
//! Must not: decide what a group may read (the knowledge ACLs do), or give
//! permissions (roles do).

use agentry_db::DbError;
use agentry_db::groups::GroupRow;
use agentry_types::AuditAction;
use agentry_types::Permission;

use super::views::{Group, GroupInfo, GroupMember};
use super::{Error, Identity, RequestMeta, TenantAccess, now_ms};
use crate::audit::Outcome;

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The trimmed name, or why it is refused.
fn check_name(name: &str) -> Result<&str, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(format!("a group name must have 1-{MAX_NAME_CHARS} characters"), "name"));
    }
    Ok(name)
}

fn check_description(description: &str) -> Result<(), Error> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(format!("a group description must have at most {MAX_DESCRIPTION_CHARS} characters"), "description"));
    }
    Ok(())
}

fn name_taken(e: DbError) -> Error {
    match e {
        DbError::Conflict { .. } => Error::AlreadyExists("a group with this name"),
        other => Error::Db(other),
    }
}

impl Identity {
    pub async fn create_group(&self, access: &TenantAccess, name: &str, description: &str, meta: &RequestMeta) -> Result<Group, Error> {
        access.require(Permission::ManageUsers)?;
        let name = check_name(name)?;
        check_description(description)?;
        let now = now_ms();
        let group = GroupRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: access.tenant_id.clone(),
            name: name.to_owned(),
            description: description.to_owned(),
            created_at_ms: now,
            updated_at_ms: now,
        };
        self.db.insert_group(&group).await.map_err(name_taken)?;
        // A creator below the ceiling joins, or it could never manage its own group.
        if let Some(creator) = access.principal.user_id()
            && access.permissions != agentry_types::PermissionSet::all()
            && self.db.membership(&access.tenant_id, creator).await?.is_some()
        {
            self.db.add_group_member(&access.tenant_id, &group.id, creator, now).await?;
        }
        let metadata = serde_json::json!({ "name": name });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::GroupCreate, Some(format!("group:{}", group.id)), Outcome::Success, meta, metadata).await?;
        Ok(group.into())
    }

    pub async fn groups(&self, access: &TenantAccess) -> Result<Vec<Group>, Error> {
        access.require(Permission::ManageUsers)?;
        Ok(self.db.groups_of_tenant(&access.tenant_id).await?.into_iter().map(Group::from).collect())
    }

    /// One group with its members.
    pub async fn group(&self, access: &TenantAccess, group_id: &str) -> Result<GroupInfo, Error> {
        access.require(Permission::ManageUsers)?;
        let group = self.db.group(&access.tenant_id, group_id).await?.ok_or(Error::NotFound("group".into()))?;
        let members = self.db.group_members(&access.tenant_id, group_id).await?;
        Ok(GroupInfo { group: group.into(), members: members.into_iter().map(GroupMember::from).collect() })
    }

    /// Rename and/or describe a group (`None` keeps the value).
    pub async fn update_group(&self, access: &TenantAccess, group_id: &str, name: Option<&str>, description: Option<&str>, meta: &RequestMeta) -> Result<GroupInfo, Error> {
        access.require(Permission::ManageUsers)?;
        let name = name.map(check_name).transpose()?;
        description.map(check_description).transpose()?;
        if name.is_none() && description.is_none() {
            return self.group(access, group_id).await;
        }
        if !self.db.update_group(&access.tenant_id, group_id, name, description, now_ms()).await.map_err(name_taken)? {
            return Err(Error::NotFound("group".into()));
        }
        let metadata = serde_json::json!({ "name": name, "description": description });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::GroupUpdate, Some(format!("group:{group_id}")), Outcome::Success, meta, metadata).await?;
        self.group(access, group_id).await
    }

    /// The ceiling for a group's membership: the caller is in the group, or holds every permission.
    async fn within_group(&self, access: &TenantAccess, group_id: &str) -> Result<(), Error> {
        self.db.group(&access.tenant_id, group_id).await?.ok_or(Error::NotFound("group".into()))?;
        if access.permissions == agentry_types::PermissionSet::all() {
            return Ok(());
        }
        let caller = access.principal.user_id();
        if self.db.group_members(&access.tenant_id, group_id).await?.iter().any(|m| Some(m.user_id.as_str()) == caller) {
            return Ok(());
        }
        Err(Error::Forbidden("only the group's own members (or administrators) change who is in it: membership grants what its documents grant".into()))
    }

    /// Delete a group. Documents whose ACL names only this group become
    /// readable by no one (until their ACL changes): never public.
    pub async fn delete_group(&self, access: &TenantAccess, group_id: &str, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageUsers)?;
        self.within_group(access, group_id).await?;
        if !self.db.delete_group(&access.tenant_id, group_id).await? {
            return Err(Error::NotFound("group".into()));
        }
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::GroupDelete, Some(format!("group:{group_id}")), Outcome::Success, meta, serde_json::json!({}))
            .await
    }

    /// Put a member of the tenant in a group (idempotent; audited only when it changed something).
    pub async fn add_group_member(&self, access: &TenantAccess, group_id: &str, user_id: &str, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageUsers)?;
        self.within_group(access, group_id).await?;
        if self.db.membership(&access.tenant_id, user_id).await?.is_none() {
            return Err(Error::invalid(format!("user '{user_id}' is not a member of this tenant"), "user_id"));
        }
        if self.db.add_group_member(&access.tenant_id, group_id, user_id, now_ms()).await? {
            let metadata = serde_json::json!({ "user_id": user_id });
            self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::GroupMemberAdd, Some(format!("group:{group_id}")), Outcome::Success, meta, metadata)
                .await?;
        }
        Ok(())
    }

    pub async fn remove_group_member(&self, access: &TenantAccess, group_id: &str, user_id: &str, meta: &RequestMeta) -> Result<(), Error> {
        access.require(Permission::ManageUsers)?;
        self.within_group(access, group_id).await?;
        if !self.db.remove_group_member(&access.tenant_id, group_id, user_id).await? {
            return Err(Error::NotFound("group member".into()));
        }
        let metadata = serde_json::json!({ "user_id": user_id });
        self.record(Some(&access.tenant_id), access.principal.actor(), AuditAction::GroupMemberRemove, Some(format!("group:{group_id}")), Outcome::Success, meta, metadata).await
    }
}
