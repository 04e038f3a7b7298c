//! `/openapi.json`: the OpenAPI 3.1 document describes exactly the routed
//! operations, is served without credentials, and validates as OpenAPI 3.1
//! (openapi-spec-validator, installed by scripts/test).

use std::collections::BTreeSet;
use std::process::Command;

use agentry_server::access::RULES;
use agentry_server::api_doc::operations;

use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, spawn_app};

#[test]
fn every_routed_operation_is_described_and_every_description_is_routed() {
    let routed: BTreeSet<(String, &str)> = RULES.iter().map(|r| (r.method.to_string(), r.path)).collect();
    let described: Vec<(String, &str)> = operations().iter().map(|o| (o.method.to_string(), o.path)).collect();
    let unique: BTreeSet<(String, &str)> = described.iter().cloned().collect();
    assert_eq!(unique.len(), described.len(), "an operation is described twice");
    let missing: Vec<_> = routed.difference(&unique).collect();
    let unrouted: Vec<_> = unique.difference(&routed).collect();
    assert!(missing.is_empty(), "routes without an operation: {missing:?}");
    assert!(unrouted.is_empty(), "operations without a route: {unrouted:?}");
    assert!(operations().iter().all(|o| !o.summary.is_empty()));
}

#[tokio::test]
async fn the_document_is_public_and_lists_every_operation_with_its_security() {
    let app = spawn_app().await;
    let answer = reqwest::get(format!("{}/openapi.json", app.address)).await.unwrap();
    assert_eq!(answer.status(), 200);
    let document: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut listed = 0;
    for rule in RULES {
        let operation = &document["paths"][rule.path][rule.method.as_str().to_ascii_lowercase()];
        assert!(operation.is_object(), "{} {} is not in the document", rule.method, rule.path);
        let public = rule.access == agentry_server::access::Access::Public;
        assert_eq!(operation["security"].as_array().is_some_and(Vec::is_empty), public, "{} {}: {}", rule.method, rule.path, operation["security"]);
        assert!(operation["responses"]["500"]["content"]["application/json"].is_object());
        listed += 1;
    }
    assert_eq!(listed, RULES.len());

    // `agentry openapi` prints the same document without a server (clients are generated from it).
    let printed = Command::new(env!("CARGO_BIN_EXE_agentry")).arg("openapi").output().unwrap();
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&printed.stdout).unwrap(), document);
}

#[tokio::test]
async fn the_document_validates_as_openapi_3_1() {
    let Some(python) = std::env::var("TEST_AGENTRY_PYTHON").ok() else {
        assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_PYTHON must be set in CI (scripts/test sets it)");
        return;
    };
    let app = spawn_app().await;
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/validate_openapi.py");
    let mut command = Command::new(python);
    command.arg(script).env("AGENTRY_URL", &app.address);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("the validator runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && stdout.contains("sdk ok"), "stdout:\n{stdout}\nstderr:\n{stderr}");
}

#[tokio::test]
async fn a_deprecated_operation_still_works_and_says_when_it_ends() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let budget = json!({ "scope": "tenant", "period": "monthly", "limit_usd": 10.0 });
    let old = app.with(reqwest::Method::POST, "/api/v1/costs/budget", &admin).json(&budget).send().await.unwrap();
    assert_eq!(old.status(), 200);
    assert_eq!(old.headers()["deprecation"], "@1796515200");
    assert_eq!(old.headers()["sunset"], "Wed, 30 Jun 2027 00:00:00 GMT");
    assert!(old.headers()["link"].to_str().unwrap().contains("</api/v1/costs/budgets>; rel=\"successor-version\""));
    let new = app.with(reqwest::Method::POST, "/api/v1/costs/budgets", &admin).json(&budget).send().await.unwrap();
    assert_eq!(new.status(), 200);
    assert!(new.headers().get("deprecation").is_none());
    let document: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
    assert_eq!(document["paths"]["/api/v1/costs/budget"]["post"]["deprecated"], true);
    assert!(document["paths"]["/api/v1/costs/budgets"]["post"].get("deprecated").is_none());
}
