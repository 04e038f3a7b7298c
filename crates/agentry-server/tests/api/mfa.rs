//! TOTP multi-factor authentication: enrolment, two-step sign-in, single-use
//! codes and recovery codes, the tenant "MFA required" policy, disabling.

use reqwest::Method;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::helpers::{ADMIN_EMAIL, PASSWORD, TestApp, assert_error, spawn_app};

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The admin's TOTP code for `secret` at unix time `at`.
pub fn code(secret: &str, at: u64) -> String {
    TOTP::new(Algorithm::SHA1, 6, 1, 30, Secret::Encoded(secret.to_owned()).to_bytes().unwrap(), Some("Agentry".into()), ADMIN_EMAIL.into()).unwrap().generate(at)
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn challenge(app: &TestApp) -> String {
    let login: Value = app.login(ADMIN_EMAIL, PASSWORD).await.json().await.unwrap();
    assert_eq!(login["mfa_required"], true, "{login}");
    assert!(login.get("access_token").is_none(), "no tokens before the second factor");
    login["mfa_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn totp_enrolment_two_step_login_recovery_codes_and_tenant_policy() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let session = app.token(ADMIN_EMAIL).await;

    let enrolment: Value = post(&app, "/api/v1/auth/mfa/totp", Some(&session), json!({})).await.json().await.unwrap();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert!(enrolment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Agentry:admin%40example.com?"), "{enrolment}");
    let wrong = post(&app, "/api/v1/auth/mfa/totp/confirm", Some(&session), json!({ "code": "000000" })).await;
    assert_error(wrong, 400, "invalid_request").await;
    let confirmed: Value = post(&app, "/api/v1/auth/mfa/totp/confirm", Some(&session), json!({ "code": code(&secret, now()) })).await.json().await.unwrap();
    let recovery: Vec<String> = confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);

    // Password alone now yields a challenge; the next step's code opens a session, once.
    let token = challenge(&app).await;
    let next_code = code(&secret, now() + 30);
    let verified: Value = post(&app, "/api/v1/auth/mfa/verify", None, json!({ "mfa_token": token, "code": next_code })).await.json().await.unwrap();
    let mfa_session = verified["access_token"].as_str().unwrap().to_owned();
    let replay = post(&app, "/api/v1/auth/mfa/verify", None, json!({ "mfa_token": challenge(&app).await, "code": next_code })).await;
    assert_error(replay, 401, "invalid_credentials").await;

    // A recovery code works once.
    let with_recovery = post(&app, "/api/v1/auth/mfa/verify", None, json!({ "mfa_token": challenge(&app).await, "recovery_code": recovery[0] })).await;
    assert_eq!(with_recovery.status(), 200);
    let again = post(&app, "/api/v1/auth/mfa/verify", None, json!({ "mfa_token": challenge(&app).await, "recovery_code": recovery[0] })).await;
    assert_error(again, 401, "invalid_credentials").await;
    // An access token is not a challenge.
    let confused = post(&app, "/api/v1/auth/mfa/verify", None, json!({ "mfa_token": mfa_session, "recovery_code": recovery[1] })).await;
    assert_error(confused, 401, "invalid_token").await;

    // Tenant policy: sessions without MFA lose access to the tenant.
    app.add_member(&mfa_session, "acme", "plain@example.com", "user").await;
    let plain = app.token("plain@example.com").await;
    assert_eq!(app.with(Method::GET, "/api/v1/tenants/acme/roles", &plain).send().await.unwrap().status(), 200);
    let policy = app.with(Method::PATCH, "/api/v1/tenants/acme", &mfa_session).json(&json!({ "mfa_required": true })).send().await.unwrap();
    assert_eq!(policy.status(), 204);
    assert_error(app.with(Method::GET, "/api/v1/tenants/acme/roles", &plain).send().await.unwrap(), 403, "mfa_required").await;
    assert_eq!(app.with(Method::GET, "/api/v1/tenants/acme/roles", &mfa_session).send().await.unwrap().status(), 200);

    // Disabling needs a valid factor.
    let refused = post(&app, "/api/v1/auth/mfa/disable", Some(&mfa_session), json!({ "code": "123456" })).await;
    assert_error(refused, 400, "invalid_request").await;
    let disabled = post(&app, "/api/v1/auth/mfa/disable", Some(&mfa_session), json!({ "recovery_code": recovery[2] })).await;
    assert_eq!(disabled.status(), 204);
    let login: Value = app.login(ADMIN_EMAIL, PASSWORD).await.json().await.unwrap();
    assert!(login["access_token"].is_string(), "{login}");

    let admin = app.token(ADMIN_EMAIL).await;
    let audit: Value = app.with(Method::GET, "/api/v1/admin/audit?limit=1000", &admin).send().await.unwrap().json().await.unwrap();
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for expected in ["mfa.enrol", "mfa.enrol_confirm", "mfa.verify", "mfa.disable"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
}
