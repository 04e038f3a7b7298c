//! Secrets at rest: signing keys, TOTP secrets and MCP server headers are
//! stored sealed; rows an older version stored in clear are sealed at start
//! and keep working; `agentry keys rotate-master` reseals everything under a
//! new file-stored key, after which sign-in with TOTP, JWTs, MCP headers and
//! the audit chain still work; the data dir and database files are private.

use std::path::Path;
use std::process::Command;

use agentry_core::secrets::{Place, Sealer};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, MASTER_KEY, PASSWORD, TestApp, TestOptions, free_port, spawn_app_with};
use crate::mfa::{code, now};

const BIN: &str = env!("CARGO_BIN_EXE_agentry");

/// A server on a fixed port (a registered MCP server's URL names it across restarts) that may call itself.
fn options(port: u16, master_key_from_data_dir: bool) -> TestOptions {
    let mut options = TestOptions { port, master_key_from_data_dir, ..TestOptions::default() };
    options.agents.outbound.allow = vec![agentry_core::outbound::AllowEntry::parse("127.0.0.1").unwrap()];
    options
}

/// Stop the server gracefully and hand back its data dir.
async fn stop(mut app: TestApp) -> tempfile::TempDir {
    app.shutdown.cancel();
    let _ = app.server.await;
    app.data_dir.take().unwrap()
}

/// The raw stored values: (signing keys' private_der, users' totp_secret, mcp_servers' headers).
async fn raw_rows(database_url: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
    let keys = sqlx::query_scalar("SELECT private_der FROM signing_keys").fetch_all(&pool).await.unwrap();
    let totp = sqlx::query_scalar("SELECT totp_secret FROM users WHERE totp_secret IS NOT NULL").fetch_all(&pool).await.unwrap();
    let headers = sqlx::query_scalar("SELECT headers FROM mcp_servers").fetch_all(&pool).await.unwrap();
    pool.close().await;
    (keys, totp, headers)
}

/// Enrol TOTP for the admin (confirmed with the current step); returns the secret.
async fn enrol_totp(app: &TestApp, session: &str) -> String {
    let enrolment: Value = app.with(Method::POST, "/api/v1/auth/mfa/totp", session).json(&json!({})).send().await.unwrap().json().await.unwrap();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let confirmed = app.with(Method::POST, "/api/v1/auth/mfa/totp/confirm", session).json(&json!({ "code": code(&secret, now()) })).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);
    secret
}

/// Register this server's own `/mcp` as the MCP server `self`, authorized by `bearer`.
async fn register_self(app: &TestApp, session: &str, bearer: &str) {
    let server = json!({ "name": "self", "url": app.url("/mcp"), "headers": { "Authorization": format!("Bearer {bearer}") } });
    assert_eq!(app.with(Method::POST, "/api/v1/mcp-servers", session).json(&server).send().await.unwrap().status(), 201);
}

/// The tools of `self`: proves its stored Authorization header opened and was sent.
async fn self_tools_work(app: &TestApp, session: &str) {
    let response = app.with(Method::GET, "/api/v1/mcp-servers/self/tools", session).send().await.unwrap();
    let status = response.status();
    let tools: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{tools}");
    assert!(tools["data"].as_array().unwrap().iter().any(|t| t["name"] == "agent_math"), "{tools}");
}

/// Password, then the TOTP code of the next step: a fresh access token.
async fn sign_in_with_totp(app: &TestApp, secret: &str) -> String {
    let login: Value = app.login(ADMIN_EMAIL, PASSWORD).await.json().await.unwrap();
    assert_eq!(login["mfa_required"], true, "{login}");
    let body = json!({ "mfa_token": login["mfa_token"], "code": code(secret, now() + 30) });
    let verified: Value = app.client.post(app.url("/api/v1/auth/mfa/verify")).json(&body).send().await.unwrap().json().await.unwrap();
    verified["access_token"].as_str().unwrap_or_else(|| panic!("TOTP sign-in: {verified}")).to_owned()
}

fn assert_all_sealed(rows: &(Vec<String>, Vec<String>, Vec<String>), key_id: &str) {
    let (keys, totp, headers) = rows;
    assert!(!keys.is_empty() && totp.len() == 1 && headers.len() == 1, "{rows:?}");
    for value in keys.iter().chain(totp).chain(headers) {
        assert!(value.starts_with(&format!("enc:v1:{key_id}:")), "sealed under {key_id}: {value}");
    }
}

/// The bytes of the database and its WAL, for "no plaintext anywhere in the files".
fn database_bytes(dir: &Path) -> Vec<u8> {
    ["agentry.db", "agentry.db-wal"].iter().filter_map(|name| std::fs::read(dir.join(name)).ok()).flatten().collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn secrets_are_stored_sealed_and_rows_stored_in_clear_are_sealed_at_start() {
    let port = free_port();
    let app = spawn_app_with(options(port, false)).await;
    app.bootstrap().await;
    let session = app.token(ADMIN_EMAIL).await;
    let secret = enrol_totp(&app, &session).await;
    register_self(&app, &session, &session).await;
    self_tools_work(&app, &session).await;

    // What the database holds: sealed values only, bound to the test master key.
    let sealer = Sealer::from_master_keys(MASTER_KEY.as_bytes(), []);
    let rows = raw_rows(&app.database_url).await;
    assert_all_sealed(&rows, sealer.current_id());
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();
    let files = database_bytes(&data_dir);
    assert!(!contains(&files, &secret), "the TOTP secret is nowhere in the database files");
    assert!(!contains(&files, &session), "the MCP server's Authorization header is nowhere in the database files");
    assert!(!contains(&files, "Authorization"), "header names are sealed too");

    // A sealed value copied to another row does not open there.
    let user_id = sqlx::query_scalar::<_, String>("SELECT id FROM users WHERE totp_secret IS NOT NULL")
        .fetch_one(&sqlx::SqlitePool::connect(&app.database_url).await.unwrap())
        .await
        .unwrap();
    assert!(sealer.open(&Place::totp_secret(&user_id), &rows.1[0]).is_ok());
    assert!(sealer.open(&Place::totp_secret("someone-else"), &rows.1[0]).is_err());

    // Simulate an older version: every secret back in clear, then start again.
    let database_url = app.database_url.clone();
    let data_dir = stop(app).await;
    let pool = sqlx::SqlitePool::connect(&database_url).await.unwrap();
    let stored: Vec<(String, String)> = sqlx::query_as("SELECT kid, private_der FROM signing_keys").fetch_all(&pool).await.unwrap();
    for (kid, sealed) in stored {
        let clear = sealer.open_string(&Place::signing_key(&kid), &sealed).unwrap();
        sqlx::query("UPDATE signing_keys SET private_der = $1 WHERE kid = $2").bind(clear).bind(kid).execute(&pool).await.unwrap();
    }
    sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2").bind(&secret).bind(&user_id).execute(&pool).await.unwrap();
    let (tenant_id, sealed_headers): (String, String) = sqlx::query_as("SELECT tenant_id, headers FROM mcp_servers").fetch_one(&pool).await.unwrap();
    let clear_headers = sealer.open_string(&Place::mcp_headers(&tenant_id, "self"), &sealed_headers).unwrap();
    assert_eq!(clear_headers, json!({ "Authorization": format!("Bearer {session}") }).to_string());
    sqlx::query("UPDATE mcp_servers SET headers = $1").bind(&clear_headers).execute(&pool).await.unwrap();
    pool.close().await;
    assert!(raw_rows(&database_url).await.1[0] == secret, "the row is in clear before the restart");

    let app = spawn_app_with(TestOptions { data_dir: Some(data_dir), ..options(port, false) }).await;
    assert_all_sealed(&raw_rows(&app.database_url).await, sealer.current_id());
    // The JWT issued before still verifies, TOTP sign-in works, the MCP header is still sent.
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &session).send().await.unwrap().status(), 200);
    let fresh = sign_in_with_totp(&app, &secret).await;
    self_tools_work(&app, &fresh).await;
    // A second start has nothing left to seal and changes nothing.
    let before = raw_rows(&app.database_url).await;
    let data_dir = stop(app).await;
    let app = spawn_app_with(TestOptions { data_dir: Some(data_dir), ..options(port, false) }).await;
    assert_eq!(raw_rows(&app.database_url).await, before);
}

#[tokio::test]
async fn rotate_master_reseals_every_secret_and_everything_keeps_working() {
    let port = free_port();
    let app = spawn_app_with(options(port, true)).await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();
    let old_key = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    let settings = agentry_server::Settings { database_url: Some(app.database_url.clone()), data_dir: data_dir.clone(), ..agentry_server::Settings::default() };
    agentry_server::startup::bootstrap(&settings, "acme", Some("Acme"), ADMIN_EMAIL, PASSWORD).await.unwrap();
    let session = app.token(ADMIN_EMAIL).await;
    let secret = enrol_totp(&app, &session).await;
    register_self(&app, &session, &session).await;
    self_tools_work(&app, &session).await;
    let old_id = Sealer::from_master_keys(old_key.as_bytes(), []).current_id().to_owned();
    assert_all_sealed(&raw_rows(&app.database_url).await, &old_id);

    // The key and database files are owner-only while the server runs (a
    // data dir the server creates is 0700: see the test below; this one the test made).
    #[cfg(unix)]
    {
        for name in ["master.key", "agentry.db", "agentry.db-wal", "agentry.db-shm"] {
            assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
        }
    }

    let database_url = app.database_url.clone();
    let dir = stop(app).await;
    let output = Command::new(BIN)
        .args(["--data-dir", data_dir.to_str().unwrap(), "keys", "rotate-master"])
        .env_remove("AGENTRY_MASTER_KEY")
        .env_remove("AGENTRY_DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let new_key = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    assert_ne!(new_key, old_key);
    assert!(stderr.contains(&new_key), "the new key is shown once: {stderr}");
    assert!(!stderr.contains(&old_key) && !String::from_utf8_lossy(&output.stdout).contains(&new_key));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let new_id = Sealer::from_master_keys(new_key.as_bytes(), []).current_id().to_owned();
    assert_eq!((report["old_key_id"].as_str(), report["new_key_id"].as_str()), (Some(old_id.as_str()), Some(new_id.as_str())), "{report}");
    assert!(report["resealed"].as_u64().unwrap() >= 3, "{report}");
    let previous = std::fs::read_to_string(data_dir.join("master.key.previous")).unwrap();
    assert!(previous.lines().any(|line| line.trim() == old_key), "the old key is kept for the audit chain");
    assert!(!data_dir.join("master.key.next").exists());
    #[cfg(unix)]
    for name in ["master.key", "master.key.previous"] {
        assert_eq!(mode(&data_dir.join(name)), 0o600, "{name}");
    }
    assert_all_sealed(&raw_rows(&database_url).await, &new_id);

    // Loosened database file modes are tightened again at start.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir.join("agentry.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let app = spawn_app_with(TestOptions { data_dir: Some(dir), ..options(port, true) }).await;
    #[cfg(unix)]
    assert_eq!(mode(&data_dir.join("agentry.db")), 0o600);
    // JWTs issued before still verify; TOTP sign-in works; the MCP header (that JWT) is still sent.
    assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &session).send().await.unwrap().status(), 200);
    let fresh = sign_in_with_totp(&app, &secret).await;
    self_tools_work(&app, &fresh).await;
    // The audit chain written under the old key verifies, the rotation is in it, and only the new key is a bearer credential.
    let verification: Value = app.with(Method::GET, "/api/v1/admin/audit/verify", new_key.trim()).send().await.unwrap().json().await.unwrap();
    assert_eq!(verification["valid"], true, "{verification}");
    let events: Value = app.with(Method::GET, "/api/v1/admin/audit?action=master_key.rotate", &fresh).send().await.unwrap().json().await.unwrap();
    assert_eq!(events["data"].as_array().map(Vec::len), Some(1), "{events}");
    assert_eq!(app.with(Method::GET, "/api/v1/admin/audit/verify", old_key.trim()).send().await.unwrap().status(), 401);
}

#[test]
fn rotate_master_refuses_a_configured_key_and_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let configured = Command::new(BIN).args(["--data-dir", data_dir, "keys", "rotate-master"]).env("AGENTRY_MASTER_KEY", "sk-configured-0123456789abcdef").output().unwrap();
    assert!(!configured.status.success());
    let stderr = String::from_utf8_lossy(&configured.stderr);
    assert!(stderr.contains("comes from configuration") && stderr.contains("master.key.previous"), "{stderr}");
    assert!(!stderr.contains("sk-configured-0123456789abcdef"), "the key is not echoed: {stderr}");
    let missing = Command::new(BIN).args(["--data-dir", data_dir, "keys", "rotate-master"]).env_remove("AGENTRY_MASTER_KEY").output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nothing to rotate"), "{}", String::from_utf8_lossy(&missing.stderr));
    assert!(!dir.path().join("master.key").exists(), "refusing does not create a key");
}

#[cfg(unix)]
#[test]
fn a_new_data_dir_is_0700_and_its_database_0600() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("nested/data");
    let output = Command::new(BIN).args(["--data-dir", data_dir.to_str().unwrap(), "migrate"]).env_remove("AGENTRY_DATABASE_URL").output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("agentry.db")), 0o600);
    let other = dir.path().join("other/deeper");
    agentry_server::startup::create_data_dir(&other).unwrap();
    assert_eq!(mode(&other), 0o700);
}
