//! Agentry's own SDKs (`clients/python`, `clients/typescript`) against the
//! running server: sign in, create a key, upload and search a document,
//! stream a run and resume it after a dropped connection, page through the
//! audit log. `scripts/test` builds them once per run (`scripts/sdk`) and
//! sets `TEST_AGENTRY_PYTHON` (an interpreter with pytest and the Python
//! SDK's dependencies); in CI an SDK that is not built is a failure, not a
//! skip. The SDKs are generated from `docs/openapi.json`, which a test here
//! keeps equal to the document the code serves.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::{ADMIN_EMAIL, PASSWORD, TestApp, mock_knowledge, spawn_app_with};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients")
}

/// Whether a built SDK is there; outside CI a missing one skips the test.
fn built(marker: &Path) -> bool {
    if marker.exists() {
        return true;
    }
    assert!(std::env::var("CI").is_err(), "{} is missing: scripts/test builds the SDKs (scripts/sdk)", marker.display());
    eprintln!("{} is missing: skipping (run scripts/sdk)", marker.display());
    false
}

async fn run_suite(mut command: Command, app: &TestApp) {
    app.bootstrap().await;
    command.env("SDK_BASE_URL", &app.address).env("SDK_EMAIL", ADMIN_EMAIL).env("SDK_PASSWORD", PASSWORD);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("the SDK's tests start");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK's tests failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
}

#[tokio::test]
async fn the_python_sdk_works_against_the_server() {
    let python = clients_dir().join("python");
    if !built(&python.join("agentry_client/_generated/__init__.py")) {
        return;
    }
    let Ok(interpreter) = std::env::var("TEST_AGENTRY_PYTHON") else {
        assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_PYTHON must be set in CI (scripts/test sets it)");
        return;
    };
    let app = spawn_app_with(mock_knowledge()).await;
    let mut command = Command::new(interpreter);
    command.args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]).current_dir(&python).env("PYTHONPATH", &python);
    run_suite(command, &app).await;
}

#[tokio::test]
async fn the_typescript_sdk_works_against_the_server() {
    let typescript = clients_dir().join("typescript");
    if !built(&typescript.join("dist/test/sdk.test.js")) {
        return;
    }
    let app = spawn_app_with(mock_knowledge()).await;
    let mut command = Command::new("node");
    command.args(["--test", "dist/test/"]).current_dir(&typescript);
    run_suite(command, &app).await;
}

#[test]
fn the_sdks_are_generated_from_the_document_the_code_serves() {
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")).expect("docs/openapi.json");
    let committed: serde_json::Value = serde_json::from_str(&committed).expect("docs/openapi.json is JSON");
    let served = serde_json::to_value(agentry_server::api_doc::document()).unwrap();
    assert!(committed == served, "docs/openapi.json differs from the API the code serves: run `scripts/sdk --update` and commit it");
}
