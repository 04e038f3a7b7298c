//! The route → access table: the single source of truth for what every
//! route needs, and for the audit event a successful call of a mutating
//! route leaves (`audited`; services that audit themselves, such as
//! identity, need none here). The `authorize` middleware looks each matched route up here
//! and refuses routes that are missing (fail closed), so a new route cannot
//! go unchecked; the authorization-matrix test walks this table.
//!
//! Tenant-scoped routes take the tenant from the `{tenant}` path segment
//! (id or slug); `/v1` routes from the `X-Agentry-Tenant` header, the API
//! key's tenant, or the user's only membership.

use agentry_types::AuditAction;
use agentry_types::access::AGENT_PERMISSIONS;
use agentry_types::{Permission, PermissionSet};
use axum::http::Method;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials (the short allowlist).
    Public,
    /// Any authenticated principal.
    Authenticated,
    /// A signed-in user (a session's access token): API keys and the master
    /// key are refused (they are not a person who could link an identity).
    SignedIn,
    /// The master key or a platform administrator.
    PlatformAdmin,
    /// Like `PlatformAdmin`, or the scrape token `metrics.bearer_token`
    /// (a credential that reads metrics and nothing else).
    MetricsScrape,
    /// Membership of the request's tenant and, when given, this permission.
    Tenant(Option<Permission>),
    /// Like `Tenant`, but only for signed-in users: API keys are refused
    /// (a key cannot mint or rotate keys).
    TenantUser(Option<Permission>),
    /// Membership and at least one of these permissions (conversations:
    /// any permission to use an agent).
    TenantAnyOf(&'static [Permission]),
}

impl Access {
    /// Whether a tenant member holding `held` passes; the refusal's message otherwise.
    pub fn check_held(self, held: PermissionSet) -> Result<(), String> {
        match self {
            Access::Tenant(Some(p)) | Access::TenantUser(Some(p)) if !held.contains(p) => Err(format!("missing permission '{p}'")),
            Access::TenantAnyOf(any) if !any.iter().any(|p| held.contains(*p)) => {
                Err(format!("needs one of the permissions {}", any.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ")))
            }
            _ => Ok(()),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Method,
    /// The route template as registered with axum.
    pub path: &'static str,
    pub access: Access,
    /// The audit action recorded when the route succeeds (routes whose
    /// service audits itself, and reads, have none).
    pub audit: Option<AuditAction>,
}

const fn rule(method: Method, path: &'static str, access: Access) -> Rule {
    Rule { method, path, access, audit: None }
}

/// A rule whose successful calls leave the audit event `action`.
const fn audited(method: Method, path: &'static str, access: Access, action: AuditAction) -> Rule {
    Rule { method, path, access, audit: Some(action) }
}

use Access::{Authenticated, MetricsScrape, PlatformAdmin, Public, SignedIn, Tenant, TenantAnyOf, TenantUser};
use Permission as P;

pub const RULES: &[Rule] = &[
    rule(Method::GET, "/health", Public),
    rule(Method::GET, "/ready", Public),
    rule(Method::GET, "/openapi.json", Public),
    rule(Method::GET, "/docs", Public),
    rule(Method::GET, "/docs/init.js", Public),
    rule(Method::GET, "/docs/swagger-ui-bundle.js", Public),
    rule(Method::GET, "/docs/swagger-ui.css", Public),
    rule(Method::GET, "/.well-known/jwks.json", Public),
    rule(Method::GET, "/.well-known/agent-card.json", Public),
    rule(Method::POST, "/api/v1/auth/login", Public),
    rule(Method::POST, "/api/v1/auth/refresh", Public),
    rule(Method::POST, "/api/v1/auth/register", Public),
    rule(Method::POST, "/api/v1/auth/mfa/verify", Public),
    rule(Method::GET, "/api/v1/auth/oidc", Public),
    rule(Method::GET, "/api/v1/auth/oidc/{provider}/start", Public),
    rule(Method::GET, "/api/v1/auth/oidc/{provider}/callback", Public),
    rule(Method::POST, "/api/v1/auth/oidc/{provider}/link", SignedIn),
    rule(Method::POST, "/api/v1/auth/oidc/{provider}/link/callback", SignedIn),
    rule(Method::POST, "/api/v1/auth/mfa/totp", Authenticated),
    rule(Method::POST, "/api/v1/auth/mfa/totp/confirm", Authenticated),
    rule(Method::POST, "/api/v1/auth/mfa/disable", Authenticated),
    rule(Method::GET, "/metrics", MetricsScrape),
    rule(Method::POST, "/v1/chat/completions", Tenant(Some(P::UseModels))),
    rule(Method::POST, "/v1/embeddings", Tenant(Some(P::UseModels))),
    rule(Method::GET, "/v1/models", Tenant(Some(P::UseModels))),
    rule(Method::GET, "/v1/models/{id}", Tenant(Some(P::UseModels))),
    audited(Method::POST, "/v1/files", Tenant(Some(P::UseModels)), AuditAction::FileCreate),
    rule(Method::GET, "/v1/files", Tenant(Some(P::UseModels))),
    rule(Method::GET, "/v1/files/{id}", Tenant(Some(P::UseModels))),
    audited(Method::DELETE, "/v1/files/{id}", Tenant(Some(P::UseModels)), AuditAction::FileDelete),
    rule(Method::GET, "/v1/files/{id}/content", Tenant(Some(P::UseModels))),
    audited(Method::POST, "/v1/batches", Tenant(Some(P::UseModels)), AuditAction::BatchCreate),
    rule(Method::GET, "/v1/batches", Tenant(Some(P::UseModels))),
    rule(Method::GET, "/v1/batches/{id}", Tenant(Some(P::UseModels))),
    audited(Method::POST, "/v1/batches/{id}/cancel", Tenant(Some(P::UseModels)), AuditAction::BatchCancel),
    rule(Method::GET, "/api/v1/auth/me", Authenticated),
    rule(Method::POST, "/api/v1/auth/password", Authenticated),
    rule(Method::POST, "/api/v1/admin/users/{user_id}/disable", PlatformAdmin),
    rule(Method::POST, "/api/v1/admin/users/{user_id}/enable", PlatformAdmin),
    rule(Method::POST, "/api/v1/auth/logout", Authenticated),
    rule(Method::GET, "/api/v1/auth/sessions", Authenticated),
    rule(Method::DELETE, "/api/v1/auth/sessions", Authenticated),
    rule(Method::DELETE, "/api/v1/auth/sessions/{id}", Authenticated),
    rule(Method::GET, "/api/v1/tenants", Authenticated),
    rule(Method::POST, "/api/v1/tenants", PlatformAdmin),
    rule(Method::POST, "/api/v1/admin/signing-keys/rotate", PlatformAdmin),
    rule(Method::GET, "/api/v1/admin/audit", PlatformAdmin),
    rule(Method::GET, "/api/v1/admin/audit/verify", PlatformAdmin),
    rule(Method::GET, "/api/v1/tenants/{tenant}", Tenant(None)),
    rule(Method::PATCH, "/api/v1/tenants/{tenant}", Tenant(Some(P::ManageTenant))),
    rule(Method::GET, "/api/v1/tenants/{tenant}/users", Tenant(Some(P::ManageUsers))),
    rule(Method::POST, "/api/v1/tenants/{tenant}/users", Tenant(Some(P::ManageUsers))),
    rule(Method::PATCH, "/api/v1/tenants/{tenant}/users/{user_id}", Tenant(Some(P::ManageUsers))),
    rule(Method::DELETE, "/api/v1/tenants/{tenant}/users/{user_id}", Tenant(Some(P::ManageUsers))),
    // A person's own export needs only a session (checked by the service); anyone else's, manage_users.
    rule(Method::GET, "/api/v1/tenants/{tenant}/users/{user_id}/data-export", Tenant(None)),
    rule(Method::POST, "/api/v1/tenants/{tenant}/users/{user_id}/erase", Tenant(Some(P::ManageUsers))),
    rule(Method::GET, "/api/v1/tenants/{tenant}/retention", Tenant(Some(P::ManageTenant))),
    rule(Method::PUT, "/api/v1/tenants/{tenant}/retention", Tenant(Some(P::ManageTenant))),
    rule(Method::POST, "/api/v1/tenants/{tenant}/retention/run", Tenant(Some(P::ManageTenant))),
    rule(Method::GET, "/api/v1/tenants/{tenant}/compliance/report", Tenant(Some(P::ManageTenant))),
    // Members join by invitation (POST …/users invites); the invited person accepts.
    rule(Method::GET, "/api/v1/tenants/{tenant}/invitations", Tenant(Some(P::ManageUsers))),
    rule(Method::DELETE, "/api/v1/tenants/{tenant}/invitations/{id}", Tenant(Some(P::ManageUsers))),
    rule(Method::POST, "/api/v1/auth/invitations/accept", Public),
    rule(Method::POST, "/api/v1/invitations/accept", Authenticated),
    rule(Method::POST, "/api/v1/auth/verify-email", Public),
    rule(Method::POST, "/api/v1/auth/verify-email/resend", Authenticated),
    rule(Method::POST, "/api/v1/admin/users/{user_id}/verify-email", PlatformAdmin),
    rule(Method::GET, "/api/v1/tenants/{tenant}/roles", Tenant(None)),
    rule(Method::PUT, "/api/v1/tenants/{tenant}/roles/{name}", Tenant(Some(P::ManageRoles))),
    rule(Method::DELETE, "/api/v1/tenants/{tenant}/roles/{name}", Tenant(Some(P::ManageRoles))),
    // Who is in which group is personnel information: reading groups needs manage_users too.
    rule(Method::GET, "/api/v1/tenants/{tenant}/groups", Tenant(Some(P::ManageUsers))),
    rule(Method::POST, "/api/v1/tenants/{tenant}/groups", Tenant(Some(P::ManageUsers))),
    rule(Method::GET, "/api/v1/tenants/{tenant}/groups/{group_id}", Tenant(Some(P::ManageUsers))),
    rule(Method::PATCH, "/api/v1/tenants/{tenant}/groups/{group_id}", Tenant(Some(P::ManageUsers))),
    rule(Method::DELETE, "/api/v1/tenants/{tenant}/groups/{group_id}", Tenant(Some(P::ManageUsers))),
    rule(Method::PUT, "/api/v1/tenants/{tenant}/groups/{group_id}/members/{user_id}", Tenant(Some(P::ManageUsers))),
    rule(Method::DELETE, "/api/v1/tenants/{tenant}/groups/{group_id}/members/{user_id}", Tenant(Some(P::ManageUsers))),
    // Own keys need only membership; other members' keys need manage_api_keys (checked by the service).
    rule(Method::GET, "/api/v1/tenants/{tenant}/api-keys", Tenant(None)),
    rule(Method::POST, "/api/v1/tenants/{tenant}/api-keys", TenantUser(None)),
    rule(Method::DELETE, "/api/v1/tenants/{tenant}/api-keys/{id}", Tenant(None)),
    rule(Method::POST, "/api/v1/tenants/{tenant}/api-keys/{id}/rotate", TenantUser(None)),
    rule(Method::GET, "/api/v1/tenants/{tenant}/audit", Tenant(Some(P::ViewAudit))),
    rule(Method::GET, "/api/v1/tenants/{tenant}/audit/export", Tenant(Some(P::ExportData))),
    rule(Method::GET, "/api/v1/tenants/{tenant}/audit/verify", Tenant(Some(P::ViewAudit))),
    rule(Method::GET, "/api/v1/costs/stats", Tenant(Some(P::ViewMetrics))),
    // Own usage needs only membership; another user's needs view_metrics (checked by the service).
    rule(Method::GET, "/api/v1/costs/usage/{user}", Tenant(None)),
    rule(Method::GET, "/api/v1/costs/forecast", Tenant(Some(P::ViewMetrics))),
    audited(Method::POST, "/api/v1/costs/budget", Tenant(Some(P::ManageBilling)), AuditAction::BudgetPut),
    audited(Method::POST, "/api/v1/costs/budgets", Tenant(Some(P::ManageBilling)), AuditAction::BudgetPut),
    rule(Method::GET, "/api/v1/costs/budgets", Tenant(Some(P::ViewMetrics))),
    audited(Method::DELETE, "/api/v1/costs/budgets/{id}", Tenant(Some(P::ManageBilling)), AuditAction::BudgetDelete),
    rule(Method::GET, "/api/v1/costs/prices", Tenant(Some(P::ViewMetrics))),
    audited(Method::POST, "/api/v1/costs/prices", Tenant(Some(P::ManageBilling)), AuditAction::PricePut),
    rule(Method::GET, "/api/v1/costs/settings", Tenant(Some(P::ViewMetrics))),
    audited(Method::PUT, "/api/v1/costs/settings", Tenant(Some(P::ManageBilling)), AuditAction::UsageSettingsUpdate),
    rule(Method::GET, "/api/v1/usage/summary", Tenant(Some(P::ViewMetrics))),
    rule(Method::GET, "/api/v1/usage/records", Tenant(Some(P::ExportData))),
    rule(Method::GET, "/api/v1/usage/export", Tenant(Some(P::ExportData))),
    rule(Method::GET, "/api/v1/rate-limits/tiers", Authenticated),
    rule(Method::GET, "/api/v1/rate-limits/assignments", Tenant(Some(P::ViewMetrics))),
    // A tenant-scope assignment additionally needs a platform administrator (checked by the service).
    audited(Method::PUT, "/api/v1/rate-limits/assignments", Tenant(Some(P::ManageBilling)), AuditAction::TierAssign),
    rule(Method::GET, "/api/v1/billing/invoices", Tenant(Some(P::ViewMetrics))),
    audited(Method::POST, "/api/v1/billing/invoices", Tenant(Some(P::ManageBilling)), AuditAction::InvoiceCreate),
    rule(Method::GET, "/api/v1/billing/invoices/{id}", Tenant(Some(P::ViewMetrics))),
    audited(Method::POST, "/api/v1/billing/invoices/{id}/pay", Tenant(Some(P::ManageBilling)), AuditAction::InvoicePay),
    rule(Method::GET, "/api/v1/collections", Tenant(Some(P::ReadDocuments))),
    audited(Method::POST, "/api/v1/collections", Tenant(Some(P::UploadDocuments)), AuditAction::CollectionCreate),
    rule(Method::GET, "/api/v1/collections/{id}", Tenant(Some(P::ReadDocuments))),
    audited(Method::DELETE, "/api/v1/collections/{id}", Tenant(Some(P::DeleteDocuments)), AuditAction::CollectionDelete),
    audited(Method::PATCH, "/api/v1/collections/{id}", Tenant(Some(P::UploadDocuments)), AuditAction::CollectionUpdate),
    rule(Method::GET, "/api/v1/collections/{id}/quality", Tenant(Some(P::ManageIntegrations))),
    rule(Method::GET, "/api/v1/collections/{id}/documents", Tenant(Some(P::ReadDocuments))),
    audited(Method::POST, "/api/v1/collections/{id}/documents", Tenant(Some(P::UploadDocuments)), AuditAction::DocumentCreate),
    // Documents outside the reader's ACL are not found (checked by the service).
    rule(Method::GET, "/api/v1/documents/{id}", Tenant(Some(P::ReadDocuments))),
    audited(Method::DELETE, "/api/v1/documents/{id}", Tenant(Some(P::DeleteDocuments)), AuditAction::DocumentDelete),
    rule(Method::GET, "/api/v1/documents/{id}/versions", Tenant(Some(P::ReadDocuments))),
    rule(Method::GET, "/api/v1/documents/{id}/lineage", Tenant(Some(P::ReadDocuments))),
    rule(Method::GET, "/api/v1/documents/{id}/versions/{version}", Tenant(Some(P::ReadDocuments))),
    audited(Method::DELETE, "/api/v1/documents/{id}/versions/{version}", Tenant(Some(P::DeleteDocuments)), AuditAction::DocumentVersionDelete),
    audited(Method::POST, "/api/v1/documents/{id}/versions/{version}/restore", Tenant(Some(P::UploadDocuments)), AuditAction::DocumentVersionRestore),
    rule(Method::GET, "/api/v1/ingest-jobs/{id}", Tenant(Some(P::ReadDocuments))),
    // Jobs: the owner's (with their kind's permission) or, with manage_tenant, all; decided per job.
    rule(Method::GET, "/api/v1/jobs", Tenant(None)),
    rule(Method::GET, "/api/v1/jobs/{id}", Tenant(None)),
    audited(Method::DELETE, "/api/v1/jobs/{id}", Tenant(None), AuditAction::JobCancel),
    audited(Method::POST, "/api/v1/jobs/{id}/retry", Tenant(None), AuditAction::JobRetry),
    // Events: each subscriber receives only the events it may read (decided per event).
    rule(Method::GET, "/api/v1/events", Tenant(None)),
    // Webhooks: their creator's (manage_tenant sees all); decided per endpoint.
    rule(Method::GET, "/api/v1/webhooks", Tenant(Some(P::ManageIntegrations))),
    audited(Method::POST, "/api/v1/webhooks", Tenant(Some(P::ManageIntegrations)), AuditAction::WebhookCreate),
    rule(Method::GET, "/api/v1/webhooks/{id}", Tenant(Some(P::ManageIntegrations))),
    audited(Method::PATCH, "/api/v1/webhooks/{id}", Tenant(Some(P::ManageIntegrations)), AuditAction::WebhookUpdate),
    audited(Method::DELETE, "/api/v1/webhooks/{id}", Tenant(Some(P::ManageIntegrations)), AuditAction::WebhookDelete),
    audited(Method::POST, "/api/v1/webhooks/{id}/rotate-secret", Tenant(Some(P::ManageIntegrations)), AuditAction::WebhookRotateSecret),
    audited(Method::POST, "/api/v1/webhooks/{id}/test", Tenant(Some(P::ManageIntegrations)), AuditAction::WebhookTest),
    rule(Method::GET, "/api/v1/webhooks/{id}/deliveries", Tenant(Some(P::ManageIntegrations))),
    audited(Method::POST, "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", Tenant(Some(P::ManageIntegrations)), AuditAction::WebhookRedeliver),
    audited(Method::POST, "/api/v1/batches", Tenant(None), AuditAction::BulkCreate),
    rule(Method::GET, "/api/v1/batches", Tenant(None)),
    rule(Method::GET, "/api/v1/batches/{id}", Tenant(None)),
    rule(Method::GET, "/api/v1/batches/{id}/items", Tenant(None)),
    audited(Method::POST, "/api/v1/batches/{id}/cancel", Tenant(None), AuditAction::BulkCancel),
    rule(Method::GET, "/api/v1/schedules", Tenant(Some(P::ManageIntegrations))),
    audited(Method::POST, "/api/v1/schedules", Tenant(Some(P::ManageIntegrations)), AuditAction::ScheduleCreate),
    rule(Method::GET, "/api/v1/schedules/{id}", Tenant(Some(P::ManageIntegrations))),
    audited(Method::PATCH, "/api/v1/schedules/{id}", Tenant(Some(P::ManageIntegrations)), AuditAction::ScheduleUpdate),
    audited(Method::DELETE, "/api/v1/schedules/{id}", Tenant(Some(P::ManageIntegrations)), AuditAction::ScheduleDelete),
    rule(Method::GET, "/api/v1/schedules/{id}/runs", Tenant(Some(P::ManageIntegrations))),
    audited(Method::POST, "/api/v1/schedules/{id}/trigger", Tenant(Some(P::ManageIntegrations)), AuditAction::ScheduleTrigger),
    rule(Method::POST, "/api/v1/search", Tenant(Some(P::ReadDocuments))),
    rule(Method::POST, "/api/v1/answer-cache/lookup", Tenant(Some(P::ManageAgents))),
    audited(Method::POST, "/api/v1/answer-cache", Tenant(Some(P::ManageAgents)), AuditAction::AnswerCacheStore),
    // Using an agent needs its kind's permission (checked by the service); threads and runs are the owner's
    // own and need some agent permission (a key scoped to use_models reads none).
    rule(Method::GET, "/api/v1/agents", Tenant(None)),
    audited(Method::POST, "/api/v1/agents", Tenant(Some(P::ManageAgents)), AuditAction::AgentCreate),
    rule(Method::GET, "/api/v1/agents/{name}", Tenant(None)),
    audited(Method::PUT, "/api/v1/agents/{name}", Tenant(Some(P::ManageAgents)), AuditAction::AgentUpdate),
    audited(Method::DELETE, "/api/v1/agents/{name}", Tenant(Some(P::ManageAgents)), AuditAction::AgentDelete),
    rule(Method::GET, "/api/v1/agents/{name}/versions", Tenant(None)),
    rule(Method::GET, "/api/v1/threads", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::POST, "/api/v1/threads", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/threads/{id}", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::PATCH, "/api/v1/threads/{id}", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::DELETE, "/api/v1/threads/{id}", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/threads/{id}/messages", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/threads/{id}/runs", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::POST, "/api/v1/threads/{id}/runs", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/runs", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::POST, "/api/v1/runs", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/runs/{id}", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::POST, "/api/v1/runs/{id}/cancel", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/runs/{id}/events", TenantAnyOf(AGENT_PERMISSIONS)),
    rule(Method::GET, "/api/v1/mcp-servers", Tenant(Some(P::ManageAgents))),
    audited(Method::POST, "/api/v1/mcp-servers", Tenant(Some(P::ManageAgents)), AuditAction::McpServerCreate),
    audited(Method::DELETE, "/api/v1/mcp-servers/{name}", Tenant(Some(P::ManageAgents)), AuditAction::McpServerDelete),
    rule(Method::GET, "/api/v1/mcp-servers/{name}/tools", Tenant(Some(P::ManageAgents))),
    // A2A tasks are the caller's agent runs (agent permissions checked by the service).
    rule(Method::POST, "/a2a", Tenant(None)),
    // MCP lists and runs only what the caller may use (checked per tool).
    rule(Method::POST, "/mcp", Tenant(None)),
    rule(Method::GET, "/mcp", Tenant(None)),
    rule(Method::DELETE, "/mcp", Tenant(None)),
    // Each GraphQL field applies the rule of the REST route it mirrors (and core's object checks).
    rule(Method::GET, "/graphql", Tenant(None)),
    rule(Method::POST, "/graphql", Tenant(None)),
    audited(Method::POST, "/api/v1/admin/prices", PlatformAdmin, AuditAction::PlatformPricePut),
    audited(Method::PUT, "/api/v1/admin/rate-limits/tiers/{name}", PlatformAdmin, AuditAction::TierPut),
];

/// The rule for a matched route, if the table has one.
pub fn rule_for(method: &Method, path: &str) -> Option<&'static Rule> {
    // HEAD is served by GET routes.
    let method = if method == Method::HEAD { &Method::GET } else { method };
    RULES.iter().find(|r| r.method == method && r.path == path)
}
