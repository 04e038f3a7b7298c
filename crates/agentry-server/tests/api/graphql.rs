//! GraphQL at `/graphql`: one round trip reads what the REST routes read
//! (and equals their answers), each field with its REST route's checks;
//! depth, complexity and alias limits; persisted queries; bad input; the
//! committed schema. Object-level checks are cells of the object matrix
//! (`object_authz.rs`).

use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use sha2::Digest;

use crate::helpers::*;

async fn graphql(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.with(Method::POST, "/graphql", token).json(&json!({ "query": query })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The `extensions` of the error at `path` (a top-level field name).
fn error_at<'a>(answer: &'a Value, field: &str) -> &'a Value {
    let errors = answer["errors"].as_array().unwrap_or_else(|| panic!("no errors: {answer}"));
    &errors.iter().find(|e| e["path"][0] == field).unwrap_or_else(|| panic!("no error at {field}: {answer}"))["extensions"]
}

const DASHBOARD: &str = r#"query Dashboard {
  tenant { slug role permissions }
  members { nodes { email role joinedAt } nextCursor }
  agents(limit: 3) { nodes { name kind usable } nextCursor }
  threads(limit: 10) { nodes { id title messageCount messages { seq role content runId } runs { nodes { id status citations { index documentId title version text } } } } }
  runs(limit: 5) { nodes { id agent status output createdAt toolCalls { seq tool status arguments result } thread { id } } }
  collections(limit: 5) { nodes { id name documents(limit: 10) { nodes { id title status currentVersion versions { version status chunkCount sizeBytes } collection { id } } } } }
  usage(groupBy: "model") { from to groupBy total { requests costUsd } groups { key requests } }
}"#;

#[tokio::test]
async fn one_round_trip_reads_what_rest_reads() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    let (_, collection) = send(&app, &token, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let path = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let (status, accepted) = send(&app, &token, Method::POST, &path, Some(json!({ "text": "Zebra care. Zebras eat grass every morning.", "title": "Zebra care" }))).await;
    assert_eq!(status, 202, "{accepted}");
    wait_ingested(&app, &token, &accepted).await;
    let (_, thread) = send(&app, &token, Method::POST, "/api/v1/threads", Some(json!({ "title": "Zebras" }))).await;
    let thread_id = thread["id"].as_str().unwrap();
    // The mock model echoes the question, so its [1] is the answer's citation.
    let (status, rag) = send(&app, &token, Method::POST, &format!("/api/v1/threads/{thread_id}/runs"), Some(json!({ "agent": "rag", "input": "What do zebras eat [1]?" }))).await;
    assert_eq!(status, 200, "{rag}");
    let (status, math) = send(&app, &token, Method::POST, "/api/v1/runs", Some(json!({ "agent": "math", "input": "What is 2^64 - 1?" }))).await;
    assert_eq!(status, 200, "{math}");
    // The call log is written in the background: wait until the summary has both runs' calls.
    let mut summary = Value::Null;
    for _ in 0..100 {
        summary = send(&app, &token, Method::GET, "/api/v1/usage/summary?group_by=model", None).await.1;
        if summary["total"]["requests"].as_i64() >= Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let answer = graphql(&app, &token, DASHBOARD).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let data = &answer["data"];
    assert_eq!(data["tenant"]["slug"], "acme", "{data}");
    assert_eq!(data["tenant"]["role"], "admin");
    assert!(data["tenant"]["permissions"].as_array().unwrap().contains(&json!("manage_tenant")));
    assert_eq!(data["members"]["nodes"][0]["email"], ADMIN_EMAIL);
    // Pages as REST pages them: three agents and a cursor to the rest.
    let (_, agents) = send(&app, &token, Method::GET, "/api/v1/agents?limit=3", None).await;
    let names = |nodes: &Value| nodes.as_array().unwrap().iter().map(|a| a["name"].clone()).collect::<Vec<_>>();
    assert_eq!(names(&data["agents"]["nodes"]), names(&agents["data"]));
    assert_eq!(data["agents"]["nextCursor"], agents["next_cursor"]);

    let graph_thread = &data["threads"]["nodes"][0];
    assert_eq!(graph_thread["id"], thread_id);
    let (_, messages) = send(&app, &token, Method::GET, &format!("/api/v1/threads/{thread_id}/messages"), None).await;
    assert_eq!(graph_thread["messages"].as_array().unwrap().len(), messages["data"].as_array().unwrap().len());
    assert_eq!(graph_thread["messages"][1]["runId"], rag["id"], "{graph_thread}");
    let cited = &graph_thread["runs"]["nodes"][0]["citations"];
    assert_eq!(cited[0]["documentId"], accepted["document"]["id"], "{graph_thread}");
    assert_eq!(cited[0]["documentId"], rag["citations"][0]["document_id"]);
    assert!(cited[0]["text"].as_str().unwrap().contains("grass"), "{cited}");

    let graph_math = &data["runs"]["nodes"][0];
    assert_eq!(graph_math["id"], math["id"]);
    assert_eq!(graph_math["status"], "SUCCEEDED");
    assert_eq!(graph_math["output"], math["output"]);
    assert_eq!(graph_math["thread"], Value::Null, "a stateless run has no thread");
    assert_eq!(graph_math["toolCalls"][0]["tool"], "calculator");
    assert_eq!(graph_math["toolCalls"][0]["arguments"], math["tool_calls"][0]["arguments"]);
    assert_eq!(data["runs"]["nodes"][1]["thread"]["id"], thread_id);

    let document = &data["collections"]["nodes"][0]["documents"]["nodes"][0];
    assert_eq!(document["id"], accepted["document"]["id"]);
    assert_eq!(document["status"], "SUCCEEDED");
    assert_eq!(document["collection"]["id"], collection["id"]);
    assert!(document["versions"][0]["chunkCount"].as_i64() >= Some(1), "{document}");

    assert_eq!(data["usage"]["total"]["requests"], summary["total"]["requests"], "{data} vs {summary}");
    assert_eq!(data["usage"]["from"], summary["from"]);
}

#[tokio::test]
async fn each_field_answers_as_its_rest_route_would() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    app.add_member(&admin, "acme", "viewer@example.com", "viewer").await;
    let viewer = app.token("viewer@example.com").await;
    let (_, key) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "models only", "scopes": ["use_models"] }))).await;
    let key = key["key"].as_str().unwrap();
    let query =
        "{ tenant { slug } threads { nodes { id } } members { nodes { email } } usage { total { requests } } collections { nodes { id } } again: collections { nodes { id } } }";

    // A viewer reads documents and metrics, not conversations or people.
    let answer = graphql(&app, &viewer, query).await;
    assert_eq!(answer["data"]["tenant"]["slug"], "acme", "{answer}");
    assert!(answer["data"]["usage"]["total"].is_object(), "{answer}");
    assert!(answer["data"]["collections"]["nodes"].is_array(), "{answer}");
    for field in ["threads", "members"] {
        assert_eq!(answer["data"][field], Value::Null, "{answer}");
        assert_eq!(error_at(&answer, field)["code"], "permission_denied");
        assert_eq!(error_at(&answer, field)["status"], 403);
    }
    // A key scoped to use_models reads none of them.
    let answer = graphql(&app, key, query).await;
    for field in ["threads", "members", "usage", "collections"] {
        assert_eq!(error_at(&answer, field)["status"], 403, "{answer}");
    }
    // REST says the same, and the refusal is audited like REST's.
    let (status, _) = send(&app, key, Method::GET, "/api/v1/collections", None).await;
    assert_eq!(status, 403);
    let (_, audit) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit?action=permission.denied", None).await;
    let refusals = audit["data"].as_array().unwrap().iter().filter(|e| e["resource"] == "graphql GET /api/v1/collections").count();
    assert_eq!(refusals, 1, "one refusal per route and request, however often the field is repeated: {audit}");
    // Missing objects are not found, with the other fields intact.
    let answer = graphql(&app, &admin, r#"{ tenant { slug } run(id: "no-such-run") { id } document(id: "nope") { id } }"#).await;
    assert_eq!(answer["data"]["tenant"]["slug"], "acme");
    assert_eq!(error_at(&answer, "run")["code"], "not_found");
    assert_eq!(error_at(&answer, "document")["status"], 404);
    // Bad arguments are the REST route's 400, named.
    let answer = graphql(&app, &admin, r#"{ threads(limit: 500) { nodes { id } } usage(from: "2026-02-01", to: "2026-01-01") { from } }"#).await;
    assert_eq!(error_at(&answer, "threads")["param"], "limit", "{answer}");
    assert_eq!(error_at(&answer, "usage")["status"], 400, "{answer}");
    // No credentials: the REST envelope, before any GraphQL.
    let response = app.client.post(app.url("/graphql")).json(&json!({ "query": "{ tenant { slug } }" })).send().await.unwrap();
    assert_error(response, 401, "missing_api_key").await;
}

#[tokio::test]
async fn depth_complexity_and_aliases_are_bounded() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    let refused = |answer: &Value| answer["data"].is_null() && answer["errors"][0]["message"].is_string();
    let deep = "{ runs(limit: 1) { nodes { thread { runs(limit: 1) { nodes { thread { runs(limit: 1) { nodes { id } } } } } } } } }";
    let answer = graphql(&app, &token, deep).await;
    assert!(refused(&answer) && answer["errors"][0]["message"].as_str().unwrap().contains("nested too deep"), "{answer}");
    let wide = "{ threads(limit: 200) { nodes { runs(limit: 200) { nodes { id } } } } }";
    let answer = graphql(&app, &token, wide).await;
    assert!(refused(&answer) && answer["errors"][0]["message"].as_str().unwrap().contains("too complex"), "{answer}");
    let aliased: String = (0..31).map(|n| format!("a{n}: tenant {{ slug }} ")).collect();
    let answer = graphql(&app, &token, &format!("{{ {aliased} }}")).await;
    assert!(refused(&answer) && answer["errors"][0]["message"].as_str().unwrap().contains("31 aliases"), "{answer}");
    // Within the limits: answered.
    let answer = graphql(&app, &token, "{ a: tenant { slug } b: tenant { slug } threads(limit: 20) { nodes { runs(limit: 20) { nodes { id } } } } }").await;
    assert_eq!(answer["data"]["b"]["slug"], "acme", "{answer}");
    // One request per body: a batch is refused, as is a body that is not a request.
    for body in [json!([{ "query": "{ tenant { slug } }" }]), json!({ "query": 5 }), json!({ "query": "{ tenant { slug } }", "mutation": true })] {
        let response = app.with(Method::POST, "/graphql", &token).json(&body).send().await.unwrap();
        assert_error(response, 400, "invalid_request").await;
    }
    // A document past the body limit is refused before it is parsed.
    let huge = format!("{{ tenant {{ slug }} }} # {}", "x".repeat(40 * 1024));
    let response = app.with(Method::POST, "/graphql", &token).json(&json!({ "query": huge })).send().await.unwrap();
    assert_error(response, 413, "payload_too_large").await;
    // Nothing changes through GraphQL.
    let answer = graphql(&app, &token, r#"mutation { deleteThread(id: "x") }"#).await;
    assert!(refused(&answer), "{answer}");
}

#[tokio::test]
async fn queries_can_be_sent_by_get_and_persisted_by_hash() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let token = app.token(ADMIN_EMAIL).await;
    let query = "query Slug { tenant { slug } }";
    let get = |params: Vec<(&'static str, String)>| app.with(Method::GET, "/graphql", &token).query(&params).send();
    let answer: Value = get(vec![("query", query.to_owned())]).await.unwrap().json().await.unwrap();
    assert_eq!(answer["data"]["tenant"]["slug"], "acme", "{answer}");
    // Automatic persisted queries: the hash alone is unknown until the query was sent with it once.
    let hash = hex::encode(sha2::Sha256::digest(query.as_bytes()));
    let persisted = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });
    let answer: Value = get(vec![("extensions", persisted.to_string())]).await.unwrap().json().await.unwrap();
    assert_eq!(answer["errors"][0]["message"], "PersistedQueryNotFound", "{answer}");
    let first = app.with(Method::POST, "/graphql", &token).json(&json!({ "query": query, "extensions": persisted })).send().await.unwrap();
    assert_eq!(first.json::<Value>().await.unwrap()["data"]["tenant"]["slug"], "acme");
    let answer: Value = get(vec![("extensions", persisted.to_string())]).await.unwrap().json().await.unwrap();
    assert_eq!(answer["data"]["tenant"]["slug"], "acme", "{answer}");
    // No query is a GraphQL error, as by POST; variables that are not a JSON object are a 400 naming them.
    let answer: Value = app.with(Method::GET, "/graphql", &token).send().await.unwrap().json().await.unwrap();
    assert!(answer["data"].is_null() && answer["errors"][0]["message"].is_string(), "{answer}");
    // A query string is held to the body's limit.
    let response = get(vec![("query", format!("{{ tenant {{ slug }} }}{}", " ".repeat(33 * 1024)))]).await.unwrap();
    assert_error(response, 413, "payload_too_large").await;
    for variables in ["{not json", "[1]"] {
        let response = get(vec![("query", query.to_owned()), ("variables", variables.to_owned())]).await.unwrap();
        let error = assert_error(response, 400, "invalid_request").await;
        assert_eq!(error["param"], "variables", "{error}");
    }
}

#[test]
fn the_committed_schema_is_the_one_served() {
    let committed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql")).expect("docs/schema.graphql");
    assert!(committed == agentry_server::graphql::sdl(), "docs/schema.graphql differs from the schema /graphql serves: run `agentry graphql-schema > docs/schema.graphql`");
}
