//! The root of the GraphQL schema and the one check every field makes:
//! [`Caller::reach`] looks up the REST route the field mirrors in the route
//! table and applies its rule to the caller's permissions, exactly as the
//! `authorize` middleware would have for a REST call; the core function
//! that route's handler calls does the rest (owners, ACLs, tenants).

use std::collections::HashMap;
use std::sync::Mutex;

use agentry_core::identity::{PrincipalKind, RequestMeta};
use agentry_core::page::PageRequest;
use agentry_core::usage::analytics::UsageQuery;
use agentry_core::{Principal, TenantAccess};
use async_graphql::{Context, ID, Object};
use axum::http::Method;

use super::types::{Agent, Collection, Document, LOOKUP, Member, Paged, Period, Run, Tenant, Thread, UsageSummary, page_cost};
use crate::access::{Access, rule_for};
use crate::error::ApiError;
use crate::state::AppState;

/// The REST routes GraphQL fields mirror (each field's check is its route's rule).
pub mod routes {
    pub const TENANT: &str = "/api/v1/tenants/{tenant}";
    pub const MEMBERS: &str = "/api/v1/tenants/{tenant}/users";
    pub const AGENTS: &str = "/api/v1/agents";
    pub const AGENT: &str = "/api/v1/agents/{name}";
    pub const AGENT_VERSIONS: &str = "/api/v1/agents/{name}/versions";
    pub const THREADS: &str = "/api/v1/threads";
    pub const THREAD: &str = "/api/v1/threads/{id}";
    pub const THREAD_MESSAGES: &str = "/api/v1/threads/{id}/messages";
    pub const THREAD_RUNS: &str = "/api/v1/threads/{id}/runs";
    pub const RUNS: &str = "/api/v1/runs";
    pub const RUN: &str = "/api/v1/runs/{id}";
    pub const COLLECTIONS: &str = "/api/v1/collections";
    pub const COLLECTION: &str = "/api/v1/collections/{id}";
    pub const COLLECTION_DOCUMENTS: &str = "/api/v1/collections/{id}/documents";
    pub const DOCUMENT: &str = "/api/v1/documents/{id}";
    pub const DOCUMENT_VERSIONS: &str = "/api/v1/documents/{id}/versions";
    pub const USAGE_SUMMARY: &str = "/api/v1/usage/summary";

    /// Every mirrored route (a test checks each is a tenant `GET` route of the table).
    pub const ALL: &[&str] = &[
        TENANT,
        MEMBERS,
        AGENTS,
        AGENT,
        AGENT_VERSIONS,
        THREADS,
        THREAD,
        THREAD_MESSAGES,
        THREAD_RUNS,
        RUNS,
        RUN,
        COLLECTIONS,
        COLLECTION,
        COLLECTION_DOCUMENTS,
        DOCUMENT,
        DOCUMENT_VERSIONS,
        USAGE_SUMMARY,
    ];
}

/// Who asks, as the `authorize` middleware established it.
pub struct Caller {
    pub state: AppState,
    pub access: TenantAccess,
    pub principal: Principal,
    pub meta: RequestMeta,
    /// Each mirrored route's decision for this request (the refusal, if
    /// any): decided and audited once, however often a query repeats a field.
    decided: Mutex<HashMap<&'static str, Option<String>>>,
}

impl Caller {
    pub fn new(state: AppState, access: TenantAccess, principal: Principal, meta: RequestMeta) -> Self {
        Self { state, access, principal, meta, decided: Mutex::default() }
    }

    /// The caller from a resolver's context.
    pub fn of<'a>(ctx: &Context<'a>) -> Result<&'a Caller, ApiError> {
        ctx.data_opt::<Caller>().ok_or_else(|| ApiError::internal("a GraphQL request without its caller"))
    }

    /// The tenant access to read what `GET route` reads, if the route's
    /// rule lets this caller through; a refusal is audited like REST's
    /// (once per route and request).
    pub async fn reach(&self, route: &'static str) -> Result<&TenantAccess, ApiError> {
        let (refusal, first) = {
            let mut decided = self.decided.lock().map_err(|_| ApiError::internal("a GraphQL resolver panicked while deciding access"))?;
            match decided.get(route) {
                Some(refusal) => (refusal.clone(), false),
                None => {
                    let refusal = self.decide(route)?;
                    decided.insert(route, refusal.clone());
                    (refusal, true)
                }
            }
        };
        match refusal {
            None => Ok(&self.access),
            Some(refusal) => {
                if first {
                    self.state.identity.record_denied(Some(&self.access), &self.principal, &format!("graphql GET {route}"), &self.meta).await?;
                }
                Err(ApiError::forbidden(refusal))
            }
        }
    }

    /// The refusal the rule of `GET route` gives this caller, if any.
    fn decide(&self, route: &'static str) -> Result<Option<String>, ApiError> {
        let rule = rule_for(&Method::GET, route).ok_or_else(|| ApiError::internal(format!("GraphQL mirrors GET {route}, which has no access rule")))?;
        match rule.access {
            Access::TenantUser(_) if self.principal.kind() == PrincipalKind::ApiKey => Ok(Some("this field needs a signed-in user, not an API key".to_owned())),
            Access::Tenant(_) | Access::TenantUser(_) | Access::TenantAnyOf(_) => Ok(rule.access.check_held(self.access.permissions()).err()),
            Access::Public | Access::Authenticated | Access::SignedIn | Access::PlatformAdmin | Access::MetricsScrape => {
                Err(ApiError::internal(format!("GraphQL mirrors GET {route}, which is not a tenant route")))
            }
        }
    }
}

/// A page request from GraphQL arguments.
pub fn page(limit: Option<i32>, after: Option<String>) -> Result<PageRequest, ApiError> {
    Ok(PageRequest::parse(limit.map(i64::from), after.as_deref())?)
}

/// The query root. Every field is nullable: a refused or missing object is
/// `null` with an error, and the other fields still answer.
pub struct QueryRoot;

#[Object]
impl QueryRoot {
    /// The tenant the request is about (the `X-Agentry-Tenant` header, or the caller's only one), with the caller's role in it.
    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Option<Tenant>, ApiError> {
        Ok(Some(Tenant(Caller::of(ctx)?.reach(routes::TENANT).await?.clone())))
    }

    /// Agents the caller can see: built-in first, then custom, each by name.
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn agents(&self, ctx: &Context<'_>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Agent>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.agents.agents(caller.reach(routes::AGENTS).await?, &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Agent)))
    }

    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn agent(&self, ctx: &Context<'_>, name: String) -> Result<Option<Agent>, ApiError> {
        let caller = Caller::of(ctx)?;
        Ok(Some(Agent(caller.state.agents.agent(caller.reach(routes::AGENT).await?, &name).await?)))
    }

    /// The caller's threads, newest activity first; `q` searches titles.
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn threads(&self, ctx: &Context<'_>, q: Option<String>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Thread>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.agents.threads(caller.reach(routes::THREADS).await?, q.as_deref(), &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Thread)))
    }

    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn thread(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Thread>, ApiError> {
        Thread::find(ctx, &id).await.map(Some)
    }

    /// The caller's runs, newest first.
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn runs(&self, ctx: &Context<'_>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Run>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.agents.runs(caller.reach(routes::RUNS).await?, None, &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Run::listed)))
    }

    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn run(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Run>, ApiError> {
        let caller = Caller::of(ctx)?;
        Ok(Some(Run::whole(caller.state.agents.run(caller.reach(routes::RUN).await?, &id).await?)))
    }

    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn collections(&self, ctx: &Context<'_>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Collection>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.knowledge.collections(caller.reach(routes::COLLECTIONS).await?, &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Collection)))
    }

    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn collection(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Collection>, ApiError> {
        Collection::find(ctx, &id).await.map(Some)
    }

    /// A document the caller may read (outside its access list it is not found).
    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn document(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Document>, ApiError> {
        let caller = Caller::of(ctx)?;
        Ok(Some(Document(caller.state.knowledge.document(caller.reach(routes::DOCUMENT).await?, &id).await?)))
    }

    /// The tenant's members (needs `manage_users`).
    #[graphql(complexity = "page_cost(limit, child_complexity)")]
    async fn members(&self, ctx: &Context<'_>, limit: Option<i32>, after: Option<String>) -> Result<Option<Paged<Member>>, ApiError> {
        let caller = Caller::of(ctx)?;
        let page = caller.state.identity.members(caller.reach(routes::MEMBERS).await?, &page(limit, after)?).await?;
        Ok(Some(Paged::of(page, Member)))
    }

    /// Usage totals over a window (dates in UTC, inclusive; default the last 30 days), grouped by
    /// `day`, `model` (default), `provider`, `user`, `api_key` or `agent` (needs `view_metrics`).
    #[allow(clippy::too_many_arguments, reason = "one argument per filter of the REST route's query")]
    #[graphql(complexity = "LOOKUP + child_complexity")]
    async fn usage(
        &self,
        ctx: &Context<'_>,
        from: Option<chrono::NaiveDate>,
        to: Option<chrono::NaiveDate>,
        period: Option<Period>,
        group_by: Option<String>,
        user_id: Option<String>,
        api_key_id: Option<String>,
    ) -> Result<Option<UsageSummary>, ApiError> {
        let caller = Caller::of(ctx)?;
        let query = UsageQuery { from, to, period: period.map(Into::into), group_by, user_id, api_key_id };
        let access = caller.reach(routes::USAGE_SUMMARY).await?;
        Ok(Some(UsageSummary(caller.state.gateway.accounting().usage_summary(access, &query).await?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mirrored_route_is_a_tenant_read_of_the_route_table() {
        for route in routes::ALL {
            let rule = rule_for(&Method::GET, route).unwrap_or_else(|| panic!("GET {route} is not in the route table"));
            assert!(matches!(rule.access, Access::Tenant(_) | Access::TenantAnyOf(_) | Access::TenantUser(_)), "GET {route} is not a tenant route");
        }
    }
}
