//! The description of every routed operation: what it does, what it reads
//! and what it answers. One row per rule of [`crate::access::RULES`] (the
//! `api_doc` test holds the two lists to each other).

use agentry_types::{JobKind, JobStatus};
use axum::http::Method;

use agentry_core::agents::catalog::{AgentVersionView, AgentView};
use agentry_core::agents::events::RunEvent;
use agentry_core::agents::mcp::{McpServerInput, McpServerView};
use agentry_core::agents::{AgentDefinition, MessageView, RunView, ThreadInput, ThreadPatch, ThreadView};
use agentry_core::audit::{AuditPage, Verification};
use agentry_core::batches::{BatchObject, FileObject, ListPage, NewBatch};
use agentry_core::bulk::{BulkItemView, BulkView, NewBulk};
use agentry_core::events::EventView;
use agentry_core::identity::{
    AcceptedInvitation, ApiKeyInfo, CreatedApiKey, CreatedInvitation, Group, GroupInfo, InvitationInfo, LoginOutcome, LoginTokens, Me, Membership, RoleInfo, SessionInfo, Tenant,
    TotpEnrolment, VisibleTenant,
};
use agentry_core::jobs::JobView;
use agentry_core::knowledge::{
    Accepted, AnswerLookup, AnswerQuestion, AnswerToStore, Collection, CollectionChange, CollectionInput, CollectionQuality, DocumentVersion, DocumentView, IngestJob, JsonUpload,
    SearchRequest, SearchResponse, VersionLineage,
};
use agentry_core::privacy::{ComplianceReport, Retention, RetentionView};
use agentry_core::schedules::{CreateSchedule, ScheduleRunView, ScheduleView, UpdateSchedule};
use agentry_core::usage::TenantUsageSettings;
use agentry_core::usage::analytics::{Forecast, UsageRecord, UsageSummary};
use agentry_core::usage::billing::Invoice;
use agentry_core::usage::manage::{BudgetInput, BudgetView, PriceView, TierAssignment, TierAssignmentInput};
use agentry_core::usage::policy::Tier;
use agentry_core::webhooks::{CreateWebhook, DeliveryView, RotateSecret, UpdateWebhook, WebhookView};

use super::ParamKind::{Count, Date, JsonObject, Millis, OneOf, Seq, Text};
use super::{AFTER, Body, LIMIT, Operation, PAGE_QUERY, Param, events, json, list, page, param, upload};
use crate::graphql::GraphQlRequest;
use crate::openai::chat::ChatCompletionRequest;
use crate::openai::embeddings::EmbeddingsRequest;
use crate::routes::{agents, api_keys, auth, costs, invitations, oidc, tenants};

fn get(path: &'static str, summary: &'static str) -> Operation {
    Operation::new(Method::GET, path, summary)
}

fn post(path: &'static str, summary: &'static str) -> Operation {
    Operation::new(Method::POST, path, summary).body(Body::AnyJson)
}

fn put(path: &'static str, summary: &'static str) -> Operation {
    Operation::new(Method::PUT, path, summary).body(Body::AnyJson)
}

fn patch(path: &'static str, summary: &'static str) -> Operation {
    Operation::new(Method::PATCH, path, summary).body(Body::AnyJson)
}

fn delete(path: &'static str, summary: &'static str) -> Operation {
    Operation::new(Method::DELETE, path, summary).answers(204, None)
}

/// An operation that takes no body (a POST that only acts).
fn act(path: &'static str, summary: &'static str) -> Operation {
    Operation::new(Method::POST, path, summary)
}

const AUDIT_QUERY: &[Param] = &[
    param("action", Text, "Only events with this action."),
    param("actor_id", Text, "Only events by this actor."),
    param("outcome", OneOf(&["success", "failure", "denied"]), "Only events with this outcome."),
    param("from", Millis, "Unix milliseconds, inclusive."),
    param("to", Millis, "Unix milliseconds, exclusive."),
    param("after", Seq { max: i64::MAX }, "The `next_cursor` of the previous page (a sequence number): events after it."),
    param("limit", Count { max: 1000 }, "Page size (1-1000, default 100)."),
];

const AUDIT_EXPORT_QUERY: &[Param] = &[
    param("format", OneOf(&["jsonl", "csv"]), "`jsonl` (default) or `csv`."),
    param("action", Text, "Only this action."),
    param("limit", Count { max: 100_000 }, "At most this many events."),
];

const ANCHOR_QUERY: &[Param] = &[param("anchor", Text, "base64url of an earlier anchor's JSON.")];

/// OpenAI's list parameters: up to `limit` objects after the object `after`.
const OPENAI_LIST_QUERY: &[Param] =
    &[param("limit", Count { max: 100 }, "Objects per page, 1-100 (default 20)."), param("after", Text, "The `last_id` of the previous page; the first page without it.")];
const OPENAI_FILES_QUERY: &[Param] = &[
    param("limit", Count { max: 100 }, "Objects per page, 1-100 (default 20)."),
    param("after", Text, "The `last_id` of the previous page; the first page without it."),
    param("order", OneOf(&["desc"]), "Newest first (the only order)."),
    param("purpose", OneOf(&["batch", "batch_output"]), "Only files of this purpose."),
];
const JOBS_QUERY: &[Param] = &[param("kind", OneOf(JobKind::NAMES), "Only jobs of this kind."), param("status", OneOf(JobStatus::NAMES), "Only jobs in this state."), LIMIT, AFTER];

const THREADS_QUERY: &[Param] = &[param("q", Text, "Only threads whose title or messages contain this text."), LIMIT, AFTER];

const FROM: Param = param("from", Date, "First day (UTC), inclusive; default: the start of `period`, else of this month.");
const TO: Param = param("to", Date, "Last day (UTC), inclusive; default: today.");
const PERIOD: Param = param("period", OneOf(&["daily", "weekly", "monthly"]), "The current day, week or month, instead of `from` and `to`.");
const USER_ID: Param = param("user_id", Text, "Only this user's calls.");
const API_KEY_ID: Param = param("api_key_id", Text, "Only this API key's calls.");

const SUMMARY_QUERY: &[Param] = &[
    FROM,
    TO,
    PERIOD,
    param("group_by", OneOf(&["day", "model", "provider", "user", "api_key", "agent"]), "What rows are grouped by (default `model`)."),
    USER_ID,
    API_KEY_ID,
    param("format", OneOf(&["json", "csv"]), "`json` (default) or `csv`."),
];

const WINDOW_QUERY: &[Param] = &[FROM, TO, PERIOD, USER_ID, API_KEY_ID];

const RECORDS_QUERY: &[Param] = &[FROM, TO, PERIOD, USER_ID, API_KEY_ID, LIMIT, AFTER];

const OIDC_CALLBACK_QUERY: &[Param] = &[
    param("code", Text, "From the provider (with `state`)."),
    param("state", Text, "From the provider."),
    param("error", Text, "From the provider, instead of `code`, when it refused the sign-in."),
    param("error_description", Text, "From the provider, with `error`."),
];

const FORECAST_QUERY: &[Param] = &[param("period", OneOf(&["daily", "weekly", "monthly"]), "The period (default `monthly`).")];

const INVOICE_QUERY: &[Param] = &[param("format", OneOf(&["json", "csv", "html"]), "`json` (default), `csv` or `html`.")];

const EVENTS_QUERY: &[Param] = &[param("after", Seq { max: u32::MAX as i64 }, "Resume after this event number (the `Last-Event-ID` header wins).")];

const TENANT_EVENTS_QUERY: &[Param] = &[
    param("after", Seq { max: i64::MAX }, "Resume after this event's `seq` (the `Last-Event-ID` header wins)."),
    param("types", Text, "Only these event types, comma-separated."),
];

const GRAPHQL_QUERY: &[Param] = &[
    param("query", Text, "The query document (may be left out for a persisted query)."),
    param("operationName", Text, "Which operation of the document to run."),
    param("variables", JsonObject, "The variables, as a JSON object."),
    param("extensions", JsonObject, "As JSON, e.g. `{\"persistedQuery\":{\"version\":1,\"sha256Hash\":\"…\"}}`."),
];

/// One JSON-RPC 2.0 message: a request (with `id`), a notification or a response.
fn json_rpc_message() -> Body {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let message = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("jsonrpc", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["2.0"])))
        .property("method", ObjectBuilder::new().schema_type(Type::String))
        .property("id", ObjectBuilder::new().description(Some("A string or a number; absent in a notification.")))
        .property("params", ObjectBuilder::new().description(Some("An object or an array, as the method takes.")))
        .required("jsonrpc")
        .description(Some("A JSON-RPC 2.0 message; one per request (batches are not supported)."));
    Body::Json { name: "JsonRpcMessage".into(), schemas: vec![("JsonRpcMessage".into(), message.into())] }
}

fn graphql_response() -> Body {
    Body::Json { name: "GraphQlResponse".into(), schemas: vec![("GraphQlResponse".into(), crate::graphql::response_schema())] }
}

/// Every operation, in the route table's order.
pub fn operations() -> Vec<Operation> {
    vec![
        get("/health", "Liveness: the process answers"),
        get("/ready", "Readiness: the database, the coordination store and the models are reachable"),
        get("/openapi.json", "This document"),
        get("/docs", "The interactive API reference (this document, in a browser)").answers(200, Some(Body::Media("text/html"))),
        get("/docs/init.js", "The reference page's start-up script").answers(200, Some(Body::Media("text/javascript"))),
        get("/docs/swagger-ui-bundle.js", "Swagger UI, served from the binary").answers(200, Some(Body::Media("text/javascript"))),
        get("/docs/swagger-ui.css", "Swagger UI's styles").answers(200, Some(Body::Media("text/css"))),
        get("/.well-known/jwks.json", "The public keys access tokens are signed with"),
        get("/.well-known/agent-card.json", "The A2A agent card"),
        post("/api/v1/auth/login", "Sign in with an email and a password (may ask for a second factor)").body(json::<auth::LoginBody>()).answers(200, Some(json::<LoginOutcome>())),
        post("/api/v1/auth/refresh", "Trade a refresh token for new tokens (rotation, reuse detection)")
            .body(json::<auth::RefreshBody>())
            .answers(200, Some(json::<LoginTokens>())),
        post("/api/v1/auth/register", "Create an account (when self-registration is on)").body(json::<auth::RegisterBody>()).answers(201, Some(json::<auth::Registered>())),
        post("/api/v1/auth/mfa/verify", "Complete a sign-in with a TOTP or recovery code").body(json::<auth::FactorBody>()).answers(200, Some(json::<LoginTokens>())),
        get("/api/v1/auth/oidc", "The single sign-on providers").answers(200, Some(list::<oidc::Provider>())),
        get("/api/v1/auth/oidc/{provider}/start", "Start a single sign-on (redirects to the provider)").answers(303, None),
        get("/api/v1/auth/oidc/{provider}/callback", "Finish a single sign-on").query(OIDC_CALLBACK_QUERY).answers(200, Some(json::<LoginOutcome>())),
        act("/api/v1/auth/oidc/{provider}/link", "Start linking a single sign-on identity to the signed-in account").answers(200, Some(json::<oidc::Redirect>())),
        post("/api/v1/auth/oidc/{provider}/link/callback", "Finish linking a single sign-on identity")
            .body(json::<oidc::LinkCallback>())
            .answers(200, Some(json::<LoginOutcome>())),
        act("/api/v1/auth/mfa/totp", "Start TOTP enrolment (secret and otpauth URI)").answers(200, Some(json::<TotpEnrolment>())),
        post("/api/v1/auth/mfa/totp/confirm", "Confirm TOTP enrolment; answers recovery codes once")
            .body(json::<auth::ConfirmBody>())
            .answers(200, Some(json::<auth::TotpConfirmed>())),
        post("/api/v1/auth/mfa/disable", "Turn TOTP off (needs the password)").body(json::<auth::FactorBody>()).answers(204, None),
        get("/metrics", "Prometheus metrics").answers(200, Some(Body::Media("text/plain"))),
        post("/v1/chat/completions", "OpenAI-compatible chat completion (streams with `stream: true`)").body(json::<ChatCompletionRequest>()).upstream(),
        post("/v1/embeddings", "OpenAI-compatible embeddings").body(json::<EmbeddingsRequest>()).upstream(),
        get("/v1/models", "The models the caller may use"),
        get("/v1/models/{id}", "One model"),
        Operation::new(Method::POST, "/v1/files", "Upload a JSONL file of batch requests (OpenAI's files API; purpose `batch`)")
            .body(Body::FileForm(&[("purpose", &["batch"])]))
            .answers(200, Some(json::<FileObject>())),
        get("/v1/files", "The caller's files (the whole tenant's with manage_tenant), newest first, in OpenAI's list form")
            .answers(200, Some(json::<ListPage<FileObject>>()))
            .query(OPENAI_FILES_QUERY),
        get("/v1/files/{id}", "One file").answers(200, Some(json::<FileObject>())),
        delete("/v1/files/{id}", "Delete a file (not the input of a batch that has not ended)").answers(200, Some(Body::AnyJson)),
        get("/v1/files/{id}/content", "A file's bytes").answers(200, Some(Body::Media("application/jsonl"))),
        post("/v1/batches", "Create a batch over an uploaded file (OpenAI's batch API)").body(json::<NewBatch>()).answers(200, Some(json::<BatchObject>())),
        get("/v1/batches", "The caller's batches (the whole tenant's with manage_tenant), newest first")
            .answers(200, Some(json::<ListPage<BatchObject>>()))
            .query(OPENAI_LIST_QUERY),
        get("/v1/batches/{id}", "One batch: its status, request counts and files").answers(200, Some(json::<BatchObject>())),
        act("/v1/batches/{id}/cancel", "Cancel a batch: lines in flight finish, the rest never run").answers(200, Some(json::<BatchObject>())),
        get("/api/v1/auth/me", "Who is calling: the credential, its account and its tenants").answers(200, Some(json::<Me>())),
        post("/api/v1/auth/password", "Change the signed-in user's password").body(json::<auth::PasswordBody>()).answers(204, None),
        act("/api/v1/admin/users/{user_id}/disable", "Disable an account (revokes its sessions)").answers(204, None),
        act("/api/v1/admin/users/{user_id}/enable", "Enable an account").answers(204, None),
        act("/api/v1/auth/logout", "Sign out this session").answers(204, None),
        get("/api/v1/auth/sessions", "The signed-in user's sessions").answers(200, Some(list::<SessionInfo>())),
        delete("/api/v1/auth/sessions", "Sign out every session").answers(200, Some(json::<auth::SessionsRevoked>())),
        delete("/api/v1/auth/sessions/{id}", "Sign out one session"),
        get("/api/v1/tenants", "The tenants the caller may enter").answers(200, Some(list::<VisibleTenant>())),
        post("/api/v1/tenants", "Create a tenant (platform administrators)").body(json::<tenants::CreateTenant>()).answers(201, Some(json::<Tenant>())),
        act("/api/v1/admin/signing-keys/rotate", "Rotate the token signing key").answers(200, Some(json::<tenants::SigningKey>())),
        get("/api/v1/admin/audit", "Query the platform audit chain, oldest first").answers(200, Some(json::<AuditPage>())).query(AUDIT_QUERY),
        get("/api/v1/admin/audit/verify", "Verify the platform audit chain (optionally against an anchor)").answers(200, Some(json::<Verification>())).query(ANCHOR_QUERY),
        get("/api/v1/tenants/{tenant}", "The tenant, with the caller's role and permissions in it").answers(200, Some(json::<tenants::TenantAsSeen>())),
        patch("/api/v1/tenants/{tenant}", "Rename the tenant or change its MFA policy").body(json::<tenants::UpdateTenant>()).answers(204, None),
        get("/api/v1/tenants/{tenant}/users", "The tenant's members, in the order they joined").answers(200, Some(page::<Membership>())).query(PAGE_QUERY),
        post("/api/v1/tenants/{tenant}/users", "Invite a member").body(json::<tenants::AddMember>()).answers(201, Some(json::<CreatedInvitation>())),
        patch("/api/v1/tenants/{tenant}/users/{user_id}", "Change a member's role").body(json::<tenants::SetRole>()).answers(200, Some(json::<Membership>())),
        delete("/api/v1/tenants/{tenant}/users/{user_id}", "Remove a member"),
        get("/api/v1/tenants/{tenant}/users/{user_id}/data-export", "Everything the tenant holds about a person, as a zip archive (their own, or manage_users)")
            .answers(200, Some(Body::Media("application/zip"))),
        act("/api/v1/tenants/{tenant}/users/{user_id}/erase", "Erase a person's data from the tenant (queues an erasure job)").answers(202, Some(json::<JobView>())),
        get("/api/v1/tenants/{tenant}/retention", "How long the tenant keeps threads, runs, document versions, usage records and audit events")
            .answers(200, Some(json::<RetentionView>())),
        put("/api/v1/tenants/{tenant}/retention", "Replace the tenant's retention settings").body(json::<Retention>()).answers(200, Some(json::<RetentionView>())),
        act("/api/v1/tenants/{tenant}/retention/run", "Apply the retention settings now (queues a retention job)").answers(202, Some(json::<JobView>())),
        get("/api/v1/tenants/{tenant}/compliance/report", "MFA coverage, administrators, stale keys, audit chain, retention and the last backup")
            .answers(200, Some(json::<ComplianceReport>())),
        get("/api/v1/tenants/{tenant}/invitations", "The tenant's invitations").answers(200, Some(list::<InvitationInfo>())),
        delete("/api/v1/tenants/{tenant}/invitations/{id}", "Revoke an invitation"),
        post("/api/v1/auth/invitations/accept", "Accept an invitation with a new account")
            .body(json::<invitations::NewAccountBody>())
            .answers(201, Some(json::<AcceptedInvitation>())),
        post("/api/v1/invitations/accept", "Accept an invitation as the signed-in user").body(json::<invitations::TokenBody>()).answers(201, Some(json::<AcceptedInvitation>())),
        post("/api/v1/auth/verify-email", "Verify an address with the mailed token")
            .body(json::<invitations::TokenBody>())
            .answers(200, Some(json::<invitations::EmailVerified>())),
        act("/api/v1/auth/verify-email/resend", "Send the verification mail again").answers(202, None),
        act("/api/v1/admin/users/{user_id}/verify-email", "Mark an account's address verified").answers(204, None),
        get("/api/v1/tenants/{tenant}/roles", "Built-in and custom roles with their permissions").answers(200, Some(list::<RoleInfo>())),
        put("/api/v1/tenants/{tenant}/roles/{name}", "Create or change a custom role").body(json::<tenants::PutRole>()).answers(200, Some(json::<RoleInfo>())),
        delete("/api/v1/tenants/{tenant}/roles/{name}", "Delete a custom role"),
        get("/api/v1/tenants/{tenant}/groups", "The tenant's groups").answers(200, Some(list::<Group>())),
        post("/api/v1/tenants/{tenant}/groups", "Create a group").body(json::<tenants::CreateGroup>()).answers(201, Some(json::<Group>())),
        get("/api/v1/tenants/{tenant}/groups/{group_id}", "A group with its members").answers(200, Some(json::<GroupInfo>())),
        patch("/api/v1/tenants/{tenant}/groups/{group_id}", "Rename or describe a group").body(json::<tenants::UpdateGroup>()).answers(200, Some(json::<GroupInfo>())),
        delete("/api/v1/tenants/{tenant}/groups/{group_id}", "Delete a group"),
        Operation::new(Method::PUT, "/api/v1/tenants/{tenant}/groups/{group_id}/members/{user_id}", "Add a member to a group").answers(204, None),
        delete("/api/v1/tenants/{tenant}/groups/{group_id}/members/{user_id}", "Remove a member from a group"),
        get("/api/v1/tenants/{tenant}/api-keys", "API keys, newest first: the caller's own, or all with manage_api_keys")
            .answers(200, Some(page::<ApiKeyInfo>()))
            .query(PAGE_QUERY),
        post("/api/v1/tenants/{tenant}/api-keys", "Create an API key (its secret is shown once)").body(json::<api_keys::CreateKey>()).answers(201, Some(json::<CreatedApiKey>())),
        delete("/api/v1/tenants/{tenant}/api-keys/{id}", "Revoke an API key"),
        act("/api/v1/tenants/{tenant}/api-keys/{id}/rotate", "Replace an own API key's secret (shown once)").answers(201, Some(json::<CreatedApiKey>())),
        get("/api/v1/tenants/{tenant}/audit", "Query the tenant's audit log, oldest first").answers(200, Some(json::<AuditPage>())).query(AUDIT_QUERY),
        get("/api/v1/tenants/{tenant}/audit/export", "Export the tenant's audit log as JSON lines or CSV")
            .query(AUDIT_EXPORT_QUERY)
            .answers(200, Some(Body::Media("application/x-ndjson")))
            .also(200, Some(Body::Media("text/csv"))),
        get("/api/v1/tenants/{tenant}/audit/verify", "Verify the tenant's audit chain (optionally against an anchor)")
            .answers(200, Some(json::<Verification>()))
            .query(ANCHOR_QUERY),
        get("/api/v1/costs/stats", "Cost and usage totals, by model and by day").query(WINDOW_QUERY).answers(200, Some(json::<costs::CostStats>())),
        get("/api/v1/costs/usage/{user}", "One user's usage (own, or any with view_metrics)")
            .answers(200, Some(json::<UsageSummary>()))
            .also(200, Some(Body::Media("text/csv")))
            .query(SUMMARY_QUERY),
        get("/api/v1/costs/forecast", "Spending so far in the current period and where it is heading").answers(200, Some(json::<Forecast>())).query(FORECAST_QUERY),
        post("/api/v1/costs/budget", "Set a budget (deprecated: use POST /api/v1/costs/budgets)").body(json::<BudgetInput>()).answers(200, Some(json::<BudgetView>())),
        post("/api/v1/costs/budgets", "Set a budget: create it, or change the one of its scope and period").body(json::<BudgetInput>()).answers(200, Some(json::<BudgetView>())),
        get("/api/v1/costs/budgets", "Budgets with what they have spent").answers(200, Some(list::<BudgetView>())),
        delete("/api/v1/costs/budgets/{id}", "Delete a budget"),
        get("/api/v1/costs/prices", "Model prices: defaults and the price history").answers(200, Some(json::<costs::Prices>())),
        post("/api/v1/costs/prices", "Override a model's price for the tenant").body(json::<costs::PriceBody>()).answers(201, Some(json::<PriceView>())),
        get("/api/v1/costs/settings", "The tenant's cost-optimizer and response-cache switches").answers(200, Some(json::<TenantUsageSettings>())),
        put("/api/v1/costs/settings", "Change the cost-optimizer and response-cache switches")
            .body(json::<TenantUsageSettings>())
            .answers(200, Some(json::<TenantUsageSettings>())),
        get("/api/v1/usage/summary", "Usage rollups").answers(200, Some(json::<UsageSummary>())).also(200, Some(Body::Media("text/csv"))).query(SUMMARY_QUERY),
        get("/api/v1/usage/records", "Usage records (one per model call), oldest first").answers(200, Some(page::<UsageRecord>())).query(RECORDS_QUERY),
        get("/api/v1/usage/export", "Usage records as CSV").query(WINDOW_QUERY).answers(200, Some(Body::Media("text/csv"))),
        get("/api/v1/rate-limits/tiers", "Rate-limit tiers").answers(200, Some(list::<Tier>())),
        get("/api/v1/rate-limits/assignments", "The tenant's tier assignments").answers(200, Some(list::<TierAssignment>())),
        put("/api/v1/rate-limits/assignments", "Assign a tier to the tenant, a user or a key").body(json::<TierAssignmentInput>()).answers(200, Some(list::<TierAssignment>())),
        get("/api/v1/billing/invoices", "Invoices").answers(200, Some(list::<Invoice>())),
        post("/api/v1/billing/invoices", "Generate the invoice of a month").body(json::<costs::InvoiceBody>()).answers(201, Some(json::<Invoice>())),
        get("/api/v1/billing/invoices/{id}", "One invoice (JSON, CSV or HTML)")
            .answers(200, Some(json::<Invoice>()))
            .also(200, Some(Body::Media("text/csv")))
            .also(200, Some(Body::Media("text/html")))
            .query(INVOICE_QUERY),
        act("/api/v1/billing/invoices/{id}/pay", "Pay an invoice through the configured provider").answers(200, Some(json::<Invoice>())),
        get("/api/v1/collections", "Knowledge collections, oldest first").answers(200, Some(page::<Collection>())).query(PAGE_QUERY),
        post("/api/v1/collections", "Create a collection").body(json::<CollectionInput>()).answers(201, Some(json::<Collection>())),
        get("/api/v1/collections/{id}", "One collection").answers(200, Some(json::<Collection>())),
        patch("/api/v1/collections/{id}", "Change a collection's description or quality checks").body(json::<CollectionChange>()).answers(200, Some(json::<Collection>())),
        delete("/api/v1/collections/{id}", "Delete a collection and its documents"),
        get("/api/v1/collections/{id}/quality", "How a collection's documents and recent connector runs fare against its quality checks")
            .answers(200, Some(json::<CollectionQuality>())),
        get("/api/v1/collections/{id}/documents", "The documents of a collection the caller may read, oldest first").answers(200, Some(page::<DocumentView>())).query(PAGE_QUERY),
        post("/api/v1/collections/{id}/documents", "Upload a document or a new version (text, base64, URL or multipart)")
            .upstream()
            .body(upload::<JsonUpload>())
            .answers(202, Some(json::<Accepted>()))
            .also(200, Some(json::<Accepted>())),
        get("/api/v1/documents/{id}", "One document").answers(200, Some(json::<DocumentView>())),
        delete("/api/v1/documents/{id}", "Delete a document"),
        get("/api/v1/documents/{id}/versions", "A document's versions").answers(200, Some(list::<DocumentVersion>())),
        get("/api/v1/documents/{id}/lineage", "Where each version of a document came from").answers(200, Some(list::<VersionLineage>())),
        get("/api/v1/documents/{id}/versions/{version}", "A version's stored bytes (a download, in its format's media type)")
            .answers(200, Some(Body::Media("application/octet-stream")))
            .also(200, Some(Body::Media("application/pdf")))
            .also(200, Some(Body::Media("application/vnd.openxmlformats-officedocument.wordprocessingml.document")))
            .also(200, Some(Body::Media("text/html")))
            .also(200, Some(Body::Media("text/markdown")))
            .also(200, Some(Body::Media("text/csv")))
            .also(200, Some(Body::Media("application/json")))
            .also(200, Some(Body::Media("text/plain"))),
        delete("/api/v1/documents/{id}/versions/{version}", "Delete an earlier version"),
        act("/api/v1/documents/{id}/versions/{version}/restore", "Make an earlier version current again (as a new version)")
            .answers(202, Some(json::<Accepted>()))
            .also(200, Some(json::<Accepted>())),
        get("/api/v1/ingest-jobs/{id}", "An ingestion job").answers(200, Some(json::<IngestJob>())),
        get("/api/v1/jobs", "The caller's jobs (the whole tenant's with manage_tenant), newest first").answers(200, Some(page::<JobView>())).query(JOBS_QUERY),
        get("/api/v1/jobs/{id}", "One job").answers(200, Some(json::<JobView>())),
        delete("/api/v1/jobs/{id}", "Cancel a job: a queued one never runs, a running one stops").answers(200, Some(json::<JobView>())),
        act("/api/v1/jobs/{id}/retry", "Queue a dead, failed or cancelled job again, with fresh attempts").answers(200, Some(json::<JobView>())),
        get("/api/v1/events", "The tenant's events the caller may read, live: server-sent events, or a WebSocket when the request upgrades (resumes after `Last-Event-ID`)")
            .answers(200, Some(events::<EventView>()))
            .query(TENANT_EVENTS_QUERY),
        get("/api/v1/webhooks", "The caller's webhook endpoints (the whole tenant's with manage_tenant), newest first").answers(200, Some(page::<WebhookView>())).query(PAGE_QUERY),
        post("/api/v1/webhooks", "Register a webhook endpoint; its signing secret is in this answer only").body(json::<CreateWebhook>()).answers(201, Some(json::<WebhookView>())),
        get("/api/v1/webhooks/{id}", "One webhook endpoint").answers(200, Some(json::<WebhookView>())),
        patch("/api/v1/webhooks/{id}", "Change an endpoint's url, events or description, or enable or disable it")
            .body(json::<UpdateWebhook>())
            .answers(200, Some(json::<WebhookView>())),
        delete("/api/v1/webhooks/{id}", "Delete a webhook endpoint and its delivery log"),
        post("/api/v1/webhooks/{id}/rotate-secret", "A new signing secret (in this answer only); the previous one keeps signing for the overlap")
            .body(json::<RotateSecret>())
            .answers(200, Some(json::<WebhookView>())),
        act("/api/v1/webhooks/{id}/test", "Send a `webhook.test` event to this endpoint").answers(202, Some(json::<DeliveryView>())),
        get("/api/v1/webhooks/{id}/deliveries", "An endpoint's deliveries, newest first: status, response code, latency, payload")
            .answers(200, Some(page::<DeliveryView>()))
            .query(PAGE_QUERY),
        act("/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", "Send a delivery again (same message id and payload)").answers(202, Some(json::<DeliveryView>())),
        post("/api/v1/batches", "Submit a native batch: many agent runs, or many document uploads into one collection")
            .body(json::<NewBulk>())
            .answers(202, Some(json::<BulkView>())),
        get("/api/v1/batches", "The caller's native batches (the whole tenant's with manage_tenant), newest first").answers(200, Some(page::<BulkView>())).query(PAGE_QUERY),
        get("/api/v1/batches/{id}", "One native batch, with its progress").answers(200, Some(json::<BulkView>())),
        get("/api/v1/batches/{id}/items", "A native batch's items in order: what each became and where its work is").answers(200, Some(page::<BulkItemView>())).query(PAGE_QUERY),
        act("/api/v1/batches/{id}/cancel", "Stop submitting a native batch's items and cancel its queued runs").answers(200, Some(json::<BulkView>())),
        get("/api/v1/schedules", "The caller's schedules (the whole tenant's with manage_tenant), newest first").answers(200, Some(page::<ScheduleView>())).query(PAGE_QUERY),
        post("/api/v1/schedules", "Create a schedule: a cron expression in a time zone and an action").body(json::<CreateSchedule>()).answers(201, Some(json::<ScheduleView>())),
        get("/api/v1/schedules/{id}", "One schedule, with its next due time").answers(200, Some(json::<ScheduleView>())),
        patch("/api/v1/schedules/{id}", "Change a schedule's name, timing, action or misfire policy, or enable or disable it")
            .body(json::<UpdateSchedule>())
            .answers(200, Some(json::<ScheduleView>())),
        delete("/api/v1/schedules/{id}", "Delete a schedule and its history"),
        get("/api/v1/schedules/{id}/runs", "A schedule's fires, newest first: due time, trigger, status, the run it queued")
            .answers(200, Some(page::<ScheduleRunView>()))
            .query(PAGE_QUERY),
        act("/api/v1/schedules/{id}/trigger", "Fire a schedule now, acting for the caller (its timing stays)").answers(202, Some(json::<ScheduleRunView>())),
        post("/api/v1/search", "Hybrid search over the knowledge the caller may read").upstream().body(json::<SearchRequest>()).answers(200, Some(json::<SearchResponse>())),
        post("/api/v1/answer-cache/lookup", "Look up the semantic answer cache").upstream().body(json::<AnswerQuestion>()).answers(200, Some(json::<AnswerLookup>())),
        post("/api/v1/answer-cache", "Store an answer in the semantic answer cache").body(json::<AnswerToStore>()).answers(204, None),
        get("/api/v1/agents", "Agents: built-in ones, then custom ones, each by name").answers(200, Some(page::<AgentView>())).query(PAGE_QUERY),
        post("/api/v1/agents", "Create a custom agent").body(json::<agents::NewAgent>()).answers(201, Some(json::<AgentView>())),
        get("/api/v1/agents/{name}", "One agent").answers(200, Some(json::<AgentView>())),
        put("/api/v1/agents/{name}", "Change a custom agent (a new version)").body(json::<AgentDefinition>()).answers(200, Some(json::<AgentView>())),
        delete("/api/v1/agents/{name}", "Delete a custom agent"),
        get("/api/v1/agents/{name}/versions", "A custom agent's versions").answers(200, Some(list::<AgentVersionView>())),
        get("/api/v1/threads", "The caller's threads, most recently active first").answers(200, Some(page::<ThreadView>())).query(THREADS_QUERY),
        post("/api/v1/threads", "Start a thread").body(json::<ThreadInput>()).answers(201, Some(json::<ThreadView>())),
        get("/api/v1/threads/{id}", "One thread").answers(200, Some(json::<ThreadView>())),
        patch("/api/v1/threads/{id}", "Rename a thread or change its metadata").body(json::<ThreadPatch>()).answers(200, Some(json::<ThreadView>())),
        delete("/api/v1/threads/{id}", "Delete a thread"),
        get("/api/v1/threads/{id}/messages", "A thread's messages").answers(200, Some(list::<MessageView>())),
        get("/api/v1/threads/{id}/runs", "A thread's runs, newest first").answers(200, Some(page::<RunView>())).query(PAGE_QUERY),
        post("/api/v1/threads/{id}/runs", "Run an agent on a thread (wait, background, or stream events)")
            .upstream()
            .body(json::<agents::RunRequest>())
            .answers(200, Some(json::<RunView>()))
            .also(200, Some(events::<RunEvent>()))
            .also(202, Some(json::<RunView>())),
        get("/api/v1/runs", "The caller's runs, newest first").answers(200, Some(page::<RunView>())).query(PAGE_QUERY),
        post("/api/v1/runs", "Run an agent without a thread (wait, background, or stream events)")
            .upstream()
            .body(json::<agents::RunRequest>())
            .answers(200, Some(json::<RunView>()))
            .also(200, Some(events::<RunEvent>()))
            .also(202, Some(json::<RunView>())),
        get("/api/v1/runs/{id}", "One run with its tool calls and citations").answers(200, Some(json::<RunView>())),
        act("/api/v1/runs/{id}/cancel", "Cancel a run").answers(200, Some(json::<RunView>())),
        get("/api/v1/runs/{id}/events", "A run's events as server-sent events (resumes after `Last-Event-ID`)").answers(200, Some(events::<RunEvent>())).query(EVENTS_QUERY),
        get("/api/v1/mcp-servers", "Registered MCP servers").answers(200, Some(list::<McpServerView>())),
        post("/api/v1/mcp-servers", "Register an MCP server").body(json::<McpServerInput>()).answers(201, Some(json::<McpServerView>())),
        delete("/api/v1/mcp-servers/{name}", "Remove an MCP server"),
        get("/api/v1/mcp-servers/{name}/tools", "An MCP server's tools").upstream(),
        post("/a2a", "A2A JSON-RPC (1.0 and 0.3): send, stream, get and cancel tasks").body(json_rpc_message()).json_rpc(),
        post("/mcp", "MCP server (streamable HTTP): the caller's agents as tools").body(json_rpc_message()).also(202, None),
        get("/mcp", "MCP server-sent event stream (not offered)").answers(405, None),
        delete("/mcp", "MCP session end (not offered)").answers(405, None),
        get("/graphql", "GraphQL query in the query string (persisted-query friendly); the schema is docs/schema.graphql")
            .query(GRAPHQL_QUERY)
            .answers(200, Some(graphql_response())),
        post("/graphql", "GraphQL query: the read side in one round trip, with REST's checks per field").body(json::<GraphQlRequest>()).answers(200, Some(graphql_response())),
        post("/api/v1/admin/prices", "Set a platform-wide model price").body(json::<costs::PriceBody>()).answers(201, Some(json::<PriceView>())),
        put("/api/v1/admin/rate-limits/tiers/{name}", "Define or change a rate-limit tier").body(json::<costs::TierBody>()).answers(200, Some(json::<Tier>())),
    ]
}
