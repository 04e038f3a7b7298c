//! The tenant's agent catalog: the built-in agents plus custom agents
//! (create, change as a new version, list versions, delete), and resolving
//! a name to the [`AgentSpec`] a run uses. Managing needs `manage_agents`;
//! using an agent needs its kind's permission (checked when a run starts).
//!
//! Must not: run agents.

use agentry_db::DbError;
use agentry_types::Permission;
use serde::Serialize;

use super::definitions::{AgentDefinition, AgentKind, AgentSpec, parse_agent_name};
use super::{Agents, Error};
use crate::identity::TenantAccess;
use crate::page::{Cursor, Page, PageRequest};

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentView {
    #[serde(flatten)]
    pub spec: AgentSpec,
    pub built_in: bool,
    /// Whether the asker may run it.
    pub usable: bool,
    pub created_at_ms: Option<i64>,
    pub updated_at_ms: Option<i64>,
}

/// One stored version of a custom agent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AgentVersionView {
    pub version: i32,
    pub definition: AgentDefinition,
    pub created_by: Option<String>,
    pub created_at_ms: i64,
}

/// The two groups agents are listed in, as a cursor's `at_ms`.
const BUILT_IN_GROUP: i64 = 0;
const CUSTOM_GROUP: i64 = 1;

fn stored_definition(json: &str) -> Result<AgentDefinition, Error> {
    serde_json::from_str(json).map_err(|e| Error::Internal(format!("stored agent definition: {e}")))
}

impl Agents {
    /// A built-in agent's spec on the configured models.
    pub(super) fn built_in_spec(&self, kind: AgentKind) -> AgentSpec {
        let model = match kind {
            AgentKind::Vision => self.settings.vision_model.as_deref().unwrap_or(&self.settings.default_model),
            _ => &self.settings.default_model,
        };
        AgentSpec::built_in(kind, model, self.settings.limits())
    }

    /// The spec of the agent `name` in the asker's tenant.
    pub(super) async fn resolve(&self, access: &TenantAccess, name: &str) -> Result<AgentSpec, Error> {
        if let Some(kind) = AgentKind::built_in(name) {
            return Ok(self.built_in_spec(kind));
        }
        let row = self.db.agent(access.tenant_id(), name).await?.ok_or_else(|| Error::NotFound(format!("agent '{name}'")))?;
        let definition = stored_definition(&row.definition)?;
        Ok(AgentSpec::custom(&row.name, row.latest_version, definition, &self.settings.default_model, self.settings.limits()))
    }

    fn view(&self, access: &TenantAccess, spec: AgentSpec, times: Option<(i64, i64)>) -> AgentView {
        AgentView { built_in: spec.version.is_none(), usable: access.can(spec.kind.permission()), created_at_ms: times.map(|t| t.0), updated_at_ms: times.map(|t| t.1), spec }
    }

    /// Every agent the tenant has (for MCP's tool list): built-in ones,
    /// then custom ones, each by name.
    pub async fn list_agents(&self, access: &TenantAccess) -> Result<Vec<AgentView>, Error> {
        let page = self.agents_after(access, None, i64::MAX).await?;
        Ok(page.into_iter().map(|(_, view)| view).collect())
    }

    /// The agents a page at a time: built-in ones, then custom ones, each by
    /// name. A cursor's `at_ms` says which of the two its name is in; pages
    /// follow the order of (group, name), whatever group a cursor names.
    pub async fn agents(&self, access: &TenantAccess, page: &PageRequest) -> Result<Page<AgentView>, Error> {
        let after = page.after_key();
        let views = self.agents_after(access, after, page.fetch()).await?;
        Ok(page.page(views, |(cursor, _)| cursor.clone(), |(_, view)| view))
    }

    async fn agents_after(&self, access: &TenantAccess, after: Option<(i64, &str)>, limit: i64) -> Result<Vec<(Cursor, AgentView)>, Error> {
        let mut built_in: Vec<AgentSpec> = AgentKind::BUILT_IN.into_iter().map(|kind| self.built_in_spec(kind)).collect();
        built_in.retain(|spec| after.is_none_or(|cursor| (BUILT_IN_GROUP, spec.name.as_str()) > cursor));
        built_in.sort_by(|a, b| a.name.cmp(&b.name));
        let mut views: Vec<(Cursor, AgentView)> =
            built_in.into_iter().map(|spec| (Cursor::new(BUILT_IN_GROUP, &spec.name), self.view(access, spec, None))).take(usize::try_from(limit).unwrap_or(usize::MAX)).collect();
        let wanted = limit.saturating_sub(views.len() as i64);
        if wanted > 0 && after.is_none_or(|(group, _)| group <= CUSTOM_GROUP) {
            let custom_after = after.filter(|(group, _)| *group == CUSTOM_GROUP).map_or("", |(_, name)| name);
            for row in self.db.agents_of_tenant(access.tenant_id(), custom_after, wanted).await? {
                let definition = stored_definition(&row.definition)?;
                let spec = AgentSpec::custom(&row.name, row.latest_version, definition, &self.settings.default_model, self.settings.limits());
                views.push((Cursor::new(CUSTOM_GROUP, &row.name), self.view(access, spec, Some((row.created_at_ms, row.updated_at_ms)))));
            }
        }
        Ok(views)
    }

    pub async fn agent(&self, access: &TenantAccess, name: &str) -> Result<AgentView, Error> {
        if let Some(kind) = AgentKind::built_in(name) {
            return Ok(self.view(access, self.built_in_spec(kind), None));
        }
        let row = self.db.agent(access.tenant_id(), name).await?.ok_or_else(|| Error::NotFound(format!("agent '{name}'")))?;
        let definition = stored_definition(&row.definition)?;
        let spec = AgentSpec::custom(&row.name, row.latest_version, definition, &self.settings.default_model, self.settings.limits());
        Ok(self.view(access, spec, Some((row.created_at_ms, row.updated_at_ms))))
    }

    async fn checked_definition(&self, access: &TenantAccess, definition: AgentDefinition) -> Result<(AgentDefinition, String), Error> {
        let definition = definition.parse(&self.tools.names())?;
        self.check_mcp_entries(access.tenant_id(), &definition.tools).await?;
        if let Some(model) = &definition.model
            && self.gateway.router().registry().get(model).is_none()
        {
            return Err(Error::Invalid { message: format!("unknown model '{model}'"), param: Some("model".into()) });
        }
        let json = serde_json::to_string(&definition).map_err(|e| Error::Internal(e.to_string()))?;
        Ok((definition, json))
    }

    pub async fn create_agent(&self, access: &TenantAccess, name: &str, definition: AgentDefinition) -> Result<AgentView, Error> {
        access.require(Permission::ManageAgents)?;
        let name = parse_agent_name(name)?;
        let (_, json) = self.checked_definition(access, definition).await?;
        match self.db.insert_agent(access.tenant_id(), name, &json, access.principal().user_id(), crate::identity::now_ms()).await {
            Err(DbError::Conflict { .. }) => return Err(Error::Conflict(format!("an agent named '{name}' already exists"))),
            other => other?,
        }
        self.agent(access, name).await
    }

    /// Replace a custom agent's definition: a new version.
    pub async fn update_agent(&self, access: &TenantAccess, name: &str, definition: AgentDefinition) -> Result<AgentView, Error> {
        access.require(Permission::ManageAgents)?;
        if AgentKind::built_in(name).is_some() {
            return Err(Error::Forbidden(format!("the built-in agent '{name}' cannot be changed")));
        }
        let (_, json) = self.checked_definition(access, definition).await?;
        self.db
            .add_agent_version(access.tenant_id(), name, &json, access.principal().user_id(), crate::identity::now_ms())
            .await?
            .ok_or_else(|| Error::NotFound(format!("agent '{name}'")))?;
        self.agent(access, name).await
    }

    pub async fn delete_agent(&self, access: &TenantAccess, name: &str) -> Result<(), Error> {
        access.require(Permission::ManageAgents)?;
        if AgentKind::built_in(name).is_some() {
            return Err(Error::Forbidden(format!("the built-in agent '{name}' cannot be deleted")));
        }
        if self.db.delete_agent(access.tenant_id(), name).await? { Ok(()) } else { Err(Error::NotFound(format!("agent '{name}'"))) }
    }

    pub async fn agent_versions(&self, access: &TenantAccess, name: &str) -> Result<Vec<AgentVersionView>, Error> {
        let rows = self.db.agent_versions(access.tenant_id(), name).await?;
        if rows.is_empty() {
            return Err(Error::NotFound(format!("agent '{name}'")));
        }
        rows.into_iter()
            .map(|row| Ok(AgentVersionView { version: row.version, definition: stored_definition(&row.definition)?, created_by: row.created_by, created_at_ms: row.created_at_ms }))
            .collect()
    }
}
