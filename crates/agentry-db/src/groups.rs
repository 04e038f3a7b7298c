//! Rows and queries of groups: named sets of a tenant's members that
//! document ACLs name as `group:<id>`.
//!
//! Every query takes the tenant id as a required argument and touches only
//! that tenant's groups; a member of a group counts only while they are
//! still a member of the tenant. The caller (agentry-core's identity
//! service) decides who may ask and checks that added users belong to the
//! tenant.
//!
//! Must not: decide anything (no business rules, no validation).

use crate::{Db, DbError, on_pool};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A member of a group, with their email for display.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupMemberRow {
    pub user_id: String,
    pub email: String,
    pub added_at_ms: i64,
}

macro_rules! group_columns {
    () => {
        "id, tenant_id, name, description, created_at_ms, updated_at_ms"
    };
}

impl Db {
    /// A new group; [`DbError::Conflict`] when the tenant has one with that name.
    pub async fn insert_group(&self, group: &GroupRow) -> Result<(), DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO groups (id, tenant_id, name, description, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&group.id).bind(&group.tenant_id).bind(&group.name).bind(&group.description).bind(group.created_at_ms).bind(group.updated_at_ms)
            .execute(pool).await.map(drop))
        .map_err(DbError::write("insert group"))
    }

    pub async fn groups_of_tenant(&self, tenant_id: &str) -> Result<Vec<GroupRow>, DbError> {
        let sql = concat!("SELECT ", group_columns!(), " FROM groups WHERE tenant_id = $1 ORDER BY name");
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).fetch_all(pool).await).map_err(DbError::query("list groups"))
    }

    pub async fn group(&self, tenant_id: &str, id: &str) -> Result<Option<GroupRow>, DbError> {
        let sql = concat!("SELECT ", group_columns!(), " FROM groups WHERE tenant_id = $1 AND id = $2");
        on_pool!(self, pool => sqlx::query_as(sql).bind(tenant_id).bind(id).fetch_optional(pool).await).map_err(DbError::query("get group"))
    }

    /// Rename and/or describe a group (`None` keeps the value); `false` when
    /// the tenant has no such group, [`DbError::Conflict`] when the name is taken.
    pub async fn update_group(&self, tenant_id: &str, id: &str, name: Option<&str>, description: Option<&str>, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query(
            "UPDATE groups SET name = COALESCE($3, name), description = COALESCE($4, description), updated_at_ms = $5 WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id).bind(id).bind(name).bind(description).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("update group"))
    }

    /// Delete a group and (by cascade) its member rows; `false` when absent.
    pub async fn delete_group(&self, tenant_id: &str, id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query("DELETE FROM groups WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id).bind(id).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("delete group"))
    }

    /// Add a user to the tenant's group. Idempotent: `false` when they were
    /// already in it (or the tenant has no such group).
    pub async fn add_group_member(&self, tenant_id: &str, group_id: &str, user_id: &str, now_ms: i64) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query(
            "INSERT INTO group_members (group_id, user_id, added_at_ms) SELECT id, $3, $4 FROM groups WHERE tenant_id = $1 AND id = $2 \
             ON CONFLICT (group_id, user_id) DO NOTHING")
            .bind(tenant_id).bind(group_id).bind(user_id).bind(now_ms).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("add group member"))
    }

    /// `false` when the user was not in the tenant's group.
    pub async fn remove_group_member(&self, tenant_id: &str, group_id: &str, user_id: &str) -> Result<bool, DbError> {
        on_pool!(self, pool => sqlx::query(
            "DELETE FROM group_members WHERE group_id = $2 AND user_id = $3 AND group_id IN (SELECT id FROM groups WHERE tenant_id = $1)")
            .bind(tenant_id).bind(group_id).bind(user_id).execute(pool).await.map(|r| r.rows_affected() > 0))
        .map_err(DbError::write("remove group member"))
    }

    /// Members of the tenant's group who are still members of the tenant, by email.
    pub async fn group_members(&self, tenant_id: &str, group_id: &str) -> Result<Vec<GroupMemberRow>, DbError> {
        on_pool!(self, pool => sqlx::query_as(
            "SELECT gm.user_id, u.email, gm.added_at_ms FROM group_members gm \
             JOIN groups g ON g.id = gm.group_id \
             JOIN memberships m ON m.tenant_id = g.tenant_id AND m.user_id = gm.user_id \
             JOIN users u ON u.id = gm.user_id \
             WHERE g.tenant_id = $1 AND g.id = $2 ORDER BY u.email")
            .bind(tenant_id).bind(group_id).fetch_all(pool).await)
        .map_err(DbError::query("list group members"))
    }

    /// Ids of the tenant's groups `user_id` is in (none once they left the tenant).
    pub async fn group_ids_of_user(&self, tenant_id: &str, user_id: &str) -> Result<Vec<String>, DbError> {
        on_pool!(self, pool => sqlx::query_scalar(
            "SELECT g.id FROM group_members gm \
             JOIN groups g ON g.id = gm.group_id \
             JOIN memberships m ON m.tenant_id = g.tenant_id AND m.user_id = gm.user_id \
             WHERE g.tenant_id = $1 AND gm.user_id = $2 ORDER BY g.id")
            .bind(tenant_id).bind(user_id).fetch_all(pool).await)
        .map_err(DbError::query("list groups of user"))
    }
}
