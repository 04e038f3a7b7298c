//! Identity end to end: bootstrap, login, tenants and members, roles, API
//! keys, sessions and refresh rotation, lockout — on SQLite and PostgreSQL.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, PASSWORD, TestApp, TestOptions, assert_error, spawn_app, spawn_app_with, user_message};

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let code = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(code, status, "{body}");
    body
}

/// Tenants, members, roles and API keys through the API.
async fn tenants_members_and_keys(app: &TestApp) {
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let me = json_of(app.with(Method::GET, "/api/v1/auth/me", &admin).send().await.unwrap(), 200).await;
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me["user"]["platform_admin"], true);

    // A second tenant; the admin belongs to both.
    let other = json_of(app.with(Method::POST, "/api/v1/tenants", &admin).json(&json!({ "slug": "globex", "name": "Globex" })).send().await.unwrap(), 201).await;
    assert_eq!(other["slug"], "globex");
    let duplicate = app.with(Method::POST, "/api/v1/tenants", &admin).json(&json!({ "slug": "globex", "name": "Again" })).send().await.unwrap();
    assert_error(duplicate, 409, "conflict").await;

    // A plain user of acme sees acme only; globex does not exist for them.
    app.add_member(&admin, "acme", "user@example.com", "user").await;
    let user = app.token("user@example.com").await;
    let tenants = json_of(app.with(Method::GET, "/api/v1/tenants", &user).send().await.unwrap(), 200).await;
    assert_eq!(tenants["data"].as_array().unwrap().len(), 1, "{tenants}");
    assert_eq!(tenants["data"][0]["tenant_slug"], "acme");
    assert_error(app.with(Method::GET, "/api/v1/tenants/globex", &user).send().await.unwrap(), 404, "not_found").await;
    assert_error(app.with(Method::GET, "/api/v1/tenants/acme/users", &user).send().await.unwrap(), 403, "permission_denied").await;

    // A custom role; giving it changes what the member may do.
    let role = app
        .with(Method::PUT, "/api/v1/tenants/acme/roles/auditor", &admin)
        .json(&json!({ "description": "reads the audit log", "permissions": ["view_audit", "read_documents"] }))
        .send()
        .await
        .unwrap();
    json_of(role, 200).await;
    let members = json_of(app.with(Method::GET, "/api/v1/tenants/acme/users", &admin).send().await.unwrap(), 200).await;
    let user_id = members["data"].as_array().unwrap().iter().find(|m| m["email"] == "user@example.com").unwrap()["user_id"].as_str().unwrap().to_owned();
    let set = app.with(Method::PATCH, &format!("/api/v1/tenants/acme/users/{user_id}"), &admin).json(&json!({ "role": "auditor" })).send().await.unwrap();
    assert_eq!(json_of(set, 200).await["role"], "auditor");
    assert_eq!(app.with(Method::GET, "/api/v1/tenants/acme/audit", &user).send().await.unwrap().status(), 200);
    let in_use = app.with(Method::DELETE, "/api/v1/tenants/acme/roles/auditor", &admin).send().await.unwrap();
    assert_error(in_use, 400, "invalid_request").await;
    let unknown = app.with(Method::PATCH, &format!("/api/v1/tenants/acme/users/{user_id}"), &admin).json(&json!({ "role": "wizard" })).send().await.unwrap();
    assert_error(unknown, 400, "invalid_request").await;
    let set = app.with(Method::PATCH, &format!("/api/v1/tenants/acme/users/{user_id}"), &admin).json(&json!({ "role": "user" })).send().await.unwrap();
    json_of(set, 200).await;

    // Renaming the tenant.
    let renamed = app.with(Method::PATCH, "/api/v1/tenants/acme", &admin).json(&json!({ "name": "Acme Corporation" })).send().await.unwrap();
    assert_eq!(renamed.status(), 204);
    let tenants = json_of(app.with(Method::GET, "/api/v1/tenants", &admin).send().await.unwrap(), 200).await;
    assert!(tenants.to_string().contains("Acme Corporation"), "{tenants}");

    // The last admin cannot be demoted.
    let admin_id = me["user"]["id"].as_str().unwrap();
    let demote = app.with(Method::PATCH, &format!("/api/v1/tenants/acme/users/{admin_id}"), &admin).json(&json!({ "role": "user" })).send().await.unwrap();
    assert_error(demote, 400, "invalid_request").await;

    // API keys: scoped to a subset of the creator's permissions, shown once.
    let too_much = app.with(Method::POST, "/api/v1/tenants/acme/api-keys", &user).json(&json!({ "name": "x", "scopes": ["manage_users"] })).send().await.unwrap();
    assert_error(too_much, 400, "invalid_request").await;
    let created = app
        .with(Method::POST, "/api/v1/tenants/acme/api-keys", &user)
        .json(&json!({ "name": "ci", "scopes": ["use_models"], "metadata": { "team": "search" } }))
        .send()
        .await
        .unwrap();
    let created = json_of(created, 201).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("agk_") && key.starts_with(created["prefix"].as_str().unwrap()));
    let listed = json_of(app.with(Method::GET, "/api/v1/tenants/acme/api-keys", &user).send().await.unwrap(), 200).await;
    assert!(!listed.to_string().contains(&key), "the secret is never listed");
    assert_eq!(listed["data"][0]["metadata"]["team"], "search");

    // The key works on /v1 and only within its scopes and tenant.
    let chat = app.with(Method::POST, "/v1/chat/completions", &key).json(&json!({ "model": "gpt-ok", "messages": user_message("hi") })).send().await.unwrap();
    assert_eq!(chat.status(), 200);
    assert_error(app.with(Method::GET, "/api/v1/tenants/acme/audit", &key).send().await.unwrap(), 403, "permission_denied").await;
    assert_error(app.with(Method::GET, "/api/v1/tenants/globex/roles", &key).send().await.unwrap(), 404, "not_found").await;

    // Rotation: both keys work during the grace period; revocation is immediate here.
    let key_id = created["id"].as_str().unwrap();
    let rotated = app.with(Method::POST, &format!("/api/v1/tenants/acme/api-keys/{key_id}/rotate"), &user).json(&json!({ "grace_period": 60 })).send().await.unwrap();
    let rotated = json_of(rotated, 201).await;
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    for k in [&key, &new_key] {
        assert_eq!(app.with(Method::GET, "/v1/models", k).send().await.unwrap().status(), 200);
    }
    let revoke = app.with(Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{key_id}"), &user).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    assert_error(app.with(Method::GET, "/v1/models", &key).send().await.unwrap(), 401, "invalid_api_key").await;
    assert_eq!(app.with(Method::GET, "/v1/models", &new_key).send().await.unwrap().status(), 200);

    // Every step above left an audit trail that verifies.
    let audit = json_of(app.with(Method::GET, "/api/v1/tenants/acme/audit?limit=1000", &admin).send().await.unwrap(), 200).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in ["admin.bootstrap", "membership.create", "role.put", "membership.update", "api_key.create", "api_key.rotate", "api_key.revoke", "permission.denied"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let verify = json_of(app.with(Method::GET, "/api/v1/tenants/acme/audit/verify", &admin).send().await.unwrap(), 200).await;
    assert_eq!(verify["valid"], true, "{verify}");
}

#[tokio::test]
async fn tenants_members_and_keys_on_sqlite() {
    tenants_members_and_keys(&spawn_app().await).await;
}

#[tokio::test]
async fn tenants_members_and_keys_on_postgres() {
    // Outside CI without TEST_AGENTRY_POSTGRES_URL this returns; in CI it panics instead.
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    tenants_members_and_keys(&spawn_app_with(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await).await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_session() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let login = json_of(app.login(ADMIN_EMAIL, PASSWORD).await, 200).await;
    assert_eq!(login["token_type"], "Bearer");
    assert!(login["expires_in"].as_u64().unwrap() <= 900);
    let first_refresh = login["refresh_token"].as_str().unwrap();
    let access = login["access_token"].as_str().unwrap();

    let refreshed = app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({ "refresh_token": first_refresh })).send().await.unwrap();
    let refreshed = json_of(refreshed, 200).await;
    let second_access = refreshed["access_token"].as_str().unwrap();
    assert_ne!(refreshed["refresh_token"], login["refresh_token"]);
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", second_access).send().await.unwrap().status(), 200);

    // Replaying the first refresh token: refused, and the whole session dies.
    let replay = app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({ "refresh_token": first_refresh })).send().await.unwrap();
    assert_error(replay, 401, "invalid_token").await;
    for token in [access, second_access] {
        assert_error(app.with(Method::GET, "/api/v1/auth/me", token).send().await.unwrap(), 401, "invalid_token").await;
    }
    let newest = refreshed["refresh_token"].as_str().unwrap();
    let after = app.client.post(app.url("/api/v1/auth/refresh")).json(&json!({ "refresh_token": newest })).send().await.unwrap();
    assert_error(after, 401, "invalid_token").await;

    // The reuse is in the platform audit chain.
    let admin = app.token(ADMIN_EMAIL).await;
    let audit = json_of(app.with(Method::GET, "/api/v1/admin/audit?action=auth.refresh_reuse", &admin).send().await.unwrap(), 200).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["data"][0]["outcome"], "denied");
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_and_logout_ends_one() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let a = app.token(ADMIN_EMAIL).await;
    let b = app.token(ADMIN_EMAIL).await;
    let sessions = json_of(app.with(Method::GET, "/api/v1/auth/sessions", &a).send().await.unwrap(), 200).await;
    let list = sessions["data"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);

    assert_eq!(app.with(Method::POST, "/api/v1/auth/logout", &b).send().await.unwrap().status(), 204);
    assert_error(app.with(Method::GET, "/api/v1/auth/me", &b).send().await.unwrap(), 401, "invalid_token").await;
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &a).send().await.unwrap().status(), 200);

    let revoked = json_of(app.with(Method::DELETE, "/api/v1/auth/sessions", &a).send().await.unwrap(), 200).await;
    assert_eq!(revoked["revoked"], 1);
    assert_error(app.with(Method::GET, "/api/v1/auth/me", &a).send().await.unwrap(), 401, "invalid_token").await;
}

#[tokio::test]
async fn failed_logins_lock_the_account_without_revealing_accounts() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let unknown = app.login("nobody@example.com", "whatever it is 1").await;
    let unknown = assert_error(unknown, 401, "invalid_credentials").await;
    let wrong = assert_error(app.login(ADMIN_EMAIL, "wrong password 1").await, 401, "invalid_credentials").await;
    assert_eq!(unknown["message"], wrong["message"], "same answer for unknown accounts");
    for _ in 0..4 {
        assert_error(app.login(ADMIN_EMAIL, "wrong password 1").await, 401, "invalid_credentials").await;
    }
    // Five failures: locked, even with the right password.
    let locked = app.login(ADMIN_EMAIL, PASSWORD).await;
    assert!(locked.headers().get("retry-after").is_some());
    assert_error(locked, 429, "account_locked").await;
}

#[tokio::test]
async fn bootstrap_refuses_a_second_run_and_weak_passwords() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let settings =
        agentry_server::Settings { database_url: Some(app.database_url.clone()), master_key: Some(crate::helpers::MASTER_KEY.into()), ..agentry_server::Settings::default() };
    let again = agentry_server::startup::bootstrap(&settings, "acme", None, "other@example.com", PASSWORD).await;
    assert!(again.unwrap_err().to_string().contains("already exists"));
    let weak = agentry_server::startup::bootstrap(&settings, "newco", None, "weak@example.com", "short").await;
    assert!(weak.unwrap_err().to_string().contains("at least 12"));
}

#[tokio::test]
async fn jwks_publishes_the_signing_keys_and_rotation_keeps_old_tokens_valid() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    let before = app.token(ADMIN_EMAIL).await;
    let rotated = json_of(app.with(Method::POST, "/api/v1/admin/signing-keys/rotate", &before).send().await.unwrap(), 200).await;
    let after = app.token(ADMIN_EMAIL).await;
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2, "the old key still verifies");
    for token in [&before, &after] {
        assert_eq!(app.with(Method::GET, "/api/v1/auth/me", token).send().await.unwrap().status(), 200);
    }
    let header: Value = serde_json::from_slice(&base64_url(after.split('.').next().unwrap())).unwrap();
    assert_eq!(header["kid"], rotated["kid"]);
    assert_eq!(header["alg"], "EdDSA");
}

pub fn base64_url(part: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()
}

#[tokio::test]
async fn self_registration_is_off_by_default_and_works_when_enabled() {
    let body = json!({ "email": "new@example.com", "password": PASSWORD });
    let closed = spawn_app().await;
    let refused = closed.client.post(closed.url("/api/v1/auth/register")).json(&body).send().await.unwrap();
    assert_error(refused, 403, "permission_denied").await;

    let identity = agentry_core::identity::IdentitySettings { self_registration: true, ..Default::default() };
    let open = spawn_app_with(TestOptions { identity, ..TestOptions::default() }).await;
    let created = json_of(open.client.post(open.url("/api/v1/auth/register")).json(&body).send().await.unwrap(), 201).await;
    assert!(created["user_id"].is_string());
    let again = open.client.post(open.url("/api/v1/auth/register")).json(&body).send().await.unwrap();
    assert_error(again, 409, "conflict").await;
    let weak = open.client.post(open.url("/api/v1/auth/register")).json(&json!({ "email": "w@example.com", "password": "weak" })).send().await.unwrap();
    assert_error(weak, 400, "invalid_request").await;
    // A registered user belongs to no tenant until invited.
    let token = open.token("new@example.com").await;
    let me = json_of(open.with(Method::GET, "/api/v1/auth/me", &token).send().await.unwrap(), 200).await;
    assert_eq!(me["tenants"], json!([]));
}

#[tokio::test]
async fn revocation_reaches_another_replica_within_the_cache_bound() {
    // Two instances on one PostgreSQL database, as in a scale-out deployment.
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let a = spawn_app_with(TestOptions { postgres_url: Some(url.clone()), ..TestOptions::default() }).await;
    let b = spawn_app_with(TestOptions { postgres_url: Some(url), ..TestOptions::default() }).await;
    a.bootstrap().await;
    let session = a.token(ADMIN_EMAIL).await;
    let created = a.with(Method::POST, "/api/v1/tenants/acme/api-keys", &session).json(&json!({ "name": "replicated" })).send().await.unwrap();
    let created = json_of(created, 201).await;
    let key = created["key"].as_str().unwrap();
    // B verifies (and caches) the key and A's access token.
    assert_eq!(b.with(Method::GET, "/v1/models", key).send().await.unwrap().status(), 200);
    assert_eq!(b.with(Method::GET, "/api/v1/auth/me", &session).send().await.unwrap().status(), 200);

    let revoke = a.with(Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{}", created["id"].as_str().unwrap()), &session).send().await.unwrap();
    assert_eq!(revoke.status(), 204);
    assert_eq!(a.with(Method::POST, "/api/v1/auth/logout", &session).send().await.unwrap().status(), 204);
    let start = std::time::Instant::now();
    for (path, credential) in [("/v1/models", key), ("/api/v1/auth/me", session.as_str())] {
        loop {
            let status = b.with(Method::GET, path, credential).send().await.unwrap().status();
            if status == 401 {
                break;
            }
            assert!(start.elapsed() < std::time::Duration::from_millis(5_500), "{path} still answers {status} on the other replica");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn password_change_and_account_disable() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let user_id = app.add_member(&admin, "acme", "member@example.com", "user").await;
    let first = app.token("member@example.com").await;
    let second = app.token("member@example.com").await;
    let key = json_of(app.with(Method::POST, "/api/v1/tenants/acme/api-keys", &first).json(&json!({ "name": "k" })).send().await.unwrap(), 201).await;
    let key = key["key"].as_str().unwrap().to_owned();

    let wrong = app
        .with(Method::POST, "/api/v1/auth/password", &first)
        .json(&json!({ "current_password": "nope nope nope 1", "new_password": "another password 22" }))
        .send()
        .await
        .unwrap();
    assert_error(wrong, 400, "invalid_request").await;
    let weak = app.with(Method::POST, "/api/v1/auth/password", &first).json(&json!({ "current_password": PASSWORD, "new_password": "short" })).send().await.unwrap();
    assert_error(weak, 400, "invalid_request").await;
    let changed =
        app.with(Method::POST, "/api/v1/auth/password", &first).json(&json!({ "current_password": PASSWORD, "new_password": "another password 22" })).send().await.unwrap();
    assert_eq!(changed.status(), 204);
    // Other sessions end; this one stays; the old password no longer works.
    assert_error(app.with(Method::GET, "/api/v1/auth/me", &second).send().await.unwrap(), 401, "invalid_token").await;
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &first).send().await.unwrap().status(), 200);
    assert_error(app.login("member@example.com", PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(app.login("member@example.com", "another password 22").await.status(), 200);

    // Disabling ends sessions and API keys; only platform administrators may.
    let not_admin = app.with(Method::POST, &format!("/api/v1/admin/users/{user_id}/disable"), &first).send().await.unwrap();
    assert_error(not_admin, 403, "permission_denied").await;
    let disabled = app.with(Method::POST, &format!("/api/v1/admin/users/{user_id}/disable"), &admin).send().await.unwrap();
    assert_eq!(disabled.status(), 204);
    assert_error(app.with(Method::GET, "/api/v1/auth/me", &first).send().await.unwrap(), 401, "invalid_token").await;
    assert_error(app.with(Method::GET, "/v1/models", &key).send().await.unwrap(), 401, "invalid_api_key").await;
    assert_error(app.login("member@example.com", "another password 22").await, 401, "invalid_credentials").await;
    let enabled = app.with(Method::POST, &format!("/api/v1/admin/users/{user_id}/enable"), &admin).send().await.unwrap();
    assert_eq!(enabled.status(), 204);
    assert_eq!(app.login("member@example.com", "another password 22").await.status(), 200);
}
