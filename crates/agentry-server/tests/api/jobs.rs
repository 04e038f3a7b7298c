//! The job queue through the server: background runs are `agent_run`
//! jobs (idempotency keys, cancellation, retry), ingestion shows up as
//! `index` jobs, each member sees their own jobs and `manage_tenant` all,
//! bad filters and impossible transitions get the standard envelope, and
//! the queue's depth is on `/metrics`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn until(app: &TestApp, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = send(app, token, Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path} never got there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job of a background run, as its owner lists it.
async fn job_of(app: &TestApp, token: &str, run_id: &str) -> Value {
    let (status, jobs) = send(app, token, Method::GET, "/api/v1/jobs?kind=agent_run&limit=200", None).await;
    assert_eq!(status, 200, "{jobs}");
    jobs["data"].as_array().unwrap().iter().find(|j| j["subject_id"] == run_id).cloned().unwrap_or_else(|| panic!("no job for run {run_id}: {jobs}"))
}

#[tokio::test]
async fn background_runs_are_jobs_that_their_owner_can_cancel_and_retry() {
    let app = spawn_app_with(mock_knowledge()).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    for (name, model) in [("slow", "mock-slow-400"), ("glacial", "mock-slow-20000")] {
        let (status, body) = send(&app, &admin, Method::POST, "/api/v1/agents", Some(json!({ "name": name, "instructions": "i", "model": model }))).await;
        assert_eq!(status, 201, "{body}");
    }
    app.add_member(&admin, &tenant, "member@example.com", "user").await;
    app.add_member(&admin, &tenant, "nosy@example.com", "user").await;
    let member = app.token("member@example.com").await;
    let nosy = app.token("nosy@example.com").await;

    // Queued, with an idempotency key: the second request returns the first run.
    let body = json!({ "agent": "slow", "input": "hello", "background": true, "idempotency_key": "nightly-1" });
    let (status, queued) = send(&app, &member, Method::POST, "/api/v1/runs", Some(body.clone())).await;
    assert_eq!(status, 202, "{queued}");
    assert!(matches!(queued["status"].as_str(), Some("pending" | "running")), "{queued}");
    let run_id = queued["id"].as_str().unwrap().to_owned();
    let (status, again) = send(&app, &member, Method::POST, "/api/v1/runs", Some(body.clone())).await;
    assert_eq!((status, again["id"].as_str()), (202, Some(run_id.as_str())), "{again}");
    // Another member's same key is theirs: another run.
    let (_, theirs) = send(&app, &nosy, Method::POST, "/api/v1/runs", Some(body)).await;
    assert_ne!(theirs["id"], queued["id"]);

    let done = until(&app, &member, &format!("/api/v1/runs/{run_id}"), |r| r["status"] == "succeeded").await;
    assert_eq!(done["output"], "echo: hello", "{done}");
    let job = job_of(&app, &member, &run_id).await;
    let job_path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let job = until(&app, &member, &job_path, |j| j["status"] == "succeeded").await;
    assert_eq!((job["kind"].as_str(), job["attempts"].as_i64(), job["idempotency_key"].as_str()), (Some("agent_run"), Some(1), Some("nightly-1")), "{job}");
    assert!(job["owner"].as_str().unwrap().starts_with("user:"), "{job}");

    // Someone else's job does not exist for another member; manage_tenant sees it.
    for (method, path) in [(Method::GET, job_path.clone()), (Method::DELETE, job_path.clone()), (Method::POST, format!("{job_path}/retry"))] {
        let (status, body) = send(&app, &nosy, method, &path, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {body}");
    }
    let (_, listed) = send(&app, &nosy, Method::GET, "/api/v1/jobs", None).await;
    assert!(listed["data"].as_array().unwrap().iter().all(|j| j["id"] != job["id"]), "{listed}");
    let (status, seen) = send(&app, &admin, Method::GET, &job_path, None).await;
    assert_eq!((status, seen["id"].clone()), (200, job["id"].clone()));
    let (_, all) = send(&app, &admin, Method::GET, "/api/v1/jobs?kind=agent_run&status=succeeded", None).await;
    assert!(all["data"].as_array().unwrap().iter().any(|j| j["id"] == job["id"]), "{all}");

    // A succeeded job is not retried; bad filters and keys are refused in the envelope.
    let (status, body) = send(&app, &member, Method::POST, &format!("{job_path}/retry"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, body) = send(&app, &member, Method::GET, "/api/v1/jobs?kind=laundry", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(&app, &member, Method::POST, "/api/v1/runs", Some(json!({ "agent": "slow", "input": "x", "idempotency_key": "k" }))).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("idempotency_key")), "{body}");
    let (status, body) = send(&app, &member, Method::POST, "/api/v1/runs", Some(json!({ "agent": "slow", "input": "x", "background": true, "idempotency_key": " " }))).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("idempotency_key")), "{body}");

    // Cancelling the job of a long run stops the run; retrying the cancelled job runs it again.
    let (_, long) = send(&app, &member, Method::POST, "/api/v1/runs", Some(json!({ "agent": "glacial", "input": "wait", "background": true }))).await;
    let long_id = long["id"].as_str().unwrap().to_owned();
    until(&app, &member, &format!("/api/v1/runs/{long_id}"), |r| r["status"] == "running").await;
    let job = job_of(&app, &member, &long_id).await;
    let job_path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let (status, cancelled) = send(&app, &member, Method::DELETE, &job_path, None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let run = until(&app, &member, &format!("/api/v1/runs/{long_id}"), |r| r["status"] != "running").await;
    assert_eq!(run["status"], "cancelled", "{run}");
    let (status, retried) = send(&app, &member, Method::POST, &format!("{job_path}/retry"), None).await;
    assert_eq!((status, retried["status"].as_str(), retried["attempts"].as_i64()), (200, Some("queued"), Some(0)), "{retried}");
    until(&app, &member, &format!("/api/v1/runs/{long_id}"), |r| r["status"] == "running").await;
    // Cancelling the run cancels its job too.
    let (status, run) = send(&app, &member, Method::POST, &format!("/api/v1/runs/{long_id}/cancel"), None).await;
    assert_eq!((status, run["status"].as_str()), (200, Some("cancelled")), "{run}");
    until(&app, &member, &job_path, |j| j["status"] == "cancelled").await;
    // Only its owner runs a job that acts for them again: an admin sees it but cannot retry it as the member.
    let (status, body) = send(&app, &admin, Method::POST, &format!("{job_path}/retry"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("permission_denied")), "{body}");

    // Ingestion is on the same queue: the uploader's `index` job, which cannot be cancelled.
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "notes" }))).await;
    let path = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let (status, accepted) = send(&app, &admin, Method::POST, &path, Some(json!({ "text": "Herons wade.", "title": "Herons" }))).await;
    assert_eq!(status, 202, "{accepted}");
    let index_path = format!("/api/v1/jobs/{}", accepted["job_id"].as_str().unwrap());
    let index = until(&app, &admin, &index_path, |j| j["status"] == "succeeded").await;
    assert_eq!((index["kind"].as_str(), index["subject_version"].as_i64()), (Some("index"), Some(1)), "{index}");
    let (status, body) = send(&app, &admin, Method::DELETE, &index_path, None).await;
    assert_eq!(status, 409, "{body}");

    let metrics = app.metrics_with("jobs_created_total").await;
    assert!(metrics.contains(r#"jobs_created_total{kind="agent_run"}"#), "{metrics}");
    assert!(metrics.contains(r#"job_queue_depth{kind="agent_run",status="queued"}"#), "{metrics}");
}

/// A job runs with what its owner holds when it runs, not when it was
/// queued: a member removed meanwhile cannot have their run done for them.
#[tokio::test]
async fn a_queued_run_of_a_removed_member_fails_instead_of_running() {
    let mut options = mock_knowledge();
    options.agents.default_model = "mock-echo".into();
    let app = spawn_app_with(options).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, body) = send(&app, &admin, Method::POST, "/api/v1/agents", Some(json!({ "name": "blocker", "instructions": "i", "model": "mock-slow-1500" }))).await;
    assert_eq!(status, 201, "{body}");
    let member_id = app.add_member(&admin, &tenant, "leaver@example.com", "user").await;
    let member = app.token("leaver@example.com").await;
    // Occupy every worker so the member's run stays queued while they are removed.
    let workers = agentry_core::jobs::JobsSettings::default().workers;
    for _ in 0..workers {
        let (status, body) = send(&app, &admin, Method::POST, "/api/v1/runs", Some(json!({ "agent": "blocker", "input": "hold", "background": true }))).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, queued) = send(&app, &member, Method::POST, "/api/v1/runs", Some(json!({ "agent": "general", "input": "hi", "background": true }))).await;
    assert_eq!(status, 202, "{queued}");
    let run_path = format!("/api/v1/runs/{}", queued["id"].as_str().unwrap());
    let (status, body) = send(&app, &admin, Method::DELETE, &format!("/api/v1/tenants/{tenant}/users/{member_id}"), None).await;
    assert!(matches!(status, 200 | 204), "{body}");
    // The admin sees the member's job fail for good, and the run with it.
    let (_, jobs) = send(&app, &admin, Method::GET, "/api/v1/jobs?kind=agent_run&limit=200", None).await;
    let job = jobs["data"].as_array().unwrap().iter().find(|j| j["subject_id"] == queued["id"]).cloned().unwrap();
    let job = until(&app, &admin, &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()), |j| j["status"] != "queued" && j["status"] != "running").await;
    assert_eq!(job["status"], "failed", "{job} {jobs}");
    assert!(job["error"].as_str().unwrap().contains("no longer has access"), "{job}");
    let run = agentry_db::Db::connect(&app.database_url).await.unwrap().run(&tenant, queued["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(run.status, agentry_types::RunStatus::Failed, "{run_path}: {:?}", run.error);
}

/// A deep queue is claimed ahead of free workers; a job cancelled while it
/// waits in a worker's hands (or in the queue) never runs: its run ends
/// `cancelled` with no answer, and every other run succeeds once.
#[tokio::test]
async fn jobs_cancelled_while_claimed_ahead_never_run() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, body) = send(&app, &admin, Method::POST, "/api/v1/agents", Some(json!({ "name": "slow", "instructions": "i", "model": "mock-slow-400" }))).await;
    assert_eq!(status, 201, "{body}");
    let mut runs = Vec::new();
    for i in 0..16 {
        let (status, run) = send(&app, &admin, Method::POST, "/api/v1/runs", Some(json!({ "agent": "slow", "input": format!("n{i}"), "background": true }))).await;
        assert_eq!(status, 202, "{run}");
        runs.push(run["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    let mut cancelled = Vec::new();
    let mut claimed_ahead = 0;
    for run_id in &runs {
        let (_, run) = send(&app, &admin, Method::GET, &format!("/api/v1/runs/{run_id}"), None).await;
        if run["status"] != "pending" {
            continue;
        }
        let job = job_of(&app, &admin, run_id).await;
        claimed_ahead += usize::from(job["status"] == "running");
        let (status, body) = send(&app, &admin, Method::DELETE, &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()), None).await;
        assert_eq!(status, 200, "{body}");
        cancelled.push(run_id.clone());
    }
    assert!(claimed_ahead > 0, "some waiting jobs were claimed ahead: {claimed_ahead} of {}", cancelled.len());
    for run_id in &runs {
        let done = until(&app, &admin, &format!("/api/v1/runs/{run_id}"), |r| matches!(r["status"].as_str(), Some("succeeded" | "cancelled" | "failed"))).await;
        let expected = if cancelled.contains(run_id) { "cancelled" } else { "succeeded" };
        assert_eq!(done["status"], expected, "claimed ahead and cancelled: {claimed_ahead}; {done}");
        if expected == "cancelled" {
            assert!(done["output"].as_str().unwrap_or_default().is_empty(), "a cancelled run never ran: {done}");
        }
    }
}
