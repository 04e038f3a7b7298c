//! Cursor pagination through the running server: `limit` and `after` in,
//! `{data, next_cursor}` out; pages never repeat or skip an item, the
//! last has no cursor, a document the reader may not see is skipped
//! without shortening the pages around it, and bad cursors and limits are
//! clear 400s.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// Every item of a list, page by page, and the size of each page.
async fn all_pages(app: &TestApp, token: &str, path: &str, limit: u32) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes, mut after) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let query = match &after {
            Some(cursor) => format!("{path}?limit={limit}&after={cursor}"),
            None => format!("{path}?limit={limit}"),
        };
        let (status, page) = send(app, token, Method::GET, &query, None).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().expect("data");
        sizes.push(data.len());
        ids.extend(data.iter().map(|item| item.get("id").unwrap_or(&item["name"]).as_str().expect("id or name").to_owned()));
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(cursor) => after = Some(cursor.to_owned()),
            None => return (ids, sizes),
        }
        assert!(sizes.len() < 20, "pages never end: {sizes:?}");
    }
}

#[tokio::test]
async fn lists_page_by_cursor_on_sqlite() {
    paging(spawn_app_with(mock_knowledge()).await).await;
}

#[tokio::test]
async fn lists_page_by_cursor_on_postgres() {
    let Some(url) = agentry_db::test_support::fresh_postgres_url().await else { return };
    paging(spawn_app_with(TestOptions { postgres_url: Some(url), ..mock_knowledge() }).await).await;
}

/// Pages never repeat or skip an item.
async fn paging(app: TestApp) {
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;

    let mut threads = Vec::new();
    for n in 0..5 {
        let (status, thread) = send(&app, &admin, Method::POST, "/api/v1/threads", Some(json!({ "title": format!("thread {n}") }))).await;
        assert_eq!(status, 201, "{thread}");
        threads.push(thread["id"].as_str().unwrap().to_owned());
    }
    let (ids, sizes) = all_pages(&app, &admin, "/api/v1/threads", 2).await;
    assert_eq!(sizes, [2, 2, 1]);
    let mut newest_first = threads.clone();
    newest_first.reverse();
    assert_eq!(ids, newest_first, "most recently active first, each once");
    let (_, one_page) = all_pages(&app, &admin, "/api/v1/threads", 200).await;
    assert_eq!(one_page, [5]);

    // Documents: oldest first; one only admins may read is skipped for a member.
    let (_, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "paged" }))).await;
    let collection = collection["id"].as_str().unwrap().to_owned();
    let mut documents = Vec::new();
    for n in 0..6 {
        let acl = if n == 2 { json!({ "roles": ["admin"] }) } else { json!({}) };
        let body = json!({ "text": format!("document number {n}"), "title": format!("doc {n}"), "acl": acl });
        let (status, accepted) = send(&app, &admin, Method::POST, &format!("/api/v1/collections/{collection}/documents"), Some(body)).await;
        assert_eq!(status, 202, "{accepted}");
        documents.push(accepted["document"]["id"].as_str().unwrap().to_owned());
    }
    let path = format!("/api/v1/collections/{collection}/documents");
    let (ids, sizes) = all_pages(&app, &admin, &path, 4).await;
    assert_eq!((ids, sizes), (documents.clone(), vec![4, 2]));
    app.add_member(&admin, &tenant, "member@example.com", "user").await;
    let member = app.token("member@example.com").await;
    let (ids, sizes) = all_pages(&app, &member, &path, 2).await;
    let readable: Vec<String> = documents.iter().enumerate().filter(|(n, _)| *n != 2).map(|(_, id)| id.clone()).collect();
    assert_eq!((ids, sizes), (readable, vec![2, 2, 1]), "full pages around the unreadable document");

    // Collections oldest first.
    let mut collections = vec![collection.clone()];
    for name in ["second", "third"] {
        let (_, created) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": name }))).await;
        collections.push(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(all_pages(&app, &admin, "/api/v1/collections", 2).await, (collections, vec![2, 1]));

    // Agents: built-in ones, then custom ones, each by name.
    for name in ["zeta", "alpha"] {
        let (status, created) = send(&app, &admin, Method::POST, "/api/v1/agents", Some(json!({ "name": name, "instructions": "Answer briefly." }))).await;
        assert_eq!(status, 201, "{created}");
    }
    let agents = ["code", "general", "math", "rag", "vision", "alpha", "zeta"].map(String::from).to_vec();
    assert_eq!(all_pages(&app, &admin, "/api/v1/agents", 3).await, (agents, vec![3, 3, 1]));
    // Any well-formed cursor says where a page starts, in (group, name) order.
    let after = |group: i64, name: &str| format!("/api/v1/agents?after={}", agentry_core::page::Cursor::new(group, name).encode());
    let (status, past_the_end) = send(&app, &admin, Method::GET, &after(7, "alpha"), None).await;
    assert_eq!((status, past_the_end["data"].as_array().map(Vec::len)), (200, Some(0)), "{past_the_end}");
    let (status, before_all) = send(&app, &admin, Method::GET, &after(-3, "zzz"), None).await;
    assert_eq!((status, before_all["data"].as_array().map(Vec::len)), (200, Some(7)), "{before_all}");
    let (status, error) = send(&app, &admin, Method::GET, "/api/v1/agents?after=not-a-cursor", None).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("after")), "{error}");

    // Members in the order they joined, keys newest first.
    let mut keys = Vec::new();
    for n in 0..3 {
        let (status, key) = send(&app, &admin, Method::POST, &format!("/api/v1/tenants/{tenant}/api-keys"), Some(json!({ "name": format!("key {n}") }))).await;
        assert_eq!(status, 201, "{key}");
        keys.push(key["id"].as_str().unwrap().to_owned());
    }
    keys.reverse();
    assert_eq!(all_pages(&app, &admin, &format!("/api/v1/tenants/{tenant}/api-keys"), 2).await, (keys, vec![2, 1]));
    let (status, members) = send(&app, &admin, Method::GET, &format!("/api/v1/tenants/{tenant}/users?limit=1"), None).await;
    assert_eq!((status, members["data"].as_array().map(Vec::len)), (200, Some(1)), "{members}");
    let (_, rest) = send(&app, &admin, Method::GET, &format!("/api/v1/tenants/{tenant}/users?limit=1&after={}", members["next_cursor"].as_str().unwrap()), None).await;
    assert_eq!(rest["data"][0]["email"], "member@example.com", "{rest}");
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    // The audit log pages the same way (its cursor is a sequence number).
    let audit = format!("/api/v1/tenants/{tenant}/audit");
    let (_, everything) = send(&app, &admin, Method::GET, &format!("{audit}?limit=1000"), None).await;
    assert!(everything.get("next_cursor").is_none(), "{everything}");
    let every_seq: Vec<i64> = everything["data"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let (mut paged, mut after) = (Vec::new(), String::new());
    loop {
        let (status, page) = send(&app, &admin, Method::GET, &format!("{audit}?limit=3{after}"), None).await;
        assert_eq!(status, 200, "{page}");
        paged.extend(page["data"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(cursor) => after = format!("&after={cursor}"),
            None => break,
        }
    }
    assert!(every_seq.len() > 3);
    assert_eq!(paged, every_seq);

    // Bad cursors and limits say which parameter is wrong.
    for (query, param) in [("after=bm90LWEtY3Vyc29y", "after"), ("after=%25%25", "after"), ("limit=0", "limit"), ("limit=201", "limit")] {
        let (status, error) = send(&app, &admin, Method::GET, &format!("/api/v1/runs?{query}"), None).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some(param)), "{query}: {error}");
    }
    let (status, runs) = send(&app, &admin, Method::GET, "/api/v1/runs?limit=10", None).await;
    assert_eq!((status, runs["data"].as_array().map(Vec::len)), (200, Some(0)), "{runs}");
    assert!(runs.get("next_cursor").is_none(), "{runs}");
}
