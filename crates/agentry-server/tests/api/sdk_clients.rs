//! The official client SDKs, unchanged, against the running server: OpenAI's
//! (Python and Node) on `/v1`, MCP's Python SDK on `/mcp` and the A2A Python
//! SDK on the agent card and `/a2a`. `scripts/test` installs them and sets
//! `TEST_AGENTRY_PYTHON` (an interpreter with `openai`, `mcp` and `a2a-sdk`)
//! and `TEST_AGENTRY_NODE_PATH` (a node_modules with `openai`); in CI a
//! missing one is a failure, not a skip.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{ADMIN_EMAIL, MASTER_KEY, TestApp, spawn_app};

fn sdk_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(name)
}

fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) => Some(value),
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "{name} must be set in CI (scripts/test sets it)");
            eprintln!("{name} is not set: skipping (run scripts/test)");
            None
        }
    }
}

async fn run(command: Command, address: &str) {
    run_with_key(command, address, MASTER_KEY).await;
}

async fn run_with_key(mut command: Command, address: &str, key: &str) {
    command.env("AGENTRY_URL", address).env("AGENTRY_KEY", key);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("sdk ok"), "{stdout}");
}

#[tokio::test]
async fn official_python_sdk_works_unchanged() {
    let Some(python) = required_env("TEST_AGENTRY_PYTHON") else { return };
    let app = spawn_app().await;
    let mut command = Command::new(python);
    command.arg(sdk_script("openai_python.py"));
    run(command, &app.address).await;
}

#[tokio::test]
async fn official_node_sdk_works_unchanged() {
    let Some(node_path) = required_env("TEST_AGENTRY_NODE_PATH") else { return };
    let app = spawn_app().await;
    let mut command = Command::new("node");
    command.arg(sdk_script("openai_node.cjs")).env("NODE_PATH", node_path);
    run(command, &app.address).await;
}

/// `/mcp` and `/a2a` are tenant routes (agents, threads and documents belong
/// to a tenant): the scripts run as the bootstrapped tenant's admin, not with
/// the master key.
async fn tenant_token(app: &TestApp) -> String {
    app.bootstrap().await;
    app.token(ADMIN_EMAIL).await
}

#[tokio::test]
async fn official_mcp_python_client_works() {
    let Some(python) = required_env("TEST_AGENTRY_PYTHON") else { return };
    let app = spawn_app().await;
    let token = tenant_token(&app).await;
    let mut command = Command::new(python);
    command.arg(sdk_script("mcp_python.py"));
    run_with_key(command, &app.address, &token).await;
}

#[tokio::test]
async fn official_a2a_python_client_works() {
    let Some(python) = required_env("TEST_AGENTRY_PYTHON") else { return };
    let app = spawn_app().await;
    let token = tenant_token(&app).await;
    let mut command = Command::new(python);
    command.arg(sdk_script("a2a_python.py"));
    run_with_key(command, &app.address, &token).await;
}

#[tokio::test]
async fn official_python_sdk_runs_a_batch() {
    let Some(python) = required_env("TEST_AGENTRY_PYTHON") else { return };
    let app = spawn_app().await;
    let token = tenant_token(&app).await;
    let mut command = Command::new(python);
    command.arg(sdk_script("openai_batch.py"));
    run_with_key(command, &app.address, &token).await;
}
