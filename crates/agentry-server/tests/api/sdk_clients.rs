//! The official OpenAI SDKs (Python and Node), unchanged, against the running
//! server. `scripts/test` installs them and sets `TEST_AGENTRY_PYTHON` (an
//! interpreter with `openai`) and `TEST_AGENTRY_NODE_PATH` (a node_modules
//! with `openai`); in CI a missing one is a failure, not a skip.

use std::path::PathBuf;
use std::process::Command;

use crate::helpers::{MASTER_KEY, spawn_app};

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

async fn run(mut command: Command, address: &str) {
    command.env("AGENTRY_URL", address).env("AGENTRY_KEY", MASTER_KEY);
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
