//! Schedules through the server: a schedule runs its agent at each due
//! time onto a thread, keeps a history, publishes `schedule.fired` to a
//! webhook, stops when disabled and fires by hand; refetches a collection's
//! URL documents; refuses bad timing and actions; is hidden from other
//! members; and a schedule due while two servers share PostgreSQL fires once
//! per due time.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::knowledge::{PAGES, Site};
use crate::webhooks::{Receiver, create_echo_agent, local_webhooks, wait_for};

/// Fast schedules: polled every 100 ms, down to one fire a second.
pub fn fast_schedules() -> agentry_core::schedules::SchedulesSettings {
    agentry_core::schedules::SchedulesSettings { poll_ms: 100, min_interval_secs: 1, ..Default::default() }
}

pub async fn history(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (status, page) = send(app, token, Method::GET, &format!("/api/v1/schedules/{id}/runs?limit=100"), None).await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_schedule_runs_its_agent_on_time_onto_a_thread_and_tells_a_webhook() {
    let mut options = mock_knowledge();
    options.schedules = fast_schedules();
    options.webhooks = local_webhooks(2);
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    create_echo_agent(&app, &admin, "acme").await;
    let receiver = Receiver::start(0).await;
    let (status, hook) = send(&app, &admin, Method::POST, "/api/v1/webhooks", Some(json!({ "url": receiver.url, "events": ["schedule.fired"] }))).await;
    assert_eq!(status, 201, "{hook}");
    let (status, thread) = send(&app, &admin, Method::POST, "/api/v1/threads", Some(json!({ "title": "daily digest" }))).await;
    assert_eq!(status, 201, "{thread}");
    let thread_id = thread["id"].as_str().unwrap().to_owned();

    let body = json!({ "name": "digest", "cron": "*/2 * * * * *", "timezone": "Europe/Paris",
                       "action": { "type": "run_agent", "agent": "echo", "input": "tick", "thread_id": thread_id } });
    let (status, schedule) = send(&app, &admin, Method::POST, "/api/v1/schedules", Some(body)).await;
    assert_eq!(status, 201, "{schedule}");
    let id = schedule["id"].as_str().unwrap().to_owned();
    assert!(schedule["next_fire_ms"].is_i64() && schedule["description"].as_str().is_some_and(|d| !d.is_empty()), "{schedule}");
    assert_eq!(schedule["misfire"], "catch_up_once", "{schedule}");

    // Two due times pass: each queued one run that answered onto the thread.
    let fired = wait_for("two fires whose runs succeeded", async || {
        let runs = history(&app, &admin, &id).await;
        (runs.iter().filter(|r| r["status"] == "succeeded" && r["run_status"] == "succeeded").count() >= 2).then_some(runs)
    })
    .await;
    assert!(fired.iter().all(|r| r["trigger"] == "cron" && r["due_ms"].as_i64().unwrap() % 2000 == 0), "due on even seconds: {fired:?}");
    let dues: HashSet<i64> = fired.iter().map(|r| r["due_ms"].as_i64().unwrap()).collect();
    assert_eq!(dues.len(), fired.len(), "each due time once: {fired:?}");
    let (_, messages) = send(&app, &admin, Method::GET, &format!("/api/v1/threads/{thread_id}/messages"), None).await;
    let texts: Vec<&str> = messages["data"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert!(texts.iter().filter(|t| t.contains("tick")).count() >= 4, "the runs' exchanges joined the thread: {messages}");

    // Each fire reached the webhook as schedule.fired, naming the run it queued.
    let published = wait_for("schedule.fired deliveries", async || {
        let got: Vec<Value> = receiver.accepted().iter().filter_map(|m| serde_json::from_str(&m.body).ok()).collect();
        (got.len() >= 2).then_some(got)
    })
    .await;
    let event = &published[0];
    assert_eq!(
        (event["type"].as_str(), event["data"]["schedule_id"].as_str(), event["data"]["action"].as_str()),
        (Some("schedule.fired"), Some(id.as_str()), Some("run_agent")),
        "{event}"
    );
    assert!(fired.iter().any(|r| r["run_id"] == event["data"]["run_id"]), "{event}");

    // Disabled: no next due time, no more fires.
    let (status, disabled) = send(&app, &admin, Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!((status, disabled["next_fire_ms"].is_null()), (200, true), "{disabled}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = history(&app, &admin, &id).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(history(&app, &admin, &id).await.len(), settled, "a disabled schedule does not fire");

    // By hand: fires at once, as the caller, even while disabled.
    let (status, manual) = send(&app, &admin, Method::POST, &format!("/api/v1/schedules/{id}/trigger"), None).await;
    assert_eq!((status, manual["trigger"].as_str(), manual["status"].as_str()), (202, Some("manual"), Some("queued")), "{manual}");
    wait_for("the manual fire's run", async || {
        let runs = history(&app, &admin, &id).await;
        runs.iter().find(|r| r["id"] == manual["id"] && r["run_status"] == "succeeded").cloned()
    })
    .await;

    // Deleted: gone with its history.
    assert_eq!(send(&app, &admin, Method::DELETE, &format!("/api/v1/schedules/{id}"), None).await.0, 204);
    assert_eq!(send(&app, &admin, Method::GET, &format!("/api/v1/schedules/{id}/runs"), None).await.0, 404);
}

#[tokio::test]
async fn schedules_refuse_bad_timing_and_actions_and_stay_with_their_owner() {
    let app = spawn_app_with(mock_knowledge()).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let run_math = json!({ "type": "run_agent", "agent": "math", "input": "1+1" });
    let cases = [
        (json!({ "name": "x", "cron": "61 * * * *", "action": run_math }), "cron"),
        (json!({ "name": "x", "cron": "0 9 * * *", "timezone": "Mars/Olympus", "action": run_math }), "timezone"),
        (json!({ "name": "x", "cron": "* * * * * *", "action": run_math }), "cron"),
        (json!({ "name": "x", "cron": "0 0 30 2 *", "action": run_math }), "cron"),
        (json!({ "name": "", "cron": "@daily", "action": run_math }), "name"),
        (json!({ "name": "x", "cron": "@daily", "action": { "type": "run_agent", "agent": "nobody", "input": "hi" } }), "action"),
        (json!({ "name": "x", "cron": "@daily", "action": { "type": "run_agent", "agent": "math", "input": " " } }), "action"),
    ];
    for (body, param) in cases {
        let (status, refused) = send(&app, &admin, Method::POST, "/api/v1/schedules", Some(body.clone())).await;
        assert_eq!((status, refused["error"]["param"].as_str()), (400, Some(param)), "{body} → {refused}");
    }
    let (status, refused) =
        send(&app, &admin, Method::POST, "/api/v1/schedules", Some(json!({ "name": "x", "cron": "@daily", "action": { "type": "shell", "command": "rm -rf /" } }))).await;
    assert_eq!(status, 400, "an unknown action: {refused}");
    let (status, refused) =
        send(&app, &admin, Method::POST, "/api/v1/schedules", Some(json!({ "name": "x", "cron": "@daily", "action": { "type": "refetch_collection", "collection_id": "nope" } })))
            .await;
    assert_eq!(status, 404, "an unknown collection: {refused}");

    let (status, every_minute) =
        send(&app, &admin, Method::POST, "/api/v1/schedules", Some(json!({ "name": "m", "cron": "* * * * *", "misfire": "skip", "action": run_math }))).await;
    assert_eq!(status, 201, "{every_minute}");
    let id = every_minute["id"].as_str().unwrap();
    // A member without manage_integrations cannot reach schedules at all.
    app.add_member(&admin, "acme", "user@example.com", "user").await;
    let user = app.token("user@example.com").await;
    assert_eq!(send(&app, &user, Method::GET, "/api/v1/schedules", None).await.0, 403);
    assert_eq!(send(&app, &user, Method::POST, &format!("/api/v1/schedules/{id}/trigger"), None).await.0, 403);
    // Retimed: the next due time follows, in its zone.
    let (status, retimed) = send(&app, &admin, Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({ "cron": "0 9 * * MON", "timezone": "America/New_York" }))).await;
    assert_eq!(status, 200, "{retimed}");
    let next = chrono::DateTime::from_timestamp_millis(retimed["next_fire_ms"].as_i64().unwrap()).unwrap().with_timezone(&chrono_tz::America::New_York);
    assert_eq!(next.format("%a %H:%M").to_string(), "Mon 09:00", "{retimed}");
    let (status, refused) = send(&app, &admin, Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({ "cron": "nonsense" }))).await;
    assert_eq!((status, refused["error"]["param"].as_str()), (400, Some("cron")), "{refused}");
}

#[tokio::test]
async fn a_schedule_refetches_its_collections_url_documents() {
    let site = Site::start(PAGES).await;
    let mut options = mock_knowledge();
    options.schedules = fast_schedules();
    options.knowledge.url_fetch.allow = vec![agentry_core::outbound::AllowEntry::parse("127.0.0.1").unwrap()];
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "web" }))).await;
    let collection_id = collection["id"].as_str().unwrap().to_owned();
    let documents = format!("/api/v1/collections/{collection_id}/documents");
    let (status, accepted) = send(&app, &admin, Method::POST, &documents, Some(json!({ "url": site.url("127.0.0.1", "/policies/security.html") }))).await;
    assert_eq!(status, 202, "{accepted}");
    wait_ingested(&app, &admin, &accepted).await;
    let (status, _) = send(&app, &admin, Method::POST, &documents, Some(json!({ "text": "Not from the web." }))).await;
    assert_eq!(status, 202);
    let hits_before = site.hits();

    let body = json!({ "name": "recrawl", "cron": "0 3 * * *", "action": { "type": "refetch_collection", "collection_id": collection_id } });
    let (status, schedule) = send(&app, &admin, Method::POST, "/api/v1/schedules", Some(body)).await;
    assert_eq!(status, 201, "{schedule}");
    let id = schedule["id"].as_str().unwrap();
    let (status, manual) = send(&app, &admin, Method::POST, &format!("/api/v1/schedules/{id}/trigger"), None).await;
    assert_eq!(status, 202, "{manual}");
    let done = wait_for("the refetch", async || history(&app, &admin, id).await.into_iter().find(|r| r["status"] != "queued")).await;
    assert_eq!((done["status"].as_str(), done["result"]["queued"].as_i64()), (Some("succeeded"), Some(1)), "only the URL document: {done}");
    let document_id = accepted["document"]["id"].as_str().unwrap();
    wait_for("version 2 fetched", async || {
        let (_, document) = send(&app, &admin, Method::GET, &format!("/api/v1/documents/{document_id}"), None).await;
        (document["current_version"] == 2).then_some(())
    })
    .await;
    assert!(site.hits() > hits_before, "the page was fetched again");
}

#[tokio::test]
async fn a_schedule_due_while_two_servers_share_postgres_fires_once() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let options = || TestOptions { postgres_url: Some(url.clone()), schedules: fast_schedules(), ..TestOptions::default() };
    let first = spawn_app_with(options()).await;
    let second = spawn_app_with(options()).await;
    first.bootstrap().await;
    let admin = first.token(ADMIN_EMAIL).await;
    create_echo_agent(&first, &admin, "acme").await;
    let body = json!({ "name": "race", "cron": "* * * * * *", "action": { "type": "run_agent", "agent": "echo", "input": "once" } });
    let (status, schedule) = send(&first, &admin, Method::POST, "/api/v1/schedules", Some(body)).await;
    assert_eq!(status, 201, "{schedule}");
    let id = schedule["id"].as_str().unwrap().to_owned();
    // Both servers poll every 100 ms for about four due times.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (status, _) = send(&second, &admin, Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({ "enabled": false }))).await;
    assert_eq!(status, 200);
    let fired = wait_for("every fire's run to end", async || {
        let runs = history(&second, &admin, &id).await;
        runs.iter().all(|r| r["run_status"] == "succeeded").then_some(runs)
    })
    .await;
    assert!(fired.len() >= 3, "about four due times fired: {fired:?}");
    let dues: HashSet<i64> = fired.iter().map(|r| r["due_ms"].as_i64().unwrap()).collect();
    assert_eq!(dues.len(), fired.len(), "no due time fired twice: {fired:?}");
    // Each fire queued exactly one run: the tenant's runs are exactly the fires' runs.
    let (_, runs) = send(&first, &admin, Method::GET, "/api/v1/runs?limit=100", None).await;
    let run_ids: HashSet<&str> = runs["data"].as_array().unwrap().iter().filter_map(|r| r["id"].as_str()).collect();
    let fired_ids: HashSet<&str> = fired.iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert_eq!(run_ids, fired_ids, "one run per fire");
}

#[tokio::test]
async fn a_failed_fire_is_retried_only_by_its_owner_with_their_own_access() {
    let mut options = mock_knowledge();
    options.schedules = fast_schedules();
    let app = spawn_app_with(options).await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    create_echo_agent(&app, &admin, "acme").await;
    let body = json!({ "name": "doomed", "cron": "* * * * * *", "action": { "type": "run_agent", "agent": "echo", "input": "hi" } });
    let (status, schedule) = send(&app, &admin, Method::POST, "/api/v1/schedules", Some(body)).await;
    assert_eq!(status, 201, "{schedule}");
    let id = schedule["id"].as_str().unwrap().to_owned();
    // The agent goes away: the next fire fails, with the reason, and the schedule stops.
    assert_eq!(send(&app, &admin, Method::DELETE, "/api/v1/agents/echo", None).await.0, 204);
    let failed = wait_for("a failed fire", async || history(&app, &admin, &id).await.into_iter().find(|r| r["status"] == "failed")).await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("echo")), "{failed}");
    assert_eq!(send(&app, &admin, Method::PATCH, &format!("/api/v1/schedules/{id}"), Some(json!({ "enabled": false }))).await.0, 200);
    let job = failed["job_id"].as_str().unwrap();

    // Another administrator sees the fire's job but cannot run it again: it would act with their access on the owner's action.
    app.add_member(&admin, "acme", "second-admin@example.com", "admin").await;
    let second = app.token("second-admin@example.com").await;
    let (status, shown) = send(&app, &second, Method::GET, &format!("/api/v1/jobs/{job}"), None).await;
    assert_eq!((status, shown["kind"].as_str()), (200, Some("schedule")), "{shown}");
    let (status, refused) = send(&app, &second, Method::POST, &format!("/api/v1/jobs/{job}/retry"), None).await;
    assert_eq!(status, 403, "{refused}");
    // Its owner can, with their own credential.
    let (status, retried) = send(&app, &admin, Method::POST, &format!("/api/v1/jobs/{job}/retry"), None).await;
    assert_eq!((status, retried["status"].as_str()), (200, Some("queued")), "{retried}");
    let again = wait_for("the retried fire to end", async || history(&app, &admin, &id).await.into_iter().find(|r| r["id"] == failed["id"] && r["status"] != "queued")).await;
    assert_eq!(again["status"], "failed", "the agent is still gone: {again}");
}
