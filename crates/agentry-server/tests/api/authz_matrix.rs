//! The authorization matrix, generated from the route table
//! (`agentry_server::access::RULES`): every route × every built-in role (as a
//! signed-in member), an API key, no credentials, an expired token, a
//! revoked key, and another tenant → the status the table implies.
//!
//! "Allowed" means the request got past authorization: any status but 401,
//! 403 (and 404 where the tenant is the caller's own). Handlers may still
//! answer 400/404/409 to the dummy bodies and ids used here.

use std::collections::HashMap;

use agentry_server::access::{Access, RULES, Rule};
use agentry_types::{BuiltinRole, Permission};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApp, spawn_app};

/// Who makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Caller {
    Member(BuiltinRole),
    /// An API key of the `user` member, unscoped (the user's permissions).
    Key,
    Anonymous,
    ExpiredToken,
    RevokedKey,
}

fn email(role: BuiltinRole) -> String {
    format!("{}-member@example.com", role.as_str())
}

fn fill(path: &str, tenant: &str) -> String {
    path.replace("{tenant}", tenant)
        .replace("{id}", "00000000-0000-0000-0000-000000000000")
        .replace("{user_id}", "00000000-0000-0000-0000-000000000000")
        .replace("{group_id}", "00000000-0000-0000-0000-000000000000")
        .replace("{name}", "no-such-role")
        .replace("{version}", "1")
}

fn allows(caller: Caller, rule: &Rule) -> bool {
    let permissions: &[Permission] = match caller {
        Caller::Member(role) => role.permissions(),
        Caller::Key => BuiltinRole::User.permissions(),
        Caller::Anonymous | Caller::ExpiredToken | Caller::RevokedKey => return rule.access == Access::Public,
    };
    match rule.access {
        Access::Public | Access::Authenticated => true,
        Access::SignedIn => caller != Caller::Key,
        // No member here is a platform administrator.
        Access::PlatformAdmin | Access::MetricsScrape => false,
        Access::TenantUser(_) if caller == Caller::Key => false,
        Access::Tenant(_) | Access::TenantUser(_) | Access::TenantAnyOf(_) => rule.access.check_held(permissions.iter().copied().collect()).is_ok(),
    }
}

struct Fixture {
    app: TestApp,
    admin: String,
    credentials: HashMap<Caller, String>,
}

impl Fixture {
    async fn new() -> Self {
        let app = spawn_app().await;
        app.bootstrap().await;
        let admin = app.token(ADMIN_EMAIL).await;
        let create = app.with(Method::POST, "/api/v1/tenants", &admin).json(&json!({ "slug": "globex", "name": "Globex" })).send().await.unwrap();
        assert_eq!(create.status(), 201);
        let mut fixture = Self { app, admin, credentials: HashMap::new() };
        for role in BuiltinRole::ALL {
            fixture.app.add_member(&fixture.admin, "acme", &email(*role), role.as_str()).await;
        }
        for caller in [Caller::Key, Caller::RevokedKey] {
            let user = fixture.login(BuiltinRole::User).await;
            let key: Value =
                fixture.app.with(Method::POST, "/api/v1/tenants/acme/api-keys", &user).json(&json!({ "name": format!("{caller:?}") })).send().await.unwrap().json().await.unwrap();
            if caller == Caller::RevokedKey {
                let id = key["id"].as_str().unwrap();
                let revoke = fixture.app.with(Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{id}"), &user).send().await.unwrap();
                assert_eq!(revoke.status(), 204);
            }
            fixture.credentials.insert(caller, key["key"].as_str().unwrap().to_owned());
        }
        fixture.credentials.insert(Caller::ExpiredToken, expired_token(&fixture.app).await);
        fixture
    }

    async fn login(&self, role: BuiltinRole) -> String {
        self.app.token(&email(role)).await
    }

    /// A credential for the caller; members get a fresh session per request
    /// so session-ending routes cannot spoil later rows.
    async fn credential(&self, caller: Caller) -> Option<String> {
        match caller {
            Caller::Member(role) => Some(self.login(role).await),
            Caller::Anonymous => None,
            other => self.credentials.get(&other).cloned(),
        }
    }

    async fn status(&self, caller: Caller, rule: &Rule, tenant: &str) -> u16 {
        let method = Method::from_bytes(rule.method.as_str().as_bytes()).unwrap();
        let mut request = self.app.client.request(method.clone(), self.app.url(&fill(rule.path, tenant)));
        if let Some(credential) = self.credential(caller).await {
            request = request.bearer_auth(credential);
        }
        if method != Method::GET && method != Method::DELETE {
            request = request.json(&json!({}));
        }
        request.send().await.unwrap().status().as_u16()
    }
}

/// An access token of the admin whose `exp` has passed, signed with the real key.
async fn expired_token(app: &TestApp) -> String {
    use base64::Engine;
    let db = agentry_db::Db::connect(&app.database_url).await.unwrap();
    let key = db.signing_keys(0).await.unwrap().into_iter().find(|k| k.retired_at_ms.is_none()).unwrap();
    let der = base64::engine::general_purpose::STANDARD.decode(crate::helpers::opened_private_der(&key)).unwrap();
    let valid = app.token(ADMIN_EMAIL).await;
    let mut claims: Value = serde_json::from_slice(&crate::identity::base64_url(valid.split('.').nth(1).unwrap())).unwrap();
    let now = claims["iat"].as_i64().unwrap();
    claims["exp"] = json!(now - 120);
    claims["iat"] = json!(now - 1000);
    claims["nbf"] = json!(now - 1000);
    let header = jsonwebtoken::Header { kid: Some(key.kid), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA) };
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_table_says() {
    let fixture = Fixture::new().await;
    let mut callers: Vec<Caller> = BuiltinRole::ALL.iter().map(|r| Caller::Member(*r)).collect();
    callers.extend([Caller::Key, Caller::Anonymous, Caller::ExpiredToken, Caller::RevokedKey]);
    let mut failures = Vec::new();
    let mut checked = 0;
    for rule in RULES {
        for &caller in &callers {
            let status = fixture.status(caller, rule, "acme").await;
            let allowed = allows(caller, rule);
            let ok = match (allowed, rule.access) {
                (true, _) => !matches!(status, 401 | 403),
                (false, Access::PlatformAdmin | Access::MetricsScrape | Access::SignedIn | Access::Tenant(_) | Access::TenantUser(_) | Access::TenantAnyOf(_))
                    if matches!(caller, Caller::Member(_) | Caller::Key) =>
                {
                    status == 403
                }
                (false, _) => status == 401,
            };
            if !ok {
                failures.push(format!("{} {} as {caller:?}: {status} (allowed: {allowed})", rule.method, rule.path));
            }
            checked += 1;
            // Another tenant: members and keys of acme never see globex.
            if matches!(rule.access, Access::Tenant(_) | Access::TenantUser(_) | Access::TenantAnyOf(_))
                && rule.path.contains("{tenant}")
                && matches!(caller, Caller::Member(_) | Caller::Key)
            {
                let status = fixture.status(caller, rule, "globex").await;
                if status != 404 {
                    failures.push(format!("{} {} as {caller:?} in another tenant: {status} (want 404)", rule.method, rule.path));
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cells wrong:\n{}", failures.len(), failures.join("\n"));
}

#[tokio::test]
async fn every_route_is_served_and_unlisted_methods_are_405() {
    let fixture = Fixture::new().await;
    let mut failures = Vec::new();
    for rule in RULES {
        // The platform admin passes every check: a 404 "no route" here would mean the table lists a route the router lacks.
        let method = Method::from_bytes(rule.method.as_str().as_bytes()).unwrap();
        let mut request = fixture.app.client.request(method.clone(), fixture.app.url(&fill(rule.path, "acme"))).bearer_auth(&fixture.admin);
        if method != Method::GET && method != Method::DELETE {
            request = request.json(&json!({}));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        // Only a 404's body is read: a served live stream (`/api/v1/events`) never ends.
        let body: Value = if status == 404 { response.json().await.unwrap_or(Value::Null) } else { Value::Null };
        if status == 404 && body["error"]["message"] == "no route matches this path" {
            failures.push(format!("{} {} is in the table but not routed", rule.method, rule.path));
        }
        for other in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if RULES.iter().any(|r| r.path == rule.path && r.method.as_str() == other) {
                continue;
            }
            let response = fixture
                .app
                .client
                .request(Method::from_bytes(other.as_bytes()).unwrap(), fixture.app.url(&fill(rule.path, "acme")))
                .bearer_auth(&fixture.admin)
                .send()
                .await
                .unwrap();
            if response.status() != 405 {
                failures.push(format!("{other} {} is not in the table but answered {}", rule.path, response.status()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
