//! A batch survives the process that ran it, through the `agentry` binary:
//! killed with SIGKILL mid-batch, the server answers the remaining lines
//! after a restart (once the job's lease runs out), and every line is
//! answered — and billed — exactly once: each `custom_id` once in the
//! output file, one usage record per line.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::knowledge_restart::{Configured, call};

/// A model that answers after 300 ms, four lines at a time (the helper's server has 2 s job leases).
const CONFIG: &str = r#"
[[providers]]
type = "mock"
name = "mock"

[[models]]
name = "mock-slow-300"
provider = "mock"

[batches]
concurrency = 4
"#;

const LINES: usize = 24;

#[tokio::test]
async fn a_batch_answers_and_bills_each_line_once_across_a_kill_9() {
    let configured = Configured::new(CONFIG);
    let (client, base) = (&configured.client, configured.base.as_str());
    let (mut server, token) = configured.start().await;

    let jsonl: String = (0..LINES)
        .map(|i| json!({ "custom_id": format!("r{i}"), "method": "POST", "url": "/v1/chat/completions", "body": { "model": "mock-slow-300", "messages": [{ "role": "user", "content": format!("line {i}") }] } }).to_string() + "\n")
        .collect();
    let form = reqwest::multipart::Form::new().text("purpose", "batch").part("file", reqwest::multipart::Part::bytes(jsonl.into_bytes()).file_name("lines.jsonl"));
    let file: Value = client.post(format!("{base}/v1/files")).bearer_auth(&token).multipart(form).send().await.unwrap().json().await.unwrap();
    let body = json!({ "input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h" });
    let batch = call(client, base, &token, Method::POST, "/v1/batches", Some(body)).await;
    let path = format!("/v1/batches/{}", batch["id"].as_str().unwrap());

    // Kill the server once some lines are answered and others are in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(client, base, &token, Method::GET, &path, None).await["request_counts"]["completed"].as_i64() < Some(5) {
        assert!(Instant::now() < deadline, "the batch never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, token) = configured.start().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let batch = call(client, base, &token, Method::GET, &path, None).await;
        if batch["status"] == "completed" {
            break batch;
        }
        assert!(Instant::now() < deadline, "the batch did not finish after the restart: {batch}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done["request_counts"], json!({ "total": LINES, "completed": LINES, "failed": 0 }), "{done}");
    let output = client.get(format!("{base}/v1/files/{}/content", done["output_file_id"].as_str().unwrap())).bearer_auth(&token).send().await.unwrap().text().await.unwrap();
    let ids: Vec<String> = output.lines().map(|line| serde_json::from_str::<Value>(line).unwrap()["custom_id"].as_str().unwrap().to_owned()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (LINES, LINES), "each line once: {ids:?}");

    // One usage record per line: a line cut off by the kill left none.
    let records = call(client, base, &token, Method::GET, "/api/v1/usage/records?limit=200", None).await;
    let batch_records = records["data"].as_array().unwrap().iter().filter(|r| r["request_id"].as_str().is_some_and(|id| id.starts_with("batch_req_"))).count();
    assert_eq!(batch_records, LINES, "{records}");
    server.kill().unwrap();
    server.wait().unwrap();
}
