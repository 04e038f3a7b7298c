//! The `agentry` binary itself: help texts, version, first start (generated
//! master key shown once), JSON logs with request ids, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_agentry");

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["models", "pull", "--help"],
        vec!["models", "list", "--help"],
        vec!["migrate", "--help"],
        vec!["version", "--help"],
        vec!["admin", "bootstrap", "--help"],
        vec!["keys", "rotate-master", "--help"],
        vec!["eval", "retrieval", "--help"],
    ] {
        let output = Command::new(BIN).args(&args).output().unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"), "{args:?}");
    }
    let version = Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("agentry "));
}

#[test]
fn bad_configuration_fails_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN).args(["--data-dir", dir.path().to_str().unwrap(), "serve"]).env("AGENTRY_LISTEN", "not-an-address").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.to_lowercase().contains("listen") && stderr.contains("AGENTRY_"), "{stderr}");
}

/// A pod next to Services named `agentry` and `agentry-db` gets their
/// service-link variables; they are not configuration and must not stop
/// start-up, while a misspelt key still does.
#[test]
fn kubernetes_service_link_variables_are_ignored_and_unknown_keys_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let links = [
        ("AGENTRY_SERVICE_HOST", "10.96.0.12"),
        ("AGENTRY_SERVICE_PORT", "80"),
        ("AGENTRY_SERVICE_PORT_HTTP", "80"),
        ("AGENTRY_PORT", "tcp://10.96.0.12:80"),
        ("AGENTRY_PORT_80_TCP", "tcp://10.96.0.12:80"),
        ("AGENTRY_PORT_80_TCP_PROTO", "tcp"),
        ("AGENTRY_PORT_80_TCP_PORT", "80"),
        ("AGENTRY_PORT_80_TCP_ADDR", "10.96.0.12"),
        ("AGENTRY_DB_SERVICE_HOST", "10.96.0.13"),
        ("AGENTRY_DB_PORT_5432_TCP_ADDR", "10.96.0.13"),
    ];
    let started = Command::new(BIN).args(["--data-dir", data_dir, "migrate"]).envs(links).output().unwrap();
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(started.status.success(), "{stderr}");
    assert!(stderr.contains("ignored Kubernetes service-link variables") && stderr.contains("AGENTRY_PORT_80_TCP_ADDR") && stderr.contains("AGENTRY_DB_SERVICE_HOST"), "{stderr}");

    // A port number where Kubernetes puts a URL is a mistake (for `listen`), not a service link.
    let mistaken = Command::new(BIN).args(["--data-dir", data_dir, "migrate"]).env("AGENTRY_PORT", "8080").output().unwrap();
    assert!(!mistaken.status.success(), "{}", String::from_utf8_lossy(&mistaken.stderr));

    let misspelt = Command::new(BIN).args(["--data-dir", data_dir, "migrate"]).envs(links).env("AGENTRY_LISTN", "0.0.0.0:80").output().unwrap();
    assert!(!misspelt.status.success());
    assert!(String::from_utf8_lossy(&misspelt.stderr).to_lowercase().contains("listn"), "{}", String::from_utf8_lossy(&misspelt.stderr));
}

#[test]
fn admin_bootstrap_takes_the_password_from_the_environment_or_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let from_env = Command::new(BIN)
        .args(["--data-dir", data_dir, "admin", "bootstrap", "--tenant", "acme", "--email", "a@example.com"])
        .env("AGENTRY_BOOTSTRAP_PASSWORD", "a long password 123")
        .output()
        .unwrap();
    assert!(from_env.status.success(), "{}", String::from_utf8_lossy(&from_env.stderr));
    let created: serde_json::Value = serde_json::from_slice(&from_env.stdout).unwrap();
    assert_eq!(created["tenant_slug"], "acme");

    let mut child = Command::new(BIN)
        .args(["--data-dir", data_dir, "admin", "bootstrap", "--tenant", "globex", "--email", "b@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"another long password 4\n").unwrap();
    let from_stdin = child.wait_with_output().unwrap();
    assert!(from_stdin.status.success(), "{}", String::from_utf8_lossy(&from_stdin.stderr));

    let again = Command::new(BIN)
        .args(["--data-dir", data_dir, "admin", "bootstrap", "--tenant", "acme", "--email", "c@example.com"])
        .env("AGENTRY_BOOTSTRAP_PASSWORD", "a long password 123")
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn migrate_runs_on_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("not-yet-created");
    let output = Command::new(BIN).args(["--data-dir", data_dir.to_str().unwrap(), "migrate"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(data_dir.join("agentry.db").exists());
}

#[test]
fn models_pull_offline_without_files_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN).args(["--data-dir", dir.path().to_str().unwrap(), "models", "pull", "--offline"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr).to_lowercase();
    assert!(stderr.contains("offline"), "{stderr}");
}

/// First start: key generated, printed once; JSON logs carry request ids;
/// SIGTERM stops the server cleanly; a second start does not print the key.
#[test]
fn serve_prints_the_generated_key_once_logs_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        Command::new(BIN)
            .args(["--data-dir", dir.path().to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"])
            .env("AGENTRY_LOCAL__ENABLED", "false")
            .env("AGENTRY_LOG_FORMAT", "json")
            .env_remove("AGENTRY_MASTER_KEY")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut child = start();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut key = None;
    let mut port = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while port.is_none() && Instant::now() < deadline {
        let line = lines.next().unwrap().unwrap();
        if line.trim_start().starts_with("sk-agentry-") {
            key = Some(line.trim().to_owned());
        }
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line)
            && json["message"] == "listening"
        {
            port = json["address"].as_str().and_then(|a| a.rsplit(':').next()).map(str::to_owned);
        }
    }
    let key = key.expect("generated key printed on first start");
    assert_eq!(std::fs::read_to_string(dir.path().join("master.key")).unwrap(), key);
    let port = port.expect("listening line");
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: Bearer {key}")])
        .arg(format!("http://127.0.0.1:{port}/v1/models"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
    let mut saw_request_id = false;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("request finished") {
            let json: serde_json::Value = serde_json::from_str(&line).unwrap();
            saw_request_id = json["span"]["request_id"].as_str().is_some_and(|id| id.starts_with("req_"));
            break;
        }
    }
    assert!(saw_request_id, "JSON log lines carry the request id");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let started = Instant::now();
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");

    let mut second = start();
    let mut lines = BufReader::new(second.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        assert!(!line.contains("sk-agentry-"), "the key is shown only on the start that generated it");
        if line.contains("listening") {
            break;
        }
    }
    let _ = second.kill();
    let _ = second.wait();
}
