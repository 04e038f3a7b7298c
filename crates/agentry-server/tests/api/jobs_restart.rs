//! Background runs survive the process that ran them, through the
//! `agentry` binary: a server killed with SIGKILL in the middle of a
//! background run runs it again after a restart (once its job's lease runs
//! out), and the run ends once, succeeded, with its job on its second attempt.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::knowledge_restart::{Configured, call};

/// A mock model that answers after two seconds: long enough to be killed in.
const CONFIG: &str = r#"
[[providers]]
type = "mock"
name = "mock"

[[models]]
name = "mock-slow-2000"
provider = "mock"
"#;

#[tokio::test]
async fn a_background_run_survives_a_kill_9() {
    let configured = Configured::new(CONFIG);
    let (client, base) = (&configured.client, configured.base.as_str());
    let (mut server, token) = configured.start().await;
    call(client, base, &token, Method::POST, "/api/v1/agents", Some(json!({ "name": "slow", "instructions": "i", "model": "mock-slow-2000" }))).await;
    let thread = call(client, base, &token, Method::POST, "/api/v1/threads", Some(json!({ "title": "overnight" }))).await;
    let thread_id = thread["id"].as_str().unwrap();
    let queued =
        call(client, base, &token, Method::POST, &format!("/api/v1/threads/{thread_id}/runs"), Some(json!({ "agent": "slow", "input": "report", "background": true }))).await;
    let run_path = format!("/api/v1/runs/{}", queued["id"].as_str().unwrap());
    // Kill the server while the run is in its model call.
    let deadline = Instant::now() + Duration::from_secs(30);
    while call(client, base, &token, Method::GET, &run_path, None).await["status"] != "running" {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, token) = configured.start().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = call(client, base, &token, Method::GET, &run_path, None).await;
        if !matches!(run["status"].as_str(), Some("pending" | "running")) {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not finish after the restart: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((run["status"].as_str(), run["output"].as_str()), (Some("succeeded"), Some("echo: report")), "{run}");
    // The job ends just after its run does (its worker records the outcome once the handler returns).
    let job = loop {
        let jobs = call(client, base, &token, Method::GET, "/api/v1/jobs?kind=agent_run", None).await;
        let job = jobs["data"].as_array().unwrap().iter().find(|j| j["subject_id"] == queued["id"]).cloned().unwrap();
        if job["status"] != "running" {
            break job;
        }
        assert!(Instant::now() < deadline, "the job did not end after its run: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((job["status"].as_str(), job["attempts"].as_i64()), (Some("succeeded"), Some(2)), "{job}");
    // The thread got the exchange once.
    let messages = call(client, base, &token, Method::GET, &format!("/api/v1/threads/{thread_id}/messages"), None).await;
    assert_eq!(messages["data"].as_array().unwrap().len(), 2, "{messages}");
    server.kill().unwrap();
    server.wait().unwrap();
}
