//! An OpenID Connect provider the tests start themselves: discovery, JWKS
//! (an ES256 key), an authorize endpoint that signs in one configured user
//! at once, and a token endpoint that checks the client secret, the
//! redirect URI and the PKCE verifier before issuing an ID token. Switches
//! make it misbehave: sign with a key it does not publish, or echo the
//! wrong nonce.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "agentry-test";
pub const CLIENT_SECRET: &str = "provider-secret";

/// The user the provider signs in.
#[derive(Clone)]
pub struct ProviderUser {
    pub subject: String,
    pub email: String,
    pub email_verified: bool,
    pub groups: Vec<String>,
}

struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct Inner {
    issuer: String,
    key: EncodingKey,
    stranger: EncodingKey,
    jwk: Value,
    user: Mutex<ProviderUser>,
    grants: Mutex<HashMap<String, Grant>>,
    pub forge_signature: AtomicBool,
    pub wrong_nonce: AtomicBool,
}

#[derive(Clone)]
pub struct OidcProvider(Arc<Inner>);

fn p256_key() -> (Vec<u8>, Vec<u8>) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    (pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
}

impl OidcProvider {
    pub async fn start(user: ProviderUser) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let (private, public) = p256_key();
        let (stranger, _) = p256_key();
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "test-key-1",
            "x": URL_SAFE_NO_PAD.encode(&public[1..33]), "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
        });
        let provider = Self(Arc::new(Inner {
            issuer,
            key: EncodingKey::from_ec_der(&private),
            stranger: EncodingKey::from_ec_der(&stranger),
            jwk,
            user: Mutex::new(user),
            grants: Mutex::new(HashMap::new()),
            forge_signature: AtomicBool::new(false),
            wrong_nonce: AtomicBool::new(false),
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        provider
    }

    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    pub fn set_user(&self, user: ProviderUser) {
        *self.0.user.lock() = user;
    }

    pub fn forge_signature(&self, on: bool) {
        self.0.forge_signature.store(on, Ordering::SeqCst);
    }

    pub fn wrong_nonce(&self, on: bool) {
        self.0.wrong_nonce.store(on, Ordering::SeqCst);
    }
}

async fn discovery(State(p): State<OidcProvider>) -> Json<Value> {
    let issuer = &p.0.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(p): State<OidcProvider>) -> Json<Value> {
    Json(json!({ "keys": [p.0.jwk] }))
}

async fn authorize(State(p): State<OidcProvider>, Query(q): Query<HashMap<String, String>>) -> Response {
    let ok = q.get("response_type").map(String::as_str) == Some("code")
        && q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("code_challenge_method").map(String::as_str) == Some("S256")
        && q.get("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid"));
    let (Some(redirect_uri), Some(state), Some(nonce), Some(challenge), true) = (q.get("redirect_uri"), q.get("state"), q.get("nonce"), q.get("code_challenge"), ok) else {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    };
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    p.0.grants.lock().insert(code.clone(), Grant { nonce: nonce.clone(), challenge: challenge.clone(), redirect_uri: redirect_uri.clone() });
    let location = format!("{redirect_uri}?code={code}&state={state}");
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

fn client_authenticated(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    basic.as_deref() == Some(&format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        || (form.get("client_id").map(String::as_str) == Some(CLIENT_ID) && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET))
}

fn token_error(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

async fn token(State(p): State<OidcProvider>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    if !client_authenticated(&headers, &form) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client" }))).into_response();
    }
    let Some(grant) = form.get("code").and_then(|c| p.0.grants.lock().remove(c)) else { return token_error("invalid_grant") };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
        || form.get("grant_type").map(String::as_str) != Some("authorization_code")
    {
        return token_error("invalid_grant");
    }
    let user = p.0.user.lock().clone();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let nonce = if p.0.wrong_nonce.load(Ordering::SeqCst) { "not-the-nonce".to_owned() } else { grant.nonce };
    let claims = json!({
        "iss": p.0.issuer, "sub": user.subject, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": nonce,
        "email": user.email, "email_verified": user.email_verified, "name": "Single Sign-On", "groups": user.groups,
    });
    let key = if p.0.forge_signature.load(Ordering::SeqCst) { &p.0.stranger } else { &p.0.key };
    let header = Header { kid: Some("test-key-1".into()), ..Header::new(Algorithm::ES256) };
    let id_token = jsonwebtoken::encode(&header, &claims, key).unwrap();
    Json(json!({ "access_token": "provider-access-token", "token_type": "Bearer", "expires_in": 300, "id_token": id_token })).into_response()
}
