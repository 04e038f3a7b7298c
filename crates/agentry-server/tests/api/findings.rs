//! One test per finding of the object-level authorization review (issue
//! 17), each written as the attack and failing on the code before the fix:
//! a `user` taking over the admin's key, grants beyond the granter, a
//! models-only key reading conversations, stored HTML rendered inline, a
//! flood of rejected keys in the audit log, personalised RAG answers served
//! to colleagues, an unreadable ACL read as "everyone", and invoices paid
//! through the test provider.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

async fn acme_with_user(app: &TestApp) -> (String, String, String) {
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let user_id = app.add_member(&admin, "acme", "mallory@example.com", "user").await;
    let user = app.token("mallory@example.com").await;
    (admin, user, user_id)
}

#[tokio::test]
async fn finding_1_a_user_cannot_take_over_the_admins_key() {
    let app = spawn_app().await;
    let (admin, user, user_id) = acme_with_user(&app).await;
    let (status, admin_key) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "ops" }))).await;
    assert_eq!(status, 201);
    let admin_key_id = admin_key["id"].as_str().unwrap();

    // The attack: list every key, rotate the admin's (the new secret comes back), use it to promote oneself.
    let (status, listed) = send(&app, &user, Method::GET, "/api/v1/tenants/acme/api-keys", None).await;
    assert_eq!(status, 200);
    assert!(listed["data"].as_array().unwrap().iter().all(|k| k["user_id"] == json!(user_id)), "a user sees only their own keys: {listed}");
    let (status, rotated) = send(&app, &user, Method::POST, &format!("/api/v1/tenants/acme/api-keys/{admin_key_id}/rotate"), Some(json!({}))).await;
    assert_eq!(status, 404, "{rotated}");
    assert!(rotated.get("key").is_none());
    let (status, _) = send(&app, &user, Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{admin_key_id}"), None).await;
    assert_eq!(status, 404, "nor revoke it");
    let (status, _) = send(&app, &user, Method::PATCH, &format!("/api/v1/tenants/acme/users/{user_id}"), Some(json!({ "role": "admin" }))).await;
    assert_eq!(status, 403);

    // A holder of manage_api_keys revokes others' keys (within the ceiling) but never gets a secret for them.
    let keys_admin_role = json!({ "permissions": ["manage_api_keys", "use_models", "use_general_agent", "use_math_agent", "use_code_agent", "use_rag_agent", "use_vision_agent", "read_documents", "upload_documents"] });
    let (status, people) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/keys-admin", Some(keys_admin_role)).await;
    assert_eq!(status, 200, "{people}");
    app.add_member(&admin, "acme", "keys@example.com", "keys-admin").await;
    let keys_admin = app.token("keys@example.com").await;
    let (status, rotated) = send(&app, &keys_admin, Method::POST, &format!("/api/v1/tenants/acme/api-keys/{admin_key_id}/rotate"), Some(json!({}))).await;
    assert_eq!(status, 403, "{rotated}");
    assert!(rotated.get("key").is_none());
    let (status, _) = send(&app, &keys_admin, Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{admin_key_id}"), None).await;
    assert_eq!(status, 403, "the admin holds more than the keys admin");
    let (_, users_key) = send(&app, &user, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "to revoke" }))).await;
    let (status, _) = send(&app, &keys_admin, Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{}", users_key["id"].as_str().unwrap()), None).await;
    assert_eq!(status, 204, "a user's key is within the keys admin's reach");
    // A narrow key sees and revokes only itself, never its owner's other keys.
    let (_, narrow) = send(&app, &user, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "narrow", "scopes": ["use_models"] }))).await;
    let (_, listed) = send(&app, narrow["key"].as_str().unwrap(), Method::GET, "/api/v1/tenants/acme/api-keys", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    // The owner still rotates their own.
    let (_, own) = send(&app, &user, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "mine" }))).await;
    let (status, rotated) = send(&app, &user, Method::POST, &format!("/api/v1/tenants/acme/api-keys/{}/rotate", own["id"].as_str().unwrap()), Some(json!({}))).await;
    assert_eq!(status, 201, "{rotated}");
    assert!(rotated["key"].as_str().is_some_and(|k| k.starts_with("agk_")));
}

#[tokio::test]
async fn finding_2_no_grant_exceeds_the_granters_permissions() {
    let app = spawn_app().await;
    let (admin, _, user_id) = acme_with_user(&app).await;
    let (status, _) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/hr", Some(json!({ "permissions": ["manage_users", "manage_roles", "read_documents"] }))).await;
    assert_eq!(status, 200);
    app.add_member(&admin, "acme", "hr@example.com", "hr").await;
    let hr = app.token("hr@example.com").await;

    // Adding an admin, promoting someone to admin, or to a role holding more than hr: refused.
    let (status, body) = send(&app, &hr, Method::POST, "/api/v1/tenants/acme/users", Some(json!({ "email": "new-admin@example.com", "role": "admin" }))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "permission_denied");
    let (status, _) = send(&app, &hr, Method::PATCH, &format!("/api/v1/tenants/acme/users/{user_id}"), Some(json!({ "role": "admin" }))).await;
    assert_eq!(status, 403);
    // A role within hr's own permissions can be given.
    let (status, body) = send(&app, &hr, Method::PUT, "/api/v1/tenants/acme/roles/reader", Some(json!({ "permissions": ["read_documents"] }))).await;
    assert_eq!(status, 200, "{body}");
    // Custom role edits: no permission hr lacks, not even on its own role, and no edit of a role above it.
    let (status, _) =
        send(&app, &hr, Method::PUT, "/api/v1/tenants/acme/roles/hr", Some(json!({ "permissions": ["manage_users", "manage_roles", "read_documents", "manage_tenant"] }))).await;
    assert_eq!(status, 403);
    let (status, _) = send(&app, &hr, Method::PUT, "/api/v1/tenants/acme/roles/reader", Some(json!({ "permissions": ["read_documents", "export_data"] }))).await;
    assert_eq!(status, 403);
    let (status, _) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/auditor", Some(json!({ "permissions": ["view_audit"] }))).await;
    assert_eq!(status, 200);
    let (status, _) = send(&app, &hr, Method::PUT, "/api/v1/tenants/acme/roles/auditor", Some(json!({ "permissions": [] }))).await;
    assert_eq!(status, 403, "an existing role holding more than hr is not hr's to change");
    let (status, _) = send(&app, &hr, Method::DELETE, "/api/v1/tenants/acme/roles/auditor", None).await;
    assert_eq!(status, 403);
    // Nor joining a group (its members read what its documents grant) that hr is not in.
    let (_, board) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/groups", Some(json!({ "name": "Board" }))).await;
    let hr_id = app.add_member(&admin, "acme", "hr2@example.com", "hr").await;
    let (status, _) = send(&app, &hr, Method::PUT, &format!("/api/v1/tenants/acme/groups/{}/members/{hr_id}", board["id"].as_str().unwrap()), Some(json!({}))).await;
    assert_eq!(status, 403);
    // Nor a key scoped beyond its creator.
    let (status, _) = send(&app, &hr, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "k", "scopes": ["manage_tenant"] }))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn finding_4_a_models_only_key_reads_none_of_its_owners_conversations() {
    let app = spawn_app().await;
    let (_, user, _) = acme_with_user(&app).await;
    let (status, thread) = send(&app, &user, Method::POST, "/api/v1/threads", Some(json!({ "title": "private" }))).await;
    assert_eq!(status, 201, "{thread}");
    let thread_id = thread["id"].as_str().unwrap();
    let (status, run) = send(&app, &user, Method::POST, &format!("/api/v1/threads/{thread_id}/runs"), Some(json!({ "agent": "math", "input": "6*7" }))).await;
    assert_eq!(status, 200, "{run}");
    let run_id = run["id"].as_str().unwrap();
    let (_, key) = send(&app, &user, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "gateway", "scopes": ["use_models"] }))).await;
    let key = key["key"].as_str().unwrap();
    for path in [
        "/api/v1/threads".to_owned(),
        format!("/api/v1/threads/{thread_id}"),
        format!("/api/v1/threads/{thread_id}/messages"),
        "/api/v1/runs".into(),
        format!("/api/v1/runs/{run_id}"),
    ] {
        let (status, body) = send(&app, key, Method::GET, &path, None).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // Nor through A2A's GetTask.
    let get_task = json!({ "jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": { "id": run_id } });
    let (_, answer) = send(&app, key, Method::POST, "/a2a", Some(get_task)).await;
    assert!(answer["error"].is_object() && answer.get("result").is_none(), "{answer}");
    // The key still calls models.
    let chat = json!({ "model": "mock-echo", "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(send(&app, key, Method::POST, "/v1/chat/completions", Some(chat)).await.0, 200);
}

#[tokio::test]
async fn finding_5_stored_content_is_downloaded_never_rendered() {
    let app = spawn_app_with(mock_knowledge()).await;
    let (admin, _, _) = acme_with_user(&app).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "web" }))).await;
    let html = "<html><body><script>fetch('/api/v1/auth/me')</script>Hello</body></html>";
    let upload = json!({ "content_base64": base64_of(html), "file_name": "page.html", "title": "Page" });
    let (status, accepted) = send(&app, &admin, Method::POST, &format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap()), Some(upload)).await;
    assert_eq!(status, 202, "{accepted}");
    let document = accepted["document"]["id"].as_str().unwrap();
    let response = app.with(Method::GET, &format!("/api/v1/documents/{document}/versions/1"), &admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment"), "{headers:?}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("sandbox"), "{headers:?}");
    // Every JSON answer carries the API's own security headers, errors included.
    for (method, path) in [(Method::GET, "/api/v1/auth/me"), (Method::GET, "/api/v1/no-such-route")] {
        let response = app.with(method, path, &admin).send().await.unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn finding_7_a_flood_of_random_keys_writes_one_audit_event_and_unknown_accounts_lock_alike() {
    let app = spawn_app().await;
    let (admin, _, _) = acme_with_user(&app).await;
    for i in 0..300 {
        let key = format!("agk_{:0>43}", i);
        assert_eq!(app.with(Method::GET, "/api/v1/auth/me", &key).send().await.unwrap().status(), 401);
    }
    let (_, audit) = send(&app, &admin, Method::GET, "/api/v1/admin/audit?action=auth.api_key_rejected&limit=1000", None).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 1, "{audit}");
    let metrics = app.metrics().await;
    assert!(metrics.contains("auth_rejected_credentials_total{kind=\"auth.api_key_rejected\"} 300"), "{metrics}");

    // Lockout answers the same whether or not the account exists.
    let mut answers = Vec::new();
    for email in ["mallory@example.com", "nobody@example.com"] {
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(app.login(email, "wrong password 123").await.status().as_u16());
        }
        answers.push(statuses);
    }
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[0].last(), Some(&429), "{answers:?}");
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    for (trusted, want) in [(false, "127.0.0.1"), (true, "203.0.113.7")] {
        let trusted_proxies = if trusted { vec!["127.0.0.1/32".parse().unwrap()] } else { Vec::new() };
        let app = spawn_app_with(TestOptions { trusted_proxies, ..TestOptions::default() }).await;
        app.bootstrap().await;
        let response = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "203.0.113.7")
            .json(&json!({ "email": ADMIN_EMAIL, "password": "wrong password 1" }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let admin = app.token(ADMIN_EMAIL).await;
        let (_, audit) = send(&app, &admin, Method::GET, "/api/v1/admin/audit?action=auth.login&limit=10", None).await;
        let failed = audit["data"].as_array().unwrap().iter().find(|e| e["outcome"] == "failure").cloned().unwrap_or(Value::Null);
        assert_eq!(failed["ip"], want, "trusted: {trusted}: {audit}");
        let card = app
            .client
            .get(app.url("/.well-known/agent-card.json"))
            .header("x-forwarded-host", "agents.example.com")
            .header("x-forwarded-proto", "https")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(card.contains("https://agents.example.com"), trusted, "{card}");
    }
}

#[tokio::test]
async fn finding_8_personalised_rag_runs_are_never_cached_for_colleagues() {
    let app = spawn_app_with(mock_knowledge()).await;
    let (admin, user, _) = acme_with_user(&app).await;
    app.add_member(&admin, "acme", "colleague@example.com", "user").await;
    let colleague = app.token("colleague@example.com").await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let path = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let (_, accepted) = send(&app, &admin, Method::POST, &path, Some(json!({ "text": "Zebras eat grass every morning.", "title": "Zebras" }))).await;
    wait_ingested(&app, &admin, &accepted).await;
    // A cached answer is replayed without a model call.
    let model_calls = |run: &Value| run["model_calls"].as_i64().unwrap_or_else(|| panic!("{run}"));
    let ask = |token: String, path: String, body: Value| {
        let app = &app;
        async move {
            let (status, run) = send(app, &token, Method::POST, &path, Some(body)).await;
            assert_eq!(status, 200, "{run}");
            run
        }
    };

    // The caller's own system text shapes the answer: it is not stored for the colleague.
    let personal = json!({ "agent": "rag", "input": [
        { "role": "system", "content": "Answer in pirate speech." },
        { "role": "user", "content": "What do zebras eat?" },
    ] });
    let first = ask(user.clone(), "/api/v1/runs".into(), personal.clone()).await;
    assert!(model_calls(&first) >= 1, "{first}");
    let plain = ask(colleague.clone(), "/api/v1/runs".into(), json!({ "agent": "rag", "input": "What do zebras eat?" })).await;
    assert!(model_calls(&plain) >= 1, "the colleague was served the personalised answer: {plain}");
    // Self-contained runs are still cached (so the check above means something) — and never served to a personalised run.
    let again = ask(colleague.clone(), "/api/v1/runs".into(), json!({ "agent": "rag", "input": "What do zebras eat?" })).await;
    assert_eq!(model_calls(&again), 0, "a self-contained question is answered from the cache: {again}");
    let personal_again = ask(user.clone(), "/api/v1/runs".into(), personal).await;
    assert!(model_calls(&personal_again) >= 1, "{personal_again}");

    // A thread's pinned facts shape answers too.
    let (_, thread) = send(&app, &user, Method::POST, "/api/v1/threads", Some(json!({ "pinned": ["The codeword is OSPREY."] }))).await;
    let pinned = ask(user.clone(), format!("/api/v1/threads/{}/runs", thread["id"].as_str().unwrap()), json!({ "agent": "rag", "input": "What do zebras eat now?" })).await;
    assert!(model_calls(&pinned) >= 1, "{pinned}");
    let plain = ask(colleague, "/api/v1/runs".into(), json!({ "agent": "rag", "input": "What do zebras eat now?" })).await;
    assert!(model_calls(&plain) >= 1, "the colleague was served the pinned-fact answer: {plain}");
}

#[tokio::test]
async fn finding_9_an_unreadable_stored_acl_grants_nobody() {
    let app = spawn_app_with(mock_knowledge()).await;
    let (admin, user, _) = acme_with_user(&app).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let path = format!("/api/v1/collections/{}/documents", collection["id"].as_str().unwrap());
    let (_, accepted) = send(&app, &admin, Method::POST, &path, Some(json!({ "text": "Salaries are reviewed in March.", "title": "Salaries" }))).await;
    wait_ingested(&app, &admin, &accepted).await;
    let document = accepted["document"]["id"].as_str().unwrap();
    let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
    // Readable by everyone while its ACL is readable; once the stored ACL is garbage, by no one.
    let (status, body) = send(&app, &user, Method::GET, &format!("/api/v1/documents/{document}"), None).await;
    assert_eq!(status, 200, "{body}");
    sqlx::query("UPDATE documents SET acl = '{\"users\": 42' WHERE id = $1").bind(document).execute(&pool).await.unwrap();
    for token in [&user, &admin] {
        let (status, body) = send(&app, token, Method::GET, &format!("/api/v1/documents/{document}"), None).await;
        assert_eq!(status, 404, "{body}");
    }
}

#[tokio::test]
async fn a_server_without_a_payment_provider_refuses_to_mark_invoices_paid() {
    let app = spawn_app().await;
    let (admin, _, _) = acme_with_user(&app).await;
    let (status, invoice) = send(&app, &admin, Method::POST, "/api/v1/billing/invoices", Some(json!({ "period": "2025-01" }))).await;
    assert_eq!(status, 201, "{invoice}");
    let response = app.with(Method::POST, &format!("/api/v1/billing/invoices/{}/pay", invoice["id"].as_str().unwrap()), &admin).json(&json!({})).send().await.unwrap();
    let error = assert_error(response, 409, "conflict").await;
    assert!(error["message"].as_str().unwrap().contains("no payment provider"), "{error}");
}

#[tokio::test]
async fn changes_to_tenant_objects_are_audited() {
    let app = spawn_app_with(mock_knowledge()).await;
    let (admin, _, _) = acme_with_user(&app).await;
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "kb" }))).await;
    let collection_id = collection["id"].as_str().unwrap();
    send(&app, &admin, Method::POST, "/api/v1/agents", Some(json!({ "name": "helper", "instructions": "Be brief.", "model": "mock-echo" }))).await;
    send(&app, &admin, Method::DELETE, "/api/v1/agents/helper", None).await;
    send(&app, &admin, Method::POST, "/api/v1/costs/budgets", Some(json!({ "scope": "tenant", "period": "daily", "limit_usd": 5.0 }))).await;
    send(&app, &admin, Method::DELETE, &format!("/api/v1/collections/{collection_id}"), None).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, audit) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit?limit=100", None).await;
    let events: Vec<(String, String)> =
        audit["data"].as_array().unwrap().iter().map(|e| (e["action"].as_str().unwrap_or_default().to_owned(), e["resource"].as_str().unwrap_or_default().to_owned())).collect();
    for (action, resource) in [
        ("collection.create", format!("id:{collection_id}")),
        ("agent.create", "id:helper".to_owned()),
        ("agent.delete", "name:helper".to_owned()),
        ("collection.delete", format!("id:{collection_id}")),
    ] {
        assert!(events.iter().any(|(a, r)| a == action && *r == resource), "{action} {resource} missing from {events:?}");
    }
    assert!(events.iter().any(|(a, _)| a == "budget.put"), "{events:?}");
    let (_, verify) = send(&app, &admin, Method::GET, "/api/v1/tenants/acme/audit/verify", None).await;
    assert_eq!(verify["valid"], true, "{verify}");
}
