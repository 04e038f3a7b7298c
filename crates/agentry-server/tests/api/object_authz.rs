//! The object-level authorization matrix, generated from the route table
//! (`agentry_server::access::RULES`): every tenant route that names an
//! object × every caller (each built-in role as a signed-in member, a
//! custom role that holds only people-management permissions, and an API
//! key scoped to `use_models`) × whose object it is (the caller's own,
//! another member's, another tenant's) → the outcome [`expect`] writes down.
//!
//! Each `GET` cell whose route a GraphQL field mirrors is asked through
//! `/graphql` too, and must decide the same.
//!
//! A route that names an object but has no [`Kind`] here fails the test, so
//! a new route cannot join the table without its rows in this matrix.
//!
//! "Allow" means the request got past authorization (any status but 401,
//! 403, 404: handlers may still answer 400/409 to an escalating body, such
//! as removing the last admin). "Deny" is 403, "Hidden" 404. Objects that
//! a mutating request may change or delete are made fresh for that cell.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentry_server::access::{Access, RULES, Rule};
use agentry_types::access::AGENT_PERMISSIONS;
use agentry_types::{BuiltinRole, Permission};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The kinds of object a route can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Key,
    Member,
    Invitation,
    Role,
    Group,
    Thread,
    Run,
    Collection,
    Document,
    IngestJob,
    /// A background run's job (`agent_run`).
    Job,
    Agent,
    Budget,
    McpServer,
    Invoice,
    /// `/costs/usage/{user}`: a member's usage.
    UsageOf,
    /// `/v1/files/{id}`: an uploaded batch input file.
    File,
    /// `/v1/batches/{id}`.
    Batch,
    /// `/api/v1/webhooks/{id}` (and one of its deliveries).
    Webhook,
    /// `/api/v1/schedules/{id}`.
    Schedule,
    /// `/api/v1/batches/{id}`: a native batch (of agent runs here).
    Bulk,
}

/// Routes with a placeholder that name no tenant object, and why.
const NOT_TENANT_OBJECTS: &[(&str, &str)] = &[
    ("/api/v1/admin/", "platform administration (master key and platform admins only)"),
    ("/api/v1/auth/oidc/{provider}", "public sign-in flow; the provider is configuration"),
    ("/v1/models/{id}", "the model catalogue has no owner"),
    ("/api/v1/auth/sessions/{id}", "sessions are the signed-in user's own (tests/api/identity.rs)"),
];

fn kind_of(path: &str) -> Option<Kind> {
    let kinds: &[(&str, Kind)] = &[
        ("/api/v1/tenants/{tenant}/api-keys/{id}", Kind::Key),
        ("/api/v1/tenants/{tenant}/users/{user_id}", Kind::Member),
        ("/api/v1/tenants/{tenant}/invitations/{id}", Kind::Invitation),
        ("/api/v1/tenants/{tenant}/roles/{name}", Kind::Role),
        ("/api/v1/tenants/{tenant}/groups/{group_id}", Kind::Group),
        ("/api/v1/threads/{id}", Kind::Thread),
        ("/api/v1/runs/{id}", Kind::Run),
        ("/api/v1/collections/{id}", Kind::Collection),
        ("/api/v1/documents/{id}", Kind::Document),
        ("/api/v1/ingest-jobs/{id}", Kind::IngestJob),
        ("/api/v1/jobs/{id}", Kind::Job),
        ("/api/v1/agents/{name}", Kind::Agent),
        ("/api/v1/costs/budgets/{id}", Kind::Budget),
        ("/api/v1/mcp-servers/{name}", Kind::McpServer),
        ("/api/v1/billing/invoices/{id}", Kind::Invoice),
        ("/api/v1/costs/usage/{user}", Kind::UsageOf),
        ("/v1/files/{id}", Kind::File),
        ("/v1/batches/{id}", Kind::Batch),
        ("/api/v1/webhooks/{id}", Kind::Webhook),
        ("/api/v1/schedules/{id}", Kind::Schedule),
        ("/api/v1/batches/{id}", Kind::Bulk),
    ];
    kinds.iter().find(|(prefix, _)| path.starts_with(prefix)).map(|(_, kind)| *kind)
}

/// Who makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Member(BuiltinRole),
    /// A member whose custom role `people` holds manage_users, manage_roles,
    /// manage_api_keys and read_documents: the privilege ceiling's subject.
    People,
    /// An API key of the `user` member scoped to `use_models`.
    ScopedKey,
}

const PEOPLE: &[Permission] = &[Permission::ManageUsers, Permission::ManageRoles, Permission::ManageApiKeys, Permission::ReadDocuments];

impl Caller {
    fn all() -> Vec<Caller> {
        let mut callers: Vec<Caller> = BuiltinRole::ALL.iter().map(|r| Caller::Member(*r)).collect();
        callers.extend([Caller::People, Caller::ScopedKey]);
        callers
    }

    fn permissions(self) -> Vec<Permission> {
        match self {
            Caller::Member(role) => role.permissions().to_vec(),
            Caller::People => PEOPLE.to_vec(),
            Caller::ScopedKey => vec![Permission::UseModels],
        }
    }

    fn can(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    fn email(self) -> &'static str {
        match self {
            Caller::Member(BuiltinRole::Admin) => ADMIN_EMAIL,
            Caller::Member(BuiltinRole::User) | Caller::ScopedKey => "user-member@example.com",
            Caller::Member(BuiltinRole::Viewer) => "viewer-member@example.com",
            Caller::Member(BuiltinRole::ApiUser) => "api-user-member@example.com",
            Caller::People => "people-member@example.com",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Whose {
    Own,
    /// Another member of the caller's tenant (for tenant objects: made by the admin).
    OtherMember,
    OtherTenant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Allow,
    Deny,
    Hidden,
}

/// The written-down outcome of one cell; `None` where the cell cannot exist
/// (a caller that cannot own such an object).
fn expect(rule: &Rule, kind: Kind, caller: Caller, whose: Whose) -> Option<Expect> {
    use Expect::*;
    let creates_own = |permission: Permission| caller != Caller::ScopedKey && caller.can(permission);
    // Who can own one at all (the key acts on its owner's objects).
    let ownable = match kind {
        Kind::Key => true,
        Kind::Member => caller != Caller::ScopedKey,
        Kind::Role => creates_own(Permission::ManageRoles),
        Kind::Group | Kind::Invitation => creates_own(Permission::ManageUsers),
        Kind::Thread | Kind::Run | Kind::Job | Kind::Bulk => caller == Caller::ScopedKey || AGENT_PERMISSIONS.iter().any(|p| caller.can(*p)),
        Kind::Collection | Kind::Document | Kind::IngestJob => creates_own(Permission::UploadDocuments),
        Kind::Agent | Kind::McpServer => creates_own(Permission::ManageAgents),
        Kind::Budget | Kind::Invoice => creates_own(Permission::ManageBilling),
        Kind::UsageOf => caller != Caller::ScopedKey,
        Kind::File | Kind::Batch => caller.can(Permission::UseModels),
        Kind::Webhook | Kind::Schedule => creates_own(Permission::ManageIntegrations),
    };
    if whose == Whose::Own && !ownable {
        return None;
    }
    // Leaving the tenant yourself would remove this caller from every later
    // row (the admin is not the last one once other rows promoted members).
    if kind == Kind::Member && whose == Whose::Own && rule.method == Method::DELETE && caller.can(Permission::ManageUsers) {
        return None;
    }
    if matches!(rule.access, Access::TenantUser(_)) && caller == Caller::ScopedKey {
        return Some(Deny);
    }
    // The route's own permission (conversations: any permission to use an agent, whoever owns them).
    if rule.access.check_held(caller.permissions().into_iter().collect()).is_err() {
        return Some(Deny);
    }
    let mutating = rule.method != Method::GET;
    let session = caller != Caller::ScopedKey;
    let export = rule.path.ends_with("/data-export");
    Some(match (kind, whose) {
        // A person exports their own data; anyone else's takes manage_users and a role within the
        // caller's (the other member is a `user`, more than the people manager holds), and is hidden from others.
        (Kind::Member, Whose::Own) if export => Allow,
        (Kind::Member, Whose::OtherMember) if export => match caller {
            Caller::Member(BuiltinRole::Admin) => Allow,
            _ if caller.can(Permission::ManageUsers) => Deny,
            _ => Hidden,
        },
        // Erasing your own data is refused with a 400 (ask another administrator).
        (Kind::Member, Whose::Own) if rule.path.ends_with("/erase") => Allow,
        // Making anyone an admin is beyond every caller but the admin, whoever the member is.
        (Kind::Member, _) if rule.method == Method::PATCH && caller != Caller::Member(BuiltinRole::Admin) => Deny,
        // Roles are named per tenant: a PUT naming another tenant's role creates one here, within the ceiling.
        (Kind::Role, Whose::OtherTenant) if rule.method == Method::PUT => {
            if caller == Caller::Member(BuiltinRole::Admin) {
                Allow
            } else {
                Deny
            }
        }
        // A foreign tenant's usage id simply has no usage in this tenant.
        (Kind::UsageOf, Whose::OtherTenant) if caller.can(Permission::ViewMetrics) => Allow,
        (_, Whose::OtherTenant) => Hidden,
        // The body sets quality checks, which decide what every member's documents may be found by.
        (Kind::Collection, _) if rule.method == Method::PATCH && !caller.can(Permission::ManageIntegrations) => Deny,
        // A key acts on itself only, never on its owner's other keys.
        (Kind::Key, Whose::Own) if caller == Caller::ScopedKey => Hidden,
        (Kind::Key, Whose::Own) => Allow,
        // Others' keys: listed and revoked with manage_api_keys, never rotated (the secret would go to the caller).
        (Kind::Key, _) if !(session && caller.can(Permission::ManageApiKeys)) => Hidden,
        (Kind::Key, _) if rule.path.ends_with("/rotate") => Deny,
        // Revoking is within the ceiling: the other member is a `user`, more than the people manager holds.
        (Kind::Key, _) if caller == Caller::People => Deny,
        (Kind::Key, _) => Allow,
        // The ceiling: the body makes the target an admin, and the target's own role must be within the caller's.
        (Kind::Member, _) => {
            if caller == Caller::Member(BuiltinRole::Admin) {
                Allow
            } else {
                Deny
            }
        }
        // The PUT body adds manage_tenant; the other member's role holds use_models and view_metrics.
        (Kind::Role, _) if mutating && caller != Caller::Member(BuiltinRole::Admin) => {
            if whose == Whose::Own && rule.method == Method::DELETE {
                Allow
            } else {
                Deny
            }
        }
        // Group membership is a grant: a people manager changes only groups it is in (its own, as their creator).
        (Kind::Group, Whose::OtherMember) if caller == Caller::People && (rule.path.ends_with("{user_id}") || rule.method == Method::DELETE) => Deny,
        (Kind::Thread | Kind::Run, Whose::Own) => Allow,
        (Kind::Thread | Kind::Run, Whose::OtherMember) => Hidden,
        // A job is its owner's while they hold what its kind needs (an agent permission; the scoped key holds none), and every job is visible with manage_tenant.
        // A retried job acts with the retrier's credential: only its owner runs it again.
        (Kind::Job, Whose::OtherMember) if rule.path.ends_with("/retry") && caller.can(Permission::ManageTenant) => Deny,
        (Kind::Job, _) if caller.can(Permission::ManageTenant) => Allow,
        (Kind::Job, Whose::Own) if caller != Caller::ScopedKey => Allow,
        (Kind::Job, _) => Hidden,
        // A native batch is its submitter's while they hold what its type needs; manage_tenant sees all.
        (Kind::Bulk, _) if caller.can(Permission::ManageTenant) => Allow,
        (Kind::Bulk, Whose::Own) if caller != Caller::ScopedKey => Allow,
        (Kind::Bulk, _) => Hidden,
        (Kind::UsageOf, Whose::OtherMember) if !caller.can(Permission::ViewMetrics) => Hidden,
        // Files and batches are their owner's (a key's are its owner's); manage_tenant sees all of them.
        (Kind::File | Kind::Batch, Whose::OtherMember) if !(session && caller.can(Permission::ManageTenant)) => Hidden,
        _ => Allow,
    })
}

fn body_for(rule: &Rule, kind: Kind) -> Option<Value> {
    if rule.method == Method::GET || rule.method == Method::DELETE {
        return None;
    }
    Some(match kind {
        Kind::Member => json!({ "role": "admin" }),
        Kind::Role => json!({ "description": "escalated", "permissions": ["manage_users", "manage_roles", "manage_api_keys", "read_documents", "manage_tenant"] }),
        Kind::Group if rule.path.ends_with("{user_id}") => json!({}),
        Kind::Group => json!({ "name": format!("renamed {}", unique()) }),
        Kind::Thread if rule.path.ends_with("/runs") => json!({ "agent": "math", "input": "1+1" }),
        Kind::Thread => json!({ "title": "renamed" }),
        Kind::Collection if rule.method == Method::PATCH => json!({ "description": "renamed", "quality": { "min_chars": 1 } }),
        Kind::Collection => json!({ "text": "A note about otters.", "title": "Otters" }),
        Kind::Agent => json!({ "instructions": "Be brief.", "model": "mock-echo" }),
        _ => json!({}),
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// One object: the values its route's placeholders take.
#[derive(Debug, Clone)]
struct Object {
    id: String,
    /// `{version}` of a document; `{user_id}` of a group member route; `{delivery_id}` of a webhook's delivery.
    extra: Option<String>,
}

/// A signed-in creator: token and tenant.
#[derive(Clone)]
struct Creator {
    token: String,
    tenant: &'static str,
}

struct Fixture {
    app: TestApp,
    admin: String,
    tokens: HashMap<Caller, String>,
    scoped_key: String,
    other_member: String,
    other_member_id: String,
    user_ids: HashMap<Caller, String>,
    /// Objects of GET cells, made once: (kind, whose, caller) → object.
    cache: tokio::sync::Mutex<HashMap<(Kind, Whose, Caller), Object>>,
}

impl Fixture {
    async fn new() -> Self {
        let mut options = TestOptions::default();
        options.agents.outbound.allow = vec![agentry_core::outbound::AllowEntry::parse("127.0.0.1").unwrap()];
        options.knowledge = mock_knowledge().knowledge;
        let app = spawn_app_with(options).await;
        app.bootstrap().await;
        let admin = app.token(ADMIN_EMAIL).await;
        let (status, _) = send(&app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "globex", "name": "Globex" }))).await;
        assert_eq!(status, 201);
        let people = json!({ "permissions": PEOPLE.iter().map(|p| p.as_str()).collect::<Vec<_>>() });
        let (status, body) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/people", Some(people)).await;
        assert_eq!(status, 200, "{body}");
        let mut user_ids = HashMap::new();
        for caller in Caller::all() {
            let role = match caller {
                Caller::Member(BuiltinRole::Admin) | Caller::ScopedKey => continue,
                Caller::Member(role) => role.as_str(),
                Caller::People => "people",
            };
            user_ids.insert(caller, app.add_member(&admin, "acme", caller.email(), role).await);
        }
        let other_member_id = app.add_member(&admin, "acme", "other-member@example.com", "user").await;
        let mut tokens = HashMap::new();
        for caller in Caller::all() {
            tokens.insert(caller, app.token(caller.email()).await);
        }
        let (status, key) =
            send(&app, &tokens[&Caller::ScopedKey], Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "scoped", "scopes": ["use_models"] }))).await;
        assert_eq!(status, 201, "{key}");
        let other_member = app.token("other-member@example.com").await;
        Self { scoped_key: key["key"].as_str().unwrap().to_owned(), app, admin, tokens, other_member, other_member_id, user_ids, cache: Default::default() }
    }

    fn credential(&self, caller: Caller) -> &str {
        if caller == Caller::ScopedKey { &self.scoped_key } else { &self.tokens[&caller] }
    }

    /// The creator of an object of `kind` belonging to `whose` (relative to `caller`).
    fn creator(&self, kind: Kind, whose: Whose, caller: Caller) -> Creator {
        match whose {
            Whose::OtherTenant => Creator { token: self.admin.clone(), tenant: "globex" },
            Whose::Own => Creator { token: self.tokens[&caller].clone(), tenant: "acme" },
            Whose::OtherMember if matches!(kind, Kind::Key | Kind::Thread | Kind::Run | Kind::Job | Kind::File | Kind::Batch | Kind::Bulk) => {
                Creator { token: self.other_member.clone(), tenant: "acme" }
            }
            Whose::OtherMember => Creator { token: self.admin.clone(), tenant: "acme" },
        }
    }

    async fn call(&self, token: &str, tenant: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.app.with(method, path, token).header("x-agentry-tenant", tenant);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Make an object and return what its route's placeholders take.
    async fn make(&self, kind: Kind, whose: Whose, caller: Caller) -> Object {
        let Creator { token, tenant } = self.creator(kind, whose, caller);
        let n = unique();
        let created = |(status, body): (u16, Value), what: &str| {
            assert!(matches!(status, 200 | 201 | 202 | 204), "making {what} ({kind:?}, {whose:?}, {caller:?}): {status} {body}");
            body
        };
        let id = |body: &Value| body["id"].as_str().unwrap().to_owned();
        match kind {
            Kind::Key => {
                let body = created(self.call(&token, tenant, Method::POST, &format!("/api/v1/tenants/{tenant}/api-keys"), Some(json!({ "name": format!("k{n}") }))).await, "a key");
                Object { id: id(&body), extra: None }
            }
            Kind::Member => match whose {
                Whose::Own => Object { id: self.user_ids.get(&caller).cloned().unwrap_or_else(|| self.admin_id()), extra: None },
                _ => Object { id: self.app.add_member(&self.admin, tenant, &format!("member{n}@example.com"), "user").await, extra: None },
            },
            Kind::Invitation => {
                let body = created(
                    self.call(
                        &token,
                        tenant,
                        Method::POST,
                        &format!("/api/v1/tenants/{tenant}/users"),
                        Some(json!({ "email": format!("invitee{n}@example.com"), "role": if tenant == "acme" { "people" } else { "viewer" } })),
                    )
                    .await,
                    "an invitation",
                );
                Object { id: body["id"].as_str().or(body["invitation"]["id"].as_str()).unwrap_or_else(|| panic!("{body}")).to_owned(), extra: None }
            }
            Kind::Role => {
                let permissions = if whose == Whose::Own { json!(["read_documents"]) } else { json!(["read_documents", "view_metrics", "use_models"]) };
                let name = format!("role-{n}");
                created(self.call(&token, tenant, Method::PUT, &format!("/api/v1/tenants/{tenant}/roles/{name}"), Some(json!({ "permissions": permissions }))).await, "a role");
                Object { id: name, extra: None }
            }
            Kind::Group => {
                let body =
                    created(self.call(&token, tenant, Method::POST, &format!("/api/v1/tenants/{tenant}/groups"), Some(json!({ "name": format!("group {n}") }))).await, "a group");
                // With a member, so that removing one has something to remove.
                if tenant == "acme" {
                    let member = format!("/api/v1/tenants/{tenant}/groups/{}/members/{}", id(&body), self.other_member_id);
                    created(self.call(&token, tenant, Method::PUT, &member, Some(json!({}))).await, "a group member");
                }
                Object { id: id(&body), extra: Some(self.other_member_id.clone()) }
            }
            Kind::Thread => {
                let body = created(self.call(&token, tenant, Method::POST, "/api/v1/threads", Some(json!({ "title": format!("t{n}") }))).await, "a thread");
                Object { id: id(&body), extra: None }
            }
            Kind::Run => {
                let body = created(self.call(&token, tenant, Method::POST, "/api/v1/runs", Some(json!({ "agent": "math", "input": "2+2" }))).await, "a run");
                Object { id: id(&body), extra: None }
            }
            Kind::Job => {
                let queued = json!({ "agent": "math", "input": "2+2", "background": true });
                let run = created(self.call(&token, tenant, Method::POST, "/api/v1/runs", Some(queued)).await, "a background run");
                let jobs = created(self.call(&token, tenant, Method::GET, "/api/v1/jobs?kind=agent_run", None).await, "the job list");
                let job = jobs["data"].as_array().unwrap().iter().find(|j| j["subject_id"] == run["id"]).unwrap_or_else(|| panic!("no job for {run} in {jobs}"));
                Object { id: id(job), extra: None }
            }
            Kind::Collection => {
                let body = created(self.call(&token, tenant, Method::POST, "/api/v1/collections", Some(json!({ "name": format!("c{n}") }))).await, "a collection");
                Object { id: id(&body), extra: None }
            }
            Kind::Document | Kind::IngestJob => {
                let collection = Box::pin(self.make(Kind::Collection, whose, caller)).await;
                let path = format!("/api/v1/collections/{}/documents", collection.id);
                let body = created(
                    self.call(&token, tenant, Method::POST, &path, Some(json!({ "text": format!("Note {n} about herons."), "title": format!("d{n}") }))).await,
                    "a document",
                );
                if kind == Kind::IngestJob {
                    Object { id: body["job_id"].as_str().unwrap().to_owned(), extra: None }
                } else {
                    Object { id: body["document"]["id"].as_str().unwrap().to_owned(), extra: Some("1".into()) }
                }
            }
            Kind::Agent => {
                let body = json!({ "name": format!("agent-{n}"), "instructions": "Be brief.", "model": "mock-echo" });
                created(self.call(&token, tenant, Method::POST, "/api/v1/agents", Some(body)).await, "an agent");
                Object { id: format!("agent-{n}"), extra: None }
            }
            Kind::McpServer => {
                // This server's own /mcp, as the creator.
                let body =
                    json!({ "name": format!("mcp-{n}"), "url": self.app.url("/mcp"), "headers": { "Authorization": format!("Bearer {token}"), "X-Agentry-Tenant": tenant } });
                created(self.call(&token, tenant, Method::POST, "/api/v1/mcp-servers", Some(body)).await, "an MCP server");
                Object { id: format!("mcp-{n}"), extra: None }
            }
            Kind::Budget => {
                let body = created(
                    self.call(&token, tenant, Method::POST, "/api/v1/costs/budgets", Some(json!({ "scope": "tenant", "period": "daily", "limit_usd": 5.0 + n as f64 }))).await,
                    "a budget",
                );
                Object { id: id(&body), extra: None }
            }
            Kind::Invoice => {
                // A distinct past month per invoice, so each is its own object.
                let period = format!("{}-{:02}", 1970 + n / 12, n % 12 + 1);
                let body = created(self.call(&token, tenant, Method::POST, "/api/v1/billing/invoices", Some(json!({ "period": period }))).await, "an invoice");
                Object { id: id(&body), extra: None }
            }
            Kind::File | Kind::Batch => {
                let line = json!({ "custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": { "model": "mock-echo", "messages": user_message("hi") } });
                let form = reqwest::multipart::Form::new().text("purpose", "batch").part("file", reqwest::multipart::Part::text(format!("{line}\n")).file_name("a.jsonl"));
                let response = self.app.with(Method::POST, "/v1/files", &token).header("x-agentry-tenant", tenant).multipart(form).send().await.unwrap();
                let file = created((response.status().as_u16(), response.json().await.unwrap()), "a file");
                if kind == Kind::File {
                    return Object { id: id(&file), extra: None };
                }
                let body = json!({ "input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h" });
                let batch = created(self.call(&token, tenant, Method::POST, "/v1/batches", Some(body)).await, "a batch");
                Object { id: id(&batch), extra: None }
            }
            Kind::Webhook => {
                // Unreachable from here: its deliveries fail and wait for their retries, which is all the matrix needs.
                let body = json!({ "url": format!("https://hooks{n}.example.com/agentry"), "events": ["*"] });
                let webhook = created(self.call(&token, tenant, Method::POST, "/api/v1/webhooks", Some(body)).await, "a webhook");
                let path = format!("/api/v1/webhooks/{}/test", id(&webhook));
                let (status, delivery) = self.call(&token, tenant, Method::POST, &path, None).await;
                assert_eq!(status, 202, "a test delivery: {delivery}");
                Object { id: id(&webhook), extra: Some(id(&delivery)) }
            }
            Kind::Bulk => {
                let body = json!({ "type": "agent_runs", "items": [{ "agent": "math", "input": "3+3" }] });
                let batch = created(self.call(&token, tenant, Method::POST, "/api/v1/batches", Some(body)).await, "a native batch");
                Object { id: id(&batch), extra: None }
            }
            Kind::Schedule => {
                let body =
                    json!({ "name": format!("nightly {n}"), "cron": "0 3 * * *", "timezone": "Europe/Paris", "action": { "type": "run_agent", "agent": "math", "input": "1+1" } });
                let schedule = created(self.call(&token, tenant, Method::POST, "/api/v1/schedules", Some(body)).await, "a schedule");
                Object { id: id(&schedule), extra: None }
            }
            Kind::UsageOf => match whose {
                Whose::Own => Object { id: self.user_ids.get(&caller).cloned().unwrap_or_else(|| self.admin_id()), extra: None },
                Whose::OtherMember => Object { id: self.other_member_id.clone(), extra: None },
                Whose::OtherTenant => Object { id: self.app.add_member(&self.admin, "globex", &format!("foreign{n}@example.com"), "user").await, extra: None },
            },
        }
    }

    fn admin_id(&self) -> String {
        self.user_ids.get(&Caller::Member(BuiltinRole::Admin)).cloned().unwrap_or_default()
    }

    async fn object(&self, rule: &Rule, kind: Kind, whose: Whose, caller: Caller) -> Object {
        // The scoped key's own objects are its owner's (the `user` member's).
        let owner = if caller == Caller::ScopedKey && whose == Whose::Own { Caller::Member(BuiltinRole::User) } else { caller };
        if rule.method != Method::GET {
            return self.make(kind, whose, owner).await;
        }
        let key = (kind, whose, owner);
        if let Some(object) = self.cache.lock().await.get(&key) {
            return object.clone();
        }
        let object = self.make(kind, whose, owner).await;
        self.cache.lock().await.insert(key, object.clone());
        object
    }
}

/// The GraphQL query that reads what `GET path` reads, and the field that
/// answers it: each is a cell of the matrix too, expected to decide as REST does.
fn graphql_for(path: &str, object: &Object) -> Option<(String, &'static str)> {
    let id = &object.id;
    let (query, field) = match path {
        "/api/v1/threads/{id}" => (format!(r#"{{ thread(id: "{id}") {{ id }} }}"#), "thread"),
        "/api/v1/threads/{id}/messages" => (format!(r#"{{ thread(id: "{id}") {{ messages {{ seq }} }} }}"#), "thread"),
        "/api/v1/threads/{id}/runs" => (format!(r#"{{ thread(id: "{id}") {{ runs {{ nodes {{ id }} }} }} }}"#), "thread"),
        "/api/v1/runs/{id}" => (format!(r#"{{ run(id: "{id}") {{ id toolCalls {{ tool }} }} }}"#), "run"),
        "/api/v1/collections/{id}" => (format!(r#"{{ collection(id: "{id}") {{ id }} }}"#), "collection"),
        "/api/v1/collections/{id}/documents" => (format!(r#"{{ collection(id: "{id}") {{ documents {{ nodes {{ id }} }} }} }}"#), "collection"),
        "/api/v1/documents/{id}" => (format!(r#"{{ document(id: "{id}") {{ id }} }}"#), "document"),
        "/api/v1/documents/{id}/versions" => (format!(r#"{{ document(id: "{id}") {{ versions {{ version }} }} }}"#), "document"),
        "/api/v1/agents/{name}" => (format!(r#"{{ agent(name: "{id}") {{ name }} }}"#), "agent"),
        "/api/v1/agents/{name}/versions" => (format!(r#"{{ agent(name: "{id}") {{ versions {{ version }} }} }}"#), "agent"),
        _ => return None,
    };
    Some((query, field))
}

/// What a GraphQL answer decided: the status of its first error (REST's), or allowed.
fn graphql_outcome(answer: &Value, field: &str) -> (Expect, u16) {
    let status = answer["errors"][0]["extensions"]["status"].as_u64().map_or(200, |s| s as u16);
    let outcome = match status {
        401 | 403 => Expect::Deny,
        404 => Expect::Hidden,
        _ if answer["data"][field].is_null() => Expect::Hidden,
        _ => Expect::Allow,
    };
    (outcome, status)
}

fn fill(path: &str, object: &Object) -> String {
    let mut filled = path.replace("{tenant}", "acme");
    for placeholder in ["{id}", "{name}", "{group_id}", "{user}"] {
        filled = filled.replace(placeholder, &object.id);
    }
    let extra = object.extra.clone().unwrap_or_default();
    if path.starts_with("/api/v1/tenants/{tenant}/users/") {
        filled = filled.replace("{user_id}", &object.id);
    }
    filled.replace("{user_id}", &extra).replace("{version}", &extra).replace("{delivery_id}", &extra)
}

#[tokio::test]
async fn every_object_route_decides_on_the_objects_owner_and_tenant() {
    let mut fixture = Fixture::new().await;
    fixture.user_ids.insert(Caller::Member(BuiltinRole::Admin), admin_user_id(&fixture).await);
    let mut failures = Vec::new();
    let mut table = Vec::new();
    let mut graphql_cells = 0;
    for rule in RULES {
        if !rule.path.contains('{') || rule.path == "/api/v1/tenants/{tenant}" || !rule.path.replace("{tenant}", "").contains('{') {
            continue;
        }
        let Some(kind) = kind_of(rule.path) else {
            let known = NOT_TENANT_OBJECTS.iter().any(|(prefix, _)| rule.path.starts_with(prefix));
            assert!(known, "{} {} names an object but has no rows in the object matrix: give it a Kind", rule.method, rule.path);
            continue;
        };
        for caller in Caller::all() {
            for whose in [Whose::Own, Whose::OtherMember, Whose::OtherTenant] {
                let Some(want) = expect(rule, kind, caller, whose) else {
                    table.push(format!("{:<7}{:<62}{:<22}{:<12} n/a", rule.method.as_str(), rule.path, format!("{caller:?}"), format!("{whose:?}")));
                    continue;
                };
                let object = fixture.object(rule, kind, whose, caller).await;
                let path = fill(rule.path, &object);
                let (status, body) = fixture.call(fixture.credential(caller), "acme", rule.method.clone(), &path, body_for(rule, kind)).await;
                let got = match status {
                    401 | 403 => Expect::Deny,
                    404 => Expect::Hidden,
                    _ => Expect::Allow,
                };
                let status_is = match want {
                    Expect::Deny => status == 403,
                    _ => got == want,
                };
                table.push(format!("{:<7}{:<62}{:<22}{:<12} {want:?} ({status})", rule.method.as_str(), rule.path, format!("{caller:?}"), format!("{whose:?}")));
                if !status_is || status >= 500 {
                    failures.push(format!("{} {path} ({}) as {caller:?} on {whose:?}: {status}, want {want:?}: {body}", rule.method, rule.path));
                }
                let Some((query, field)) = graphql_for(rule.path, &object).filter(|_| rule.method == Method::GET) else { continue };
                let (status, answer) = fixture.call(fixture.credential(caller), "acme", Method::POST, "/graphql", Some(json!({ "query": query }))).await;
                let (got, error_status) = graphql_outcome(&answer, field);
                graphql_cells += 1;
                if status != 200 || got != want {
                    failures.push(format!("GraphQL {query} as {caller:?} on {whose:?}: {status}/{error_status}, want {want:?} as GET {}: {answer}", rule.path));
                }
            }
        }
    }
    assert!(table.len() > 300, "the matrix has only {} cells", table.len());
    assert!(graphql_cells > 100, "only {graphql_cells} GraphQL cells");
    assert!(failures.is_empty(), "{} cells wrong:\n{}\n\nthe matrix:\n{}", failures.len(), failures.join("\n"), table.join("\n"));
}

async fn admin_user_id(fixture: &Fixture) -> String {
    let (_, me) = send(&fixture.app, &fixture.admin, Method::GET, "/api/v1/auth/me", None).await;
    me["id"].as_str().or(me["user"]["id"].as_str()).expect("the admin's id").to_owned()
}
