//! Operating an installation: a backup taken with `agentry backup` while
//! clients write holds every write acknowledged before it began, restores
//! into an empty data dir only with the right master key, and the restored
//! server rebuilds its search index from the stored chunks; `agentry
//! reindex` drops an index for the same rebuild; a PostgreSQL that goes away
//! makes requests fail fast with 503, and the server recovers without a
//! restart when it is back.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{MASTER_KEY, TestOptions, mock_knowledge, send, spawn_app_with, wait_ingested};

const BIN: &str = env!("CARGO_BIN_EXE_agentry");

/// Run the `agentry` binary on `data_dir` with `args` and the environment `env`; (success, stderr).
async fn agentry(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(BIN);
    command.arg("--data-dir").arg(data_dir).args(args).env_remove("AGENTRY_MASTER_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// How many passages a keyword search finds.
async fn found(app: &crate::helpers::TestApp, token: &str, query: &str) -> usize {
    let (status, found) = send(app, token, Method::POST, "/api/v1/search", Some(json!({ "query": query, "mode": "keyword" }))).await;
    assert_eq!(status, 200, "{found}");
    found["results"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_backup_taken_under_write_load_restores_every_acknowledged_write() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let token = app.token(crate::helpers::ADMIN_EMAIL).await;
    let (_, collection) = send(&app, &token, Method::POST, "/api/v1/collections", Some(json!({ "name": "manuals" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();
    let form = reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"The flux capacitor needs 1.21 gigawatts of power.".to_vec()).file_name("flux.txt"));
    let accepted: Value = app.with(Method::POST, &format!("/api/v1/collections/{collection}/documents"), &token).multipart(form).send().await.unwrap().json().await.unwrap();
    wait_ingested(&app, &token, &accepted).await;
    assert_eq!(found(&app, &token, "flux capacitor gigawatts").await, 1);

    // Writers create collections without pause; each acknowledged one is noted with when.
    let acknowledged: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (client, url, token, acknowledged, stop) = (app.client.clone(), app.url("/api/v1/collections"), token.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.is_cancelled() {
                    n += 1;
                    let response = client.post(&url).bearer_auth(&token).json(&json!({ "name": format!("load-{writer}-{n}") })).send().await.unwrap();
                    assert_eq!(response.status(), 201);
                    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                    acknowledged.lock().push((id, Instant::now()));
                }
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("agentry-backup.zip");
    let began = Instant::now();
    let (ok, stderr) = agentry(app.data_dir.as_ref().unwrap().path(), &["backup", "--out", backup.to_str().unwrap()], &[("AGENTRY_MASTER_KEY", MASTER_KEY)]).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("does not include the master key"), "{stderr}");
    // The installation records the backup for the compliance report.
    let (_, report) = send(&app, &token, Method::GET, "/api/v1/tenants/acme/compliance/report", None).await;
    assert_eq!(report["last_backup"]["bytes"].as_u64(), Some(std::fs::metadata(&backup).unwrap().len()), "{report}");
    assert_eq!(report["last_backup"]["includes_master_key"], false);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.cancel();
    for writer in writers {
        writer.await.unwrap();
    }
    let before: BTreeSet<String> = acknowledged.lock().iter().filter(|(_, at)| *at < began).map(|(id, _)| id.clone()).collect();
    let after = acknowledged.lock().len() - before.len();
    assert!(before.len() >= 10 && after > 0, "writes went on around the backup: {} before, {after} after", before.len());
    #[cfg(unix)]
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions()) & 0o777, 0o600);
    app.shutdown.cancel();

    // Without the master key, or with another one, nothing is restored.
    let target = tempfile::tempdir().unwrap();
    let (ok, stderr) = agentry(target.path(), &["restore", backup.to_str().unwrap()], &[]).await;
    assert!(!ok && stderr.contains("taken without the master key") && stderr.contains("AGENTRY_MASTER_KEY"), "{stderr}");
    let (ok, stderr) = agentry(target.path(), &["restore", backup.to_str().unwrap()], &[("AGENTRY_MASTER_KEY", "sk-another-master-key-000000")]).await;
    assert!(!ok && stderr.contains("is not the one this backup was taken with"), "{stderr}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0, "a refused restore writes nothing");
    let (ok, stderr) = agentry(target.path(), &["restore", backup.to_str().unwrap()], &[("AGENTRY_MASTER_KEY", MASTER_KEY)]).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = agentry(target.path(), &["restore", backup.to_str().unwrap()], &[("AGENTRY_MASTER_KEY", MASTER_KEY)]).await;
    assert!(!ok && stderr.contains("is not empty"), "a restore never overwrites: {stderr}");

    let restored = spawn_app_with(TestOptions { data_dir: Some(target), ..mock_knowledge() }).await;
    let token = restored.token(crate::helpers::ADMIN_EMAIL).await;
    for id in &before {
        let (status, body) = send(&restored, &token, Method::GET, &format!("/api/v1/collections/{id}"), None).await;
        assert_eq!(status, 200, "collection {id}, acknowledged before the backup began, is restored: {body}");
    }
    // The index was not in the backup: rebuilt from the stored chunks on first use.
    assert_eq!(found(&restored, &token, "flux capacitor gigawatts").await, 1);
    let (status, verified) = send(&restored, MASTER_KEY, Method::GET, "/api/v1/admin/audit/verify", None).await;
    assert_eq!(status, 200, "{verified}");
    restored.shutdown.cancel();
}

#[tokio::test]
async fn a_backup_with_the_master_key_restores_alone_and_reindex_rebuilds_the_index() {
    let options = TestOptions { master_key_from_data_dir: true, ..mock_knowledge() };
    let app = spawn_app_with(options).await;
    let key = std::fs::read_to_string(app.data_dir.as_ref().unwrap().path().join("master.key")).unwrap();
    let (status, tenant) = send(&app, &key, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "globex", "name": "Globex" }))).await;
    assert_eq!(status, 201, "{tenant}");
    let backup_dir = tempfile::tempdir().unwrap();
    let backup = backup_dir.path().join("with-key.zip");
    let (ok, stderr) = agentry(app.data_dir.as_ref().unwrap().path(), &["backup", "--include-master-key", "--out", backup.to_str().unwrap()], &[]).await;
    assert!(ok && stderr.contains("includes the master key"), "{stderr}");
    let (ok, stderr) = agentry(app.data_dir.as_ref().unwrap().path(), &["backup", "--out", backup.to_str().unwrap()], &[]).await;
    assert!(!ok && stderr.contains("already exists"), "never overwrites a file: {stderr}");
    app.shutdown.cancel();

    let target = tempfile::tempdir().unwrap();
    let (ok, stderr) = agentry(target.path(), &["restore", backup.to_str().unwrap()], &[]).await;
    assert!(ok, "{stderr}");
    assert_eq!(std::fs::read_to_string(target.path().join("master.key")).unwrap(), key);
    let restored = spawn_app_with(TestOptions { data_dir: Some(target), master_key_from_data_dir: true, ..mock_knowledge() }).await;
    let (status, tenants) = send(&restored, &key, Method::GET, "/api/v1/tenants", None).await;
    assert_eq!(status, 200, "{tenants}");
    assert!(tenants.to_string().contains("globex"), "{tenants}");
    let data_dir = restored.data_dir.as_ref().unwrap().path().to_path_buf();
    restored.shutdown.cancel();
    restored.server.await.unwrap().unwrap();
    let (ok, stderr) = agentry(&data_dir, &["reindex"], &[]).await;
    assert!(ok && stderr.contains("the next server to open it rebuilds it"), "{stderr}");
}

#[tokio::test]
async fn backup_refuses_what_it_cannot_copy_faithfully() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("b.zip");
    let out = out.to_str().unwrap();
    let (ok, stderr) = agentry(dir.path(), &["backup", "--out", out], &[("AGENTRY_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")]).await;
    assert!(!ok && stderr.contains("pg_dump"), "PostgreSQL: {stderr}");
    let (ok, stderr) = agentry(&dir.path().join("not-an-installation"), &["backup", "--out", out], &[("AGENTRY_MASTER_KEY", MASTER_KEY)]).await;
    assert!(!ok && stderr.contains("does not exist"), "a data dir without a database: {stderr}");

    // A configuration file holding the master key goes into a backup only when asked.
    let (ok, stderr) = agentry(dir.path(), &["migrate"], &[("AGENTRY_MASTER_KEY", MASTER_KEY)]).await;
    assert!(ok, "{stderr}");
    let config = dir.path().join("agentry.toml");
    std::fs::write(&config, format!("master_key = \"{MASTER_KEY}\"\n")).unwrap();
    let with_config = |extra: &'static [&'static str]| {
        let mut args = vec!["--config", config.to_str().unwrap(), "backup", "--out", out];
        args.extend(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = with_config(&[]);
    let (ok, stderr) = agentry(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    assert!(!ok && stderr.contains("sets master_key"), "{stderr}");
    let args = with_config(&["--include-master-key"]);
    let (ok, stderr) = agentry(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>(), &[]).await;
    assert!(ok, "{stderr}");
    assert!(std::fs::read_dir(dir.path()).unwrap().flatten().all(|e| !e.file_name().to_string_lossy().starts_with(".agentry-backup-")), "no staging left behind");
}

/// A TCP proxy to PostgreSQL that the test can cut: while down, it closes
/// every proxied connection and refuses new ones, as a restarting server would.
struct CuttableProxy {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (accepting, held) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accepting.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().push(task.abort_handle());
            }
        });
        Self { port, up, connections }
    }

    fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for connection in self.connections.lock().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_that_goes_away_fails_requests_fast_and_the_server_recovers() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let (prefix, rest) = url.split_once('@').unwrap();
    let (address, database) = rest.split_once('/').unwrap();
    let proxy = CuttableProxy::start(address.to_owned()).await;
    let proxied = format!("{prefix}@127.0.0.1:{}/{database}", proxy.port);
    let app = spawn_app_with(TestOptions { postgres_url: Some(proxied), ..TestOptions::default() }).await;
    app.bootstrap().await;
    let token = app.token(crate::helpers::ADMIN_EMAIL).await;
    let (status, _) = send(&app, &token, Method::GET, "/api/v1/collections", None).await;
    assert_eq!(status, 200);
    let metrics = app.metrics().await;
    assert!(metrics.contains("database_max_connections 16"), "{metrics}");

    proxy.cut();
    let began = Instant::now();
    let response = app.with(Method::GET, "/api/v1/collections", &token).send().await.unwrap();
    let waited = began.elapsed();
    assert_eq!(response.status(), 503, "{:?}", response.text().await);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    assert!(waited < std::time::Duration::from_secs(8), "failed after {waited:?}: a request must not hang on a database that went away");
    let (status, ready) = send(&app, &token, Method::GET, "/ready", None).await;
    assert_eq!(status, 503, "{ready}");

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        let (status, _) = send(&app, &token, Method::GET, "/api/v1/collections", None).await;
        if status == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(recovered, "the server must recover once the database is back, without a restart");
}
