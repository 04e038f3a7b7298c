//! The agent runtime through the running server on the mock models:
//! routing, the math agent's exactness, RAG citations only from readable
//! chunks, tool allowlists, schema rejection and SSRF refusal, limits,
//! timeouts and cancellation, SSE resumption with `Last-Event-ID`, threads
//! that survive a restart and fold old turns into a summary, and agents
//! through the OpenAI surface. SQLite, and PostgreSQL for the stored parts.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Run and wait: the run's record.
async fn run(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, run) = send(app, token, Method::POST, "/api/v1/runs", Some(body)).await;
    assert_eq!(status, 200, "{run}");
    run
}

/// SSE frames as (id, event JSON).
fn events(body: &str) -> Vec<(usize, Value)> {
    body.split("\n\n")
        .filter_map(|frame| {
            let id = frame.lines().find_map(|l| l.strip_prefix("id:"))?.trim().parse().ok()?;
            let data = frame.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
            Some((id, serde_json::from_str(data).ok()?))
        })
        .collect()
}

fn of_type<'a>(events: &'a [(usize, Value)], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|(_, e)| e["type"] == kind).map(|(_, e)| e).collect()
}

async fn admin(app: &TestApp) -> (String, String) {
    let tenant = app.bootstrap().await;
    (tenant, app.token(ADMIN_EMAIL).await)
}

#[tokio::test]
async fn auto_routing_picks_each_agent_and_records_the_decision() {
    let app = spawn_app_with(mock_knowledge()).await;
    let (tenant, token) = admin(&app).await;
    let image = json!([{ "role": "user", "content": [
        { "type": "text", "text": "What is in this picture?" },
        { "type": "image_url", "image_url": { "url": "data:image/png;base64,iVBORw0KGgo=" } },
    ]}]);
    let cases = [
        (json!("What is 3/4 + 1/6?"), "math"),
        (json!("Write a Python function that reverses a string"), "code"),
        (json!("What does our policy say about refunds?"), "rag"),
        (json!("Tell me a joke about cats"), "general"),
        (image, "vision"),
    ];
    for (input, agent) in cases {
        let run = run(&app, &token, json!({ "agent": "auto", "input": input })).await;
        assert_eq!(run["agent"], agent, "{run}");
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["routing"]["routed_by"], "keywords", "{run}");
        assert!(run["routing"]["confidence"].as_f64().unwrap() > 0.0, "{run}");
    }
    // Named agents are explicit; a model that cannot see refuses images clearly.
    let named = run(&app, &token, json!({ "agent": "general", "input": "hello there" })).await;
    assert_eq!((named["routing"]["routed_by"].as_str(), named["output"].as_str()), (Some("explicit"), Some("echo: hello there")));
    let response = app
        .with(Method::POST, "/api/v1/runs", &token)
        .json(&json!({ "agent": "general", "input": [{ "role": "user", "content": [{ "type": "image_url", "image_url": { "url": "data:image/png;base64,AA==" } }] }] }))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "model_cannot_see").await;
    // A viewer may use no agent; auto routing never picks one they cannot use.
    app.add_member(&token, &tenant, "viewer@example.com", "viewer").await;
    let viewer = app.token("viewer@example.com").await;
    let response = app.with(Method::POST, "/api/v1/runs", &viewer).json(&json!({ "agent": "math", "input": "1+1" })).send().await.unwrap();
    assert_error(response, 403, "permission_denied").await;
    let response = app.with(Method::POST, "/api/v1/runs", &viewer).json(&json!({ "input": "1+1" })).send().await.unwrap();
    assert_error(response, 403, "permission_denied").await;
    // Bad input never starts a run.
    for body in [json!({ "input": "" }), json!({ "input": [] }), json!({ "agent": "nope", "input": "hi" }), json!({ "input": "hi", "stream": true, "background": true })] {
        let response = app.with(Method::POST, "/api/v1/runs", &token).json(&body).send().await.unwrap();
        assert!(matches!(response.status().as_u16(), 400 | 404), "{body}");
    }
}

#[tokio::test]
async fn the_math_agent_computes_exactly_with_the_calculator() {
    let app = spawn_app().await;
    let (_, token) = admin(&app).await;
    let cases = [
        ("What is 3/4 + 1/6?", "11/12"),
        ("What is 2^100?", "1267650600228229401496703205376"),
        ("Solve 2x + 3 = 11", "x = 4"),
        ("what's the square root of 144", "12"),
        ("0.1 + 0.2", "3/10"),
        ("What is 25! ?", "15511210043330985984000000"),
        ("123456789012345678901234567890 * 987654321098765432109876543210", "121932631137021795226185032733622923332237463801111263526900"),
        ("Solve 3x - 5 = x + 7", "x = 6"),
        ("What is 15% of 80?", "12"),
    ];
    for (question, exact) in cases {
        let run = run(&app, &token, json!({ "agent": "math", "input": question })).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let output = run["output"].as_str().unwrap();
        assert!(output.contains(exact), "{question}: {output}");
        assert_eq!(run["tool_calls"][0]["tool"], "calculator", "{run}");
        assert_eq!(run["tool_calls"][0]["status"], "succeeded", "{run}");
    }
    let failed = run(&app, &token, json!({ "agent": "math", "input": "What is 1/0?" })).await;
    assert!(failed["output"].as_str().unwrap().contains("division by zero"), "{failed}");
    // Nothing to compute: the model is never trusted with numbers.
    let vague = run(&app, &token, json!({ "agent": "math", "input": "tell me something nice" })).await;
    assert_eq!(vague["output"], agentry_core::agents::MATH_UNREADABLE, "{vague}");
}

#[tokio::test]
async fn rag_cites_only_chunks_the_asker_may_read() {
    let app = spawn_app_with(mock_knowledge()).await;
    let (tenant, token) = admin(&app).await;
    let (_, me) = send(&app, &token, Method::GET, "/api/v1/auth/me", None).await;
    let admin_id = me["user"]["id"].as_str().unwrap().to_owned();
    app.add_member(&token, &tenant, "reader@example.com", "user").await;
    let reader = app.token("reader@example.com").await;
    // Nothing readable: "I don't know", with no citations and no model call.
    let unknown = run(&app, &reader, json!({ "agent": "rag", "input": "What about zebra food?" })).await;
    assert_eq!(unknown["output"], agentry_core::agents::RAG_UNKNOWN, "{unknown}");
    assert_eq!(unknown["citations"], json!([]), "{unknown}");
    let (_, collection) = send(&app, &token, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();
    let upload = |text: &str, acl: Value| json!({ "text": text, "title": text.split('.').next().unwrap(), "acl": acl });
    let path = format!("/api/v1/collections/{collection}/documents");
    let (_, open) = send(&app, &token, Method::POST, &path, Some(upload("Zebra care. Zebras eat grass every morning.", json!({})))).await;
    let (_, secret) = send(&app, &token, Method::POST, &path, Some(upload("Zebra budget. The zebra budget is secret.", json!({ "users": [admin_id] })))).await;
    for doc in [&open, &secret] {
        let job = doc["job_id"].as_str().unwrap();
        let mut status = Value::Null;
        for _ in 0..200 {
            let (_, job) = send(&app, &token, Method::GET, &format!("/api/v1/ingest-jobs/{job}"), None).await;
            status = job["status"].clone();
            if status == "succeeded" || status == "failed" {
                assert_eq!(status, "succeeded", "{job}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, "succeeded");
    }
    let open_id = open["document"]["id"].as_str().unwrap();
    let secret_id = secret["document"]["id"].as_str().unwrap();
    // The mock model echoes the question, so [1] [2] in it are the answer's citations.
    let question = json!({ "agent": "rag", "input": "What about zebra food [1] [2]?", "stream": true });
    let body = app.with(Method::POST, "/api/v1/runs", &reader).json(&question).send().await.unwrap().text().await.unwrap();
    let seen = events(&body);
    let citations = of_type(&seen, "citation");
    assert!(!citations.is_empty(), "{body}");
    assert!(citations.iter().all(|c| c["document_id"] == open_id), "{body}");
    assert!(!body.contains("secret"), "nothing of the restricted document reaches the reader: {body}");
    let tool = of_type(&seen, "tool_call");
    assert_eq!(tool[0]["tool"], "knowledge_search", "{body}");
    // The owner of the restricted document may be cited it.
    let body = app.with(Method::POST, "/api/v1/runs", &token).json(&question).send().await.unwrap().text().await.unwrap();
    let cited: Vec<Value> = of_type(&events(&body), "citation").into_iter().map(|c| c["document_id"].clone()).collect();
    assert!(cited.contains(&json!(secret_id)) && cited.contains(&json!(open_id)), "{body}");
    // The asker's ACL is part of the answer cache's scope: the reader's cached answer is never the admin's.
    let again = app.with(Method::POST, "/api/v1/runs", &reader).json(&question).send().await.unwrap().text().await.unwrap();
    assert!(!again.contains(secret_id), "{again}");
    let lexical = run(&app, &reader, json!({ "agent": "rag", "input": "zebras eat grass every morning [1]" })).await;
    assert_eq!(lexical["quality_score"], 1.0, "every sentence is supported by its cited passage: {lexical}");
    let metrics = app.metrics().await;
    assert!(metrics.contains("agent_quality_score_bucket{agent_type=\"rag\",le=\"1\"}"), "a histogram: {metrics}");
}

#[tokio::test]
async fn a_configured_judge_model_grades_rag_answers() {
    let mut options = mock_knowledge();
    options.agents.judge_model = Some("mock-judge".into());
    let app = spawn_app_with(options).await;
    let (_, token) = admin(&app).await;
    let (_, collection) = send(&app, &token, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let path = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let (_, accepted) = send(&app, &token, Method::POST, &path, Some(json!({ "text": "Otters hold hands while sleeping.", "title": "Otters" }))).await;
    let job = accepted["job_id"].as_str().unwrap();
    for _ in 0..200 {
        if send(&app, &token, Method::GET, &format!("/api/v1/ingest-jobs/{job}"), None).await.1["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let graded = run(&app, &token, json!({ "agent": "rag", "input": "Do otters hold hands while sleeping?" })).await;
    assert_eq!(graded["quality_score"], 0.25, "{graded}");
    assert_eq!(graded["model_calls"], 2, "the answer and the grade: {graded}");
}

#[tokio::test]
async fn tools_are_allowlisted_schema_checked_ssrf_guarded_and_audited() {
    let app = spawn_app().await;
    let (tenant, token) = admin(&app).await;
    let definition = json!({ "name": "tooler", "instructions": "Use tools.", "model": "mock-tools", "tools": ["calculator", "http_fetch"] });
    let (status, created) = send(&app, &token, Method::POST, "/api/v1/agents", Some(definition)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    // Wrong arguments are rejected before the tool runs; the model hears why.
    let rejected = run(&app, &token, json!({ "agent": "tooler", "input": "call:calculator {\"expr\": 1}" })).await;
    assert_eq!(rejected["tool_calls"][0]["status"], "rejected", "{rejected}");
    assert!(rejected["output"].as_str().unwrap().contains("expression"), "{rejected}");
    // A tool the agent was not given is refused.
    let refused = run(&app, &token, json!({ "agent": "tooler", "input": "call:current_time {}" })).await;
    assert_eq!(refused["tool_calls"][0]["status"], "rejected", "{refused}");
    assert!(refused["tool_calls"][0]["result"].as_str().unwrap().contains("not available"), "{refused}");
    // Loopback is refused by the outbound guard.
    let ssrf = run(&app, &token, json!({ "agent": "tooler", "input": format!("call:http_fetch {{\"url\": \"{}/health\"}}", app.address) })).await;
    assert_eq!(ssrf["tool_calls"][0]["status"], "failed", "{ssrf}");
    assert!(ssrf["tool_calls"][0]["result"].as_str().unwrap().to_lowercase().contains("not allowlisted"), "{ssrf}");
    // A valid call runs.
    let ok = run(&app, &token, json!({ "agent": "tooler", "input": "call:calculator {\"expression\": \"6*7\"}" })).await;
    assert_eq!(ok["tool_calls"][0]["status"], "succeeded", "{ok}");
    assert!(ok["output"].as_str().unwrap().contains("42"), "{ok}");
    // Every call is in the audit log.
    let mut audited = 0;
    for _ in 0..50 {
        let (_, audit) = send(&app, &token, Method::GET, &format!("/api/v1/tenants/{tenant}/audit?action=agent.tool_call"), None).await;
        audited = audit["data"].as_array().map_or(0, |a| a.iter().filter(|e| e["action"] == "agent.tool_call").count());
        if audited >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(audited, 4);
    let metrics = app.metrics().await;
    assert!(metrics.contains("tool_calls_total{tool_name=\"calculator\",status=\"rejected\"}"), "{metrics}");
    assert!(metrics.contains("agent_requests_total{agent_type=\"custom\",status=\"succeeded\"}"), "{metrics}");
    // Definitions are versioned; bad ones are refused.
    let (status, updated) = send(&app, &token, Method::PUT, "/api/v1/agents/tooler", Some(json!({ "instructions": "v2", "model": "mock-tools" }))).await;
    assert_eq!((status, updated["version"].as_i64()), (200, Some(2)), "{updated}");
    let (_, versions) = send(&app, &token, Method::GET, "/api/v1/agents/tooler/versions", None).await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 2);
    for bad in [
        json!({ "name": "x", "instructions": "i", "tools": ["rm_rf"] }),
        json!({ "name": "math", "instructions": "i" }),
        json!({ "name": "y", "instructions": "i", "model": "nope" }),
    ] {
        let (status, error) = send(&app, &token, Method::POST, "/api/v1/agents", Some(bad)).await;
        assert_eq!(status, 400, "{error}");
    }
}

#[tokio::test]
async fn runs_obey_step_and_tool_limits_timeouts_and_cancellation() {
    let app = spawn_app().await;
    let (tenant, token) = admin(&app).await;
    let agents = [
        json!({ "name": "looper", "instructions": "i", "model": "mock-tool-loop", "tools": ["current_time"], "max_steps": 3, "max_tool_calls": 10 }),
        json!({ "name": "caller", "instructions": "i", "model": "mock-tool-loop", "tools": ["current_time"], "max_steps": 10, "max_tool_calls": 2 }),
        json!({ "name": "sleepy", "instructions": "i", "model": "mock-slow-400", "timeout_secs": 0.3 }),
        json!({ "name": "slow", "instructions": "i", "model": "mock-slow-400" }),
    ];
    for agent in agents {
        let (status, body) = send(&app, &token, Method::POST, "/api/v1/agents", Some(agent)).await;
        assert_eq!(status, 201, "{body}");
    }
    let looped = run(&app, &token, json!({ "agent": "looper", "input": "go" })).await;
    assert_eq!(looped["status"], "failed", "{looped}");
    assert!(looped["error"].as_str().unwrap().contains("3 model calls"), "{looped}");
    let called = run(&app, &token, json!({ "agent": "caller", "input": "go" })).await;
    assert!(called["error"].as_str().unwrap().contains("2 tool calls"), "{called}");
    let slept = run(&app, &token, json!({ "agent": "sleepy", "input": "go" })).await;
    assert_eq!(slept["status"], "failed", "{slept}");
    assert!(slept["error"].as_str().unwrap().contains("limit of 0.3 s"), "{slept}");
    // Background: 202 at once, then cancel.
    let (status, started) = send(&app, &token, Method::POST, "/api/v1/runs", Some(json!({ "agent": "slow", "input": "go", "background": true }))).await;
    assert_eq!(status, 202, "{started}");
    assert!(matches!(started["status"].as_str(), Some("pending" | "running")), "{started}");
    let id = started["id"].as_str().unwrap();
    // Running (a worker has it; a run cancelled while still queued never streams).
    for _ in 0..200 {
        if send(&app, &token, Method::GET, &format!("/api/v1/runs/{id}"), None).await.1["status"] == "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, cancelled) = send(&app, &token, Method::POST, &format!("/api/v1/runs/{id}/cancel"), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (200, Some("cancelled")), "{cancelled}");
    let body = app.with(Method::GET, &format!("/api/v1/runs/{id}/events"), &token).send().await.unwrap().text().await.unwrap();
    assert_eq!(events(&body).last().unwrap().1["code"], "cancelled", "{body}");
    // Someone else's run does not exist for them.
    app.add_member(&token, &tenant, "other@example.com", "user").await;
    let other = app.token("other@example.com").await;
    let (status, _) = send(&app, &other, Method::GET, &format!("/api/v1/runs/{id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_dropped_stream_resumes_with_last_event_id_and_the_thread_stays_whole() {
    let app = spawn_app().await;
    let (_, token) = admin(&app).await;
    let (_, slow) = send(&app, &token, Method::POST, "/api/v1/agents", Some(json!({ "name": "slow", "instructions": "i", "model": "mock-slow-400" }))).await;
    assert_eq!(slow["name"], "slow");
    let (_, thread) = send(&app, &token, Method::POST, "/api/v1/threads", Some(json!({ "title": "t" }))).await;
    let thread = thread["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/threads/{thread}/runs");
    let response = app.with(Method::POST, &path, &token).json(&json!({ "agent": "slow", "input": "one two three", "stream": true })).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let run_id = response.headers()["x-agentry-run-id"].to_str().unwrap().to_owned();
    drop(response);
    // A second run on a busy thread is refused, not interleaved.
    let (status, busy) = send(&app, &token, Method::POST, &path, Some(json!({ "input": "again" }))).await;
    assert_eq!(status, 409, "{busy}");
    let full = app.with(Method::GET, &format!("/api/v1/runs/{run_id}/events"), &token).send().await.unwrap().text().await.unwrap();
    let all = events(&full);
    assert_eq!(all.iter().map(|(id, _)| *id).collect::<Vec<_>>(), (1..=all.len()).collect::<Vec<_>>(), "{full}");
    assert_eq!(all.last().unwrap().1["type"], "done", "{full}");
    let tokens: String = of_type(&all, "token").iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(tokens, "echo: one two three");
    let resumed = app.with(Method::GET, &format!("/api/v1/runs/{run_id}/events"), &token).header("Last-Event-ID", "2").send().await.unwrap().text().await.unwrap();
    assert_eq!(events(&resumed), all[2..].to_vec());
    let response = app.with(Method::GET, &format!("/api/v1/runs/{run_id}/events"), &token).header("Last-Event-ID", "x").send().await.unwrap();
    assert_error(response, 400, "invalid_request").await;
    let (_, messages) = send(&app, &token, Method::GET, &format!("/api/v1/threads/{thread}/messages"), None).await;
    let roles: Vec<&str> = messages["data"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"], "{messages}");
}

async fn threads_flow(app: TestApp, options: TestOptions) {
    let (_, token) = admin(&app).await;
    let (_, small) = send(&app, &token, Method::POST, "/api/v1/agents", Some(json!({ "name": "small", "instructions": "Be brief.", "model": "mock-tiny-window" }))).await;
    assert_eq!(small["name"], "small", "{small}");
    let (status, thread) =
        send(&app, &token, Method::POST, "/api/v1/threads", Some(json!({ "title": "Trip planning", "metadata": { "team": "ops" }, "pinned": ["The user is called Ada."] }))).await;
    assert_eq!(status, 201, "{thread}");
    let thread = thread["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/threads/{thread}/runs");
    for turn in 0..6 {
        let (status, run) = send(
            &app,
            &token,
            Method::POST,
            &path,
            Some(json!({ "agent": "small", "input": format!("turn {turn}: please remember the number {turn}{turn}{turn} and the colour blue for later") })),
        )
        .await;
        assert_eq!((status, run["status"].as_str()), (200, Some("succeeded")), "{run}");
    }
    let app = app.restart(options).await;
    let token = app.token(ADMIN_EMAIL).await;
    let (_, view) = send(&app, &token, Method::GET, &format!("/api/v1/threads/{thread}"), None).await;
    assert_eq!(view["message_count"], 12, "{view}");
    assert_eq!(view["pinned"], json!(["The user is called Ada."]));
    assert!(view["summarized_through"].as_i64().unwrap() > 0, "old turns were folded into the summary: {view}");
    assert!(!view["summary"].as_str().unwrap().is_empty(), "{view}");
    let (status, run) = send(&app, &token, Method::POST, &path, Some(json!({ "agent": "small", "input": "and now?" }))).await;
    assert_eq!((status, run["status"].as_str()), (200, Some("succeeded")), "{run}");
    let (_, found) = send(&app, &token, Method::GET, "/api/v1/threads?q=colour%20BLUE", None).await;
    assert_eq!(found["data"][0]["id"], thread, "{found}");
    let (_, none) = send(&app, &token, Method::GET, "/api/v1/threads?q=purple", None).await;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let (_, runs) = send(&app, &token, Method::GET, &format!("/api/v1/threads/{thread}/runs"), None).await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 7);
    let (status, patched) = send(&app, &token, Method::PATCH, &format!("/api/v1/threads/{thread}"), Some(json!({ "title": "Renamed" }))).await;
    assert_eq!((status, patched["title"].as_str()), (200, Some("Renamed")));
    let (status, _) = send(&app, &token, Method::DELETE, &format!("/api/v1/threads/{thread}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = send(&app, &token, Method::GET, &format!("/api/v1/threads/{thread}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn threads_persist_across_a_restart_and_summarise_old_turns_on_sqlite() {
    threads_flow(spawn_app().await, TestOptions::default()).await;
}

#[tokio::test]
async fn threads_persist_across_a_restart_and_summarise_old_turns_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    let options = || TestOptions { postgres_url: Some(url.clone()), ..TestOptions::default() };
    threads_flow(spawn_app_with(options()).await, options()).await;
}

#[tokio::test]
async fn agents_answer_through_the_openai_surface() {
    let app = spawn_app().await;
    let (_, token) = admin(&app).await;
    let response = app.with(Method::POST, "/v1/chat/completions", &token).json(&json!({ "model": "agent:math", "messages": user_message("What is 7 * 6?") })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-agentry-run-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "agent:math");
    assert!(body["choices"][0]["message"]["content"].as_str().unwrap().contains("42"), "{body}");
    let response = app
        .with(Method::POST, "/v1/chat/completions", &token)
        .json(&json!({ "model": "agent:auto", "messages": user_message("Tell me a story"), "stream": true, "stream_options": { "include_usage": true } }))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]", "{text}");
    let chunks: Vec<Value> = data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "echo: Tell me a story");
    assert!(chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"), "{text}");
    assert!(chunks.last().unwrap()["usage"]["total_tokens"].as_u64().unwrap() > 0, "{text}");
    let response = app.with(Method::POST, "/v1/chat/completions", &token).json(&json!({ "model": "agent:nobody", "messages": user_message("hi") })).send().await.unwrap();
    assert_error(response, 404, "not_found").await;
}
