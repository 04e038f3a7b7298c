//! Single sign-on end to end against the in-test OpenID Connect provider:
//! start → provider → callback, user creation and group → role mapping,
//! single-use state, and refused forged or replayed ID tokens.

use agentry_core::identity::IdentitySettings;
use agentry_core::identity::oidc::{OidcProviderConfig, RoleMapping};
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{TestApp, TestOptions, assert_error, free_port, spawn_app_with};
use crate::oidc_provider::{CLIENT_ID, CLIENT_SECRET, OidcProvider, ProviderUser};

fn user() -> ProviderUser {
    ProviderUser { subject: "sso-user-1".into(), email: "SSO@Example.com".into(), email_verified: true, groups: vec!["acme-viewers".into()] }
}

async fn setup() -> (TestApp, OidcProvider, reqwest::Client) {
    let provider = OidcProvider::start(user()).await;
    let port = free_port();
    let identity = IdentitySettings {
        oidc: vec![OidcProviderConfig {
            name: "test".into(),
            issuer: provider.issuer().to_owned(),
            client_id: CLIENT_ID.into(),
            client_secret: Some(CLIENT_SECRET.into()),
            redirect_uri: format!("http://127.0.0.1:{port}/api/v1/auth/oidc/test/callback"),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            groups_claim: Some("groups".into()),
            role_mappings: vec![RoleMapping { group: "acme-viewers".into(), tenant: "acme".into(), role: "viewer".into() }],
            create_users: true,
        }],
        ..IdentitySettings::default()
    };
    let app = spawn_app_with(TestOptions { port, identity, ..TestOptions::default() }).await;
    app.bootstrap().await;
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    (app, provider, browser)
}

fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 302, "expected a redirect");
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Start a sign-in and follow it to our callback URL (not yet requested).
async fn callback_url(app: &TestApp, browser: &reqwest::Client) -> String {
    let start = browser.get(app.url("/api/v1/auth/oidc/test/start")).send().await.unwrap();
    let authorize = location(&start);
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("nonce=") && authorize.contains("state="), "{authorize}");
    let back = browser.get(&authorize).send().await.unwrap();
    location(&back)
}

#[tokio::test]
async fn sign_in_creates_the_user_maps_groups_to_roles_and_consumes_the_state() {
    let (app, _provider, browser) = setup().await;
    let listed: Value = app.client.get(app.url("/api/v1/auth/oidc")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0]["name"], "test");

    let callback = callback_url(&app, &browser).await;
    let tokens: Value = browser.get(&callback).send().await.unwrap().json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap_or_else(|| panic!("{tokens}"));
    let me: Value = app.with(Method::GET, "/api/v1/auth/me", access).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["user"]["email"], "sso@example.com");
    assert_eq!(me["tenants"][0]["tenant_slug"], "acme");
    assert_eq!(me["tenants"][0]["role"], "viewer");

    // The same callback again: the state was used up.
    assert_error(browser.get(&callback).send().await.unwrap(), 400, "invalid_request").await;
    // A second sign-in finds the linked user (no duplicate).
    let again: Value = browser.get(callback_url(&app, &browser).await).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["user_id"], tokens["user_id"]);
}

#[tokio::test]
async fn forged_id_tokens_and_wrong_nonces_are_refused_and_audited() {
    let (app, provider, browser) = setup().await;
    provider.forge_signature(true);
    let forged = browser.get(callback_url(&app, &browser).await).send().await.unwrap();
    assert_error(forged, 401, "invalid_token").await;
    provider.forge_signature(false);

    provider.wrong_nonce(true);
    let replayed = browser.get(callback_url(&app, &browser).await).send().await.unwrap();
    assert_error(replayed, 401, "invalid_token").await;
    provider.wrong_nonce(false);

    // An unverified email cannot claim an account.
    provider.set_user(ProviderUser { email_verified: false, subject: "other".into(), ..user() });
    let unverified = browser.get(callback_url(&app, &browser).await).send().await.unwrap();
    assert_error(unverified, 403, "permission_denied").await;

    // A made-up state never matches.
    let made_up = browser.get(app.url("/api/v1/auth/oidc/test/callback?code=x&state=made-up")).send().await.unwrap();
    assert_error(made_up, 400, "invalid_request").await;
    let unknown = browser.get(app.url("/api/v1/auth/oidc/nope/start")).send().await.unwrap();
    assert_error(unknown, 404, "not_found").await;

    let admin = app.token(crate::helpers::ADMIN_EMAIL).await;
    let audit: Value = app.with(Method::GET, "/api/v1/admin/audit?action=auth.oidc_login&outcome=failure", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(audit["data"].as_array().unwrap().len(), 3, "forged, wrong nonce, unverified email: {audit}");
}

/// The code and state in a callback URL.
fn code_and_state(callback: &str) -> Value {
    let url = reqwest::Url::parse(callback).unwrap();
    let get = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap();
    serde_json::json!({ "code": get("code"), "state": get("state") })
}

/// Follow a link flow's URL to the provider and back: the callback URL.
async fn link_callback_url(app: &TestApp, browser: &reqwest::Client, token: &str) -> String {
    let started: Value = app.with(Method::POST, "/api/v1/auth/oidc/test/link", token).send().await.unwrap().json().await.unwrap();
    let back = browser.get(started["url"].as_str().unwrap_or_else(|| panic!("{started}"))).send().await.unwrap();
    location(&back)
}

#[tokio::test]
async fn an_identity_reaches_a_password_account_only_through_a_link_its_owner_finishes() {
    let (app, _provider, browser) = setup().await;
    // sso@example.com already has a password account (an invitation it accepted).
    let admin = app.token(crate::helpers::ADMIN_EMAIL).await;
    let account = app.add_member(&admin, "acme", "sso@example.com", "user").await;

    // Signing in through the provider does not take the account over.
    let refused = browser.get(callback_url(&app, &browser).await).send().await.unwrap();
    let error = assert_error(refused, 403, "permission_denied").await;
    assert!(error["message"].as_str().unwrap().contains("/link"), "{error}");

    // The account's owner links it: a browser landing on the link's callback (another person's, say) links nothing.
    let token = app.token("sso@example.com").await;
    let landed = browser.get(link_callback_url(&app, &browser, &token).await).send().await.unwrap();
    assert_error(landed, 403, "permission_denied").await;
    // Nor does another signed-in user finishing it.
    let other = link_callback_url(&app, &browser, &token).await;
    let (status, _) = crate::helpers::send(&app, &admin, Method::POST, "/api/v1/auth/oidc/test/link/callback", Some(code_and_state(&other))).await;
    assert_eq!(status, 403);
    // The owner finishing their own link flow does.
    let mine = link_callback_url(&app, &browser, &token).await;
    let (status, linked) = crate::helpers::send(&app, &token, Method::POST, "/api/v1/auth/oidc/test/link/callback", Some(code_and_state(&mine))).await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(linked["user_id"], account.as_str());

    // From now on the provider signs this account in.
    let tokens: Value = browser.get(callback_url(&app, &browser).await).send().await.unwrap().json().await.unwrap();
    assert_eq!(tokens["user_id"], account.as_str(), "{tokens}");
}
