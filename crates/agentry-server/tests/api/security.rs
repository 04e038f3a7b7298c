//! Attacks on tokens and on the audit log: forged, expired, premature,
//! tampered and `alg: none` tokens are refused; an altered or deleted audit
//! row is found by the verify endpoint.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, TestApp, assert_error, spawn_app};

/// The current signing key's kid and private key, read from the database and
/// opened as an attacker with a DB copy and the master key would.
async fn signing_key(app: &TestApp) -> (String, EncodingKey) {
    let db = agentry_db::Db::connect(&app.database_url).await.unwrap();
    let keys = db.signing_keys(0).await.unwrap();
    let key = keys.iter().find(|k| k.retired_at_ms.is_none()).unwrap();
    (key.kid.clone(), EncodingKey::from_ed_der(&STANDARD.decode(crate::helpers::opened_private_der(key)).unwrap()))
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn sign(kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let header = Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::EdDSA) };
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn rejected(app: &TestApp, token: &str, code: &str) {
    assert_error(app.with(Method::GET, "/api/v1/auth/me", token).send().await.unwrap(), 401, code).await;
}

#[tokio::test]
async fn forged_and_stale_tokens_are_refused() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let valid = app.token(ADMIN_EMAIL).await;
    let claims = claims_of(&valid);
    let (kid, key) = signing_key(&app).await;
    // The real key re-signing the real claims is accepted (the harness works).
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &sign(&kid, &key, &claims)).send().await.unwrap().status(), 200);

    let now = claims["iat"].as_i64().unwrap();
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 60);
    expired["iat"] = json!(now - 1000);
    expired["nbf"] = json!(now - 1000);
    rejected(&app, &sign(&kid, &key, &expired), "token_expired").await;

    let mut premature = claims.clone();
    premature["nbf"] = json!(now + 3600);
    premature["exp"] = json!(now + 4000);
    rejected(&app, &sign(&kid, &key, &premature), "invalid_token").await;

    let mut other_audience = claims.clone();
    other_audience["aud"] = json!("someone-else");
    rejected(&app, &sign(&kid, &key, &other_audience), "invalid_token").await;

    // Another Ed25519 key under the real kid; and the real key under an unknown kid.
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let stranger = EncodingKey::from_ed_der(pkcs8.as_ref());
    rejected(&app, &sign(&kid, &stranger, &claims), "invalid_token").await;
    rejected(&app, &sign("k-unknown", &key, &claims), "invalid_token").await;

    // Tampered payload: another user id with the original signature.
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut tampered = claims.clone();
    tampered["sub"] = json!("00000000-0000-0000-0000-000000000000");
    parts[1] = URL_SAFE_NO_PAD.encode(tampered.to_string());
    rejected(&app, &parts.join("."), "invalid_token").await;

    // alg: none, and HS256 keyed with the public key (algorithm confusion).
    let none_header = URL_SAFE_NO_PAD.encode(json!({ "alg": "none", "typ": "JWT", "kid": kid }).to_string());
    let none_token = format!("{none_header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()));
    rejected(&app, &none_token, "invalid_token").await;
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let public = jwks["keys"][0]["x"].as_str().unwrap();
    let hs_header = Header { kid: Some(kid.clone()), ..Header::new(Algorithm::HS256) };
    let confused = jsonwebtoken::encode(&hs_header, &claims, &EncodingKey::from_secret(public.as_bytes())).unwrap();
    rejected(&app, &confused, "invalid_token").await;

    // Garbage and an unknown API key.
    rejected(&app, "not.a.jwt", "invalid_token").await;
    rejected(&app, &format!("agk_{}", "A".repeat(43)), "invalid_api_key").await;

    // Forgeries are audited (expiry is not: every client meets it), once
    // per kind and address per minute; the metric counts every one.
    let admin = app.token(ADMIN_EMAIL).await;
    let audit: Value = app.with(Method::GET, "/api/v1/admin/audit?action=auth.token_rejected&limit=1000", &admin).send().await.unwrap().json().await.unwrap();
    let reasons: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["metadata"]["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 1, "only the first forgery from this address: {reasons:?}");
    let keys: Value = app.with(Method::GET, "/api/v1/admin/audit?action=auth.api_key_rejected", &admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["data"].as_array().unwrap().len(), 1);
    let metrics = app.metrics().await;
    assert!(metrics.contains("auth_rejected_credentials_total{kind=\"auth.token_rejected\"} 8"), "{metrics}");
}

async fn verify(app: &TestApp, token: &str) -> Value {
    app.with(Method::GET, "/api/v1/tenants/acme/audit/verify", token).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn audit_verify_finds_altered_and_deleted_rows() {
    let app = spawn_app().await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    for i in 0..4 {
        app.add_member(&admin, "acme", &format!("member{i}@example.com"), "viewer").await;
    }
    let clean = verify(&app, &admin).await;
    assert_eq!(clean["valid"], true, "{clean}");
    // The bootstrap, then per member: invitation.create, invitation.accept, membership.create.
    assert_eq!(clean["events"], 13);

    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    sqlx::query("UPDATE audit_events SET metadata = '{\"email\":\"mallory@example.com\",\"role\":\"admin\"}' WHERE chain = $1 AND seq = 3")
        .bind(&tenant)
        .execute(&pool)
        .await
        .unwrap();
    let altered = verify(&app, &admin).await;
    assert_eq!(altered["valid"], false);
    assert_eq!(altered["first_broken_seq"], 3, "{altered}");

    // Restore seq 3's content by deleting it: now a gap.
    sqlx::query("DELETE FROM audit_events WHERE chain = $1 AND seq = 3").bind(&tenant).execute(&pool).await.unwrap();
    let deleted = verify(&app, &admin).await;
    assert_eq!(deleted["valid"], false);
    assert_eq!(deleted["first_broken_seq"], 3, "{deleted}");
    assert!(deleted["reason"].as_str().unwrap().contains("missing"));
}

#[tokio::test]
async fn audit_export_is_jsonl_or_csv_and_is_itself_audited() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let jsonl = app.with(Method::GET, "/api/v1/tenants/acme/audit/export", &admin).send().await.unwrap();
    assert_eq!(jsonl.headers()["content-type"], "application/x-ndjson");
    let text = jsonl.text().await.unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["action"], "admin.bootstrap");
    let csv = app.with(Method::GET, "/api/v1/tenants/acme/audit/export?format=csv", &admin).send().await.unwrap().text().await.unwrap();
    assert!(csv.starts_with("seq,at_ms,actor_type"));
    assert!(csv.contains("audit.export"), "the first export is in the second");
    let bad = app.with(Method::GET, "/api/v1/tenants/acme/audit/export?format=xml", &admin).send().await.unwrap();
    assert_error(bad, 400, "invalid_request").await;
}
