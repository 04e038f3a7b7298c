//! Rules of reading requests that the conformance run found: what the
//! OpenAPI document calls valid is accepted, what it does not is refused,
//! and a state conflict is a 409.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn whole_numbers_may_be_floats_and_bodies_are_objects() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    // JSON Schema counts 207.0 as an integer.
    let (status, tier) = send(&app, &admin, Method::PUT, "/api/v1/admin/rate-limits/tiers/bulk", Some(json!({ "concurrent": 207.0, "requests_per_minute": 60 }))).await;
    assert_eq!((status, &tier["concurrent"]), (200, &json!(207)), "{tier}");
    // Only whole ones: a fraction is still refused, naming the field.
    let (status, error) = send(&app, &admin, Method::PUT, "/api/v1/admin/rate-limits/tiers/bulk", Some(json!({ "concurrent": 2.5 }))).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("concurrent")), "{error}");
    // serde reads a struct from an array of its fields; the API does not.
    let (status, error) = send(&app, &admin, Method::PATCH, "/api/v1/tenants/acme", Some(json!([null, null]))).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("body")), "{error}");
}

#[tokio::test]
async fn state_conflicts_are_409_and_empty_patches_change_nothing() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (_, key) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/api-keys", Some(json!({ "name": "ci" }))).await;
    let id = key["id"].as_str().expect("key id");
    assert_eq!(send(&app, &admin, Method::DELETE, &format!("/api/v1/tenants/acme/api-keys/{id}"), None).await.0, 204);
    let (status, error) = send(&app, &admin, Method::POST, &format!("/api/v1/tenants/acme/api-keys/{id}/rotate"), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("conflict")), "{error}");
    let (status, error) = send(&app, &admin, Method::PUT, "/api/v1/tenants/acme/roles/admin", Some(json!({ "permissions": ["read_documents"] }))).await;
    assert_eq!(status, 409, "{error}");

    let (status, _) = send(&app, &admin, Method::PATCH, "/api/v1/tenants/acme", Some(json!({ "name": null }))).await;
    assert_eq!(status, 204);
    let (_, tenants) = send(&app, &admin, Method::GET, "/api/v1/tenants", None).await;
    assert!(tenants.to_string().contains("\"Acme\""), "the name stays: {tenants}");
    let (_, group) = send(&app, &admin, Method::POST, "/api/v1/tenants/acme/groups", Some(json!({ "name": "Research" }))).await;
    let (status, same) = send(&app, &admin, Method::PATCH, &format!("/api/v1/tenants/acme/groups/{}", group["id"].as_str().unwrap()), Some(json!({}))).await;
    assert_eq!((status, &same["name"]), (200, &json!("Research")), "{same}");
}

#[tokio::test]
async fn a_refused_tenant_is_not_left_behind() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, _) = send(&app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "ghost", "name": "Ghost", "owner": "no-such-user" }))).await;
    assert_eq!(status, 404);
    let (status, created) = send(&app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "ghost", "name": "Ghost" }))).await;
    assert_eq!(status, 201, "the slug is free: {created}");
    let (status, error) = send(&app, &admin, Method::POST, "/api/v1/tenants", Some(json!({ "slug": "blank", "name": "  " }))).await;
    assert_eq!((status, error["error"]["param"].as_str()), (400, Some("name")), "{error}");
}

#[tokio::test]
async fn an_mcp_server_address_that_cannot_be_requested_is_refused_when_registered() {
    let app = spawn_app().await;
    app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    for url in ["http://", "http://a{b}.example.com/mcp"] {
        let (status, error) = send(&app, &admin, Method::POST, "/api/v1/mcp-servers", Some(json!({ "name": "tools", "url": url }))).await;
        assert_eq!((status, error["error"]["param"].as_str()), (400, Some("url")), "{url}: {error}");
    }
}
