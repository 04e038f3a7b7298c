//! Contract conformance: schemathesis (PyPI) generates requests for every
//! operation of the live server's `/openapi.json`, signed in as a tenant
//! admin, and checks every answer: no 5xx, only documented status codes,
//! content types and headers, bodies that match their schemas, invalid
//! requests refused, and schema-valid requests accepted. Operations with a
//! rule JSON Schema cannot state may also refuse a schema-valid request
//! with 400; `schemathesis.toml` beside this file lists them, each with its
//! rule. Operations that would end the run's own credentials run one at a
//! time, each with a throwaway session of its own.

use std::process::Command;

use crate::helpers::*;

/// Operations that end or weaken the session they run with, and why.
/// Operations that answer with a stream that stays open until the client
/// leaves: no request of schemathesis's would end; `events.rs` tests them.
const LIVE_STREAMS: &[(&str, &str)] = &[("get_events", "the tenant's live event stream")];

const WITH_THROWAWAY_SESSION: &[(&str, &str)] = &[
    ("post_auth_logout", "ends the session"),
    ("delete_auth_sessions", "ends every session of the user"),
    ("delete_auth_sessions_id", "may end the session itself"),
    ("post_auth_password", "changes the user's password"),
    ("post_auth_mfa_totp", "starts a second factor the run cannot answer"),
    ("post_auth_mfa_totp_confirm", "turns on a second factor the run cannot answer"),
    ("post_auth_mfa_disable", "turns off the user's second factor"),
    ("post_admin_signing_keys_rotate", "replaces the key the session's tokens are signed with"),
    ("post_admin_users_user_id_disable", "may disable the user"),
    ("delete_tenants_tenant_users_user_id", "may remove the user from the tenant"),
    ("patch_tenants_tenant_users_user_id", "may take the user's role away"),
];

/// Requests generated per operation and phase: enough to reach every
/// status an operation documents, few enough for CI.
const MAX_EXAMPLES: &str = "10";
/// A fixed seed: CI finds the same cases every run (change it to explore).
const SEED: &str = "20261206";

fn schemathesis(python: &str, app: &TestApp, token: &str, operations: Filter<'_>) -> (bool, String) {
    let program = std::path::Path::new(python).with_file_name("schemathesis");
    // schemathesis keeps a cache of found crashes in its working directory: a throwaway one.
    let workdir = tempfile::tempdir().expect("a temporary directory");
    let mut command = Command::new(program);
    command
        .current_dir(workdir.path())
        .args(["--config-file", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/schemathesis.toml")])
        .args(["run", &format!("{}/openapi.json", app.address), "--header", &format!("Authorization: Bearer {token}")])
        // The run creates tenants the admin joins: name the one it tests.
        .args(["--header", "X-Agentry-Tenant: acme"])
        // One worker: schemathesis draws in its worker threads, and CPython 3.11's `ast.parse` (which
        // Hypothesis calls to describe strategies) is not thread-safe — two threads parsing at once fail
        // the run with "AST constructor recursion depth mismatch", whatever the server answered.
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED, "--workers", "1", "--no-color"])
        .env("NO_COLOR", "1");
    match operations {
        Filter::AllBut(excluded) => {
            for (id, _) in excluded.iter().chain(LIVE_STREAMS) {
                command.args(["--exclude-operation-id", id]);
            }
        }
        Filter::Only(id) => {
            command.args(["--include-operation-id", id]);
        }
    }
    let output = command.output().expect("schemathesis runs");
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

enum Filter<'a> {
    AllBut(&'a [(&'a str, &'a str)]),
    Only(&'a str),
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_answers_as_its_description_says() {
    let Some(python) = std::env::var("TEST_AGENTRY_PYTHON").ok() else {
        assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_PYTHON must be set in CI (scripts/test sets it)");
        return;
    };
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    // Signed in before the run: its requests count against the per-address limit of sign-ins.
    let mut throwaway = Vec::new();
    for (id, _) in WITH_THROWAWAY_SESSION {
        throwaway.push((*id, app.token(ADMIN_EMAIL).await));
    }
    let run = {
        let (python, token) = (python.clone(), token.clone());
        let app = &app;
        move || schemathesis(&python, app, &token, Filter::AllBut(WITH_THROWAWAY_SESSION))
    };
    let (passed, report) = tokio::task::block_in_place(run);
    assert!(passed, "schemathesis found failures:\n{report}");
    assert!(report.contains("Tested:"), "{report}");

    for (id, session) in throwaway {
        let (passed, report) = tokio::task::block_in_place(|| schemathesis(&python, &app, &session, Filter::Only(id)));
        assert!(passed, "schemathesis found failures in {id}:\n{report}");
    }
}
