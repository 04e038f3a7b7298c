//! Connectors and lineage through the server: a schedule's sitemap
//! connector collects a local site into a collection (robots.txt obeyed,
//! other hosts left alone), the collection's quality checks keep short,
//! foreign-language and duplicate pages out of search with the reason,
//! each version records its lineage, a second run stores only what changed,
//! and the quality report counts it all per run; the crawl connector
//! follows links to its depth, honours noindex and nofollow and stops at
//! `max_pages`; the feed connector takes each entry's page. A member who
//! may not read a document cannot read its lineage, and a reader cannot
//! read the quality report.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::knowledge::Site;
use crate::schedules::{fast_schedules, history};
use crate::webhooks::wait_for;

const HTML: &str = "text/html; charset=utf-8";
const XML: &str = "application/xml";

const POLICY: &str = "<!doctype html><html><head><title>Security policy</title></head><body><h1>Security policy</h1>\
    <p>Every laptop must use full-disk encryption and lock itself after five idle minutes. Report a lost device to the security team at once.</p></body></html>";
const TRAVEL: &str = "<!doctype html><html><head><title>Travel</title></head><body><h1>Travel</h1>\
    <p>Rail journeys under four hours are preferred to domestic flights, and hotel bookings go through the travel desk.</p></body></html>";
const SHORT: &str = "<!doctype html><html><body><p>Too short.</p></body></html>";
const GERMAN: &str = "<!doctype html><html><body><p>Jeder Laptop muss eine vollständige Festplattenverschlüsselung verwenden \
    und sich nach fünf Minuten Leerlauf automatisch sperren. Verlorene Geräte sind sofort zu melden.</p></body></html>";

const SITE: &[(&str, &str, &str)] = &[
    ("/robots.txt", "text/plain", "User-agent: *\nDisallow: /private/\n"),
    (
        "/sitemap.xml",
        XML,
        r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{base}/docs/policy.html</loc></url><url><loc>{base}/docs/travel.html</loc></url>
        <url><loc>{base}/docs/policy-copy.html</loc></url><url><loc>{base}/docs/short.html</loc></url>
        <url><loc>{base}/docs/german.html</loc></url><url><loc>{base}/private/secret.html</loc></url>
        <url><loc>http://elsewhere.example/page.html</loc></url></urlset>"#,
    ),
    ("/docs/policy.html", HTML, POLICY),
    ("/docs/policy-copy.html", HTML, POLICY),
    ("/docs/travel.html", HTML, TRAVEL),
    ("/docs/short.html", HTML, SHORT),
    ("/docs/german.html", HTML, GERMAN),
    ("/private/secret.html", HTML, POLICY),
    (
        "/start.html",
        HTML,
        r#"<!doctype html><html><body><h1>Start</h1><p>The handbook of the company, with links to each of its chapters and pages.</p>
        <a href="/docs/policy.html#top">Policy</a> <a href="docs/travel.html">Travel</a> <a href="/hidden.html">Hidden</a>
        <a rel="nofollow" href="/docs/german.html">German</a> <a href="/private/secret.html">Secret</a> <a href="mailto:x@example.com">Mail</a></body></html>"#,
    ),
    (
        "/hidden.html",
        HTML,
        r#"<!doctype html><html><head><meta name="robots" content="noindex"></head><body><p>An index page that should not itself be stored.</p>
        <a href="/docs/short.html">Short</a></body></html>"#,
    ),
    (
        "/feed.xml",
        "application/rss+xml",
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>News</title><link>{base}/</link>
        <item><title>Policy</title><link>{base}/docs/policy.html</link></item><item><title>Travel</title><link>{base}/docs/travel.html</link></item></channel></rss>"#,
    ),
];

struct Fixture {
    app: TestApp,
    site: Site,
    admin: String,
    tenant: String,
    collection: String,
}

async fn fixture(quality: Value) -> Fixture {
    let site = Site::start(SITE).await;
    let mut options = mock_knowledge();
    options.schedules = fast_schedules();
    options.knowledge.url_fetch.allow = vec![agentry_core::outbound::AllowEntry::parse("127.0.0.1").unwrap()];
    let app = spawn_app_with(options).await;
    let tenant = app.bootstrap().await;
    let admin = app.token(ADMIN_EMAIL).await;
    let (status, collection) = send(&app, &admin, Method::POST, "/api/v1/collections", Some(json!({ "name": "handbook", "quality": quality }))).await;
    assert_eq!(status, 201, "{collection}");
    let collection = collection["id"].as_str().unwrap().to_owned();
    Fixture { app, site, admin, tenant, collection }
}

impl Fixture {
    /// A schedule running `connector`, fired by hand once; its id.
    async fn schedule(&self, connector: Value) -> String {
        let action = json!({ "type": "run_connector", "collection_id": self.collection, "connector": connector });
        let (status, schedule) = send(&self.app, &self.admin, Method::POST, "/api/v1/schedules", Some(json!({ "name": "collect", "cron": "0 3 * * *", "action": action }))).await;
        assert_eq!(status, 201, "{schedule}");
        schedule["id"].as_str().unwrap().to_owned()
    }

    /// Fire `schedule` by hand and wait for the fire to end; the fire.
    async fn fire(&self, schedule: &str, nth: usize) -> Value {
        let (status, fired) = send(&self.app, &self.admin, Method::POST, &format!("/api/v1/schedules/{schedule}/trigger"), None).await;
        assert_eq!(status, 202, "{fired}");
        let done = wait_for("the connector run", async || {
            let runs = history(&self.app, &self.admin, schedule).await;
            (runs.len() == nth && runs.iter().all(|r| r["status"] != "queued")).then(|| runs[0].clone())
        })
        .await;
        assert_eq!(done["status"], "succeeded", "{done}");
        done
    }

    /// The collection's documents by source URL path, once none is still being ingested.
    async fn documents(&self) -> HashMap<String, Value> {
        wait_for("ingestion", async || {
            let (_, page) = send(&self.app, &self.admin, Method::GET, &format!("/api/v1/collections/{}/documents?limit=100", self.collection), None).await;
            let documents = page["data"].as_array().cloned().unwrap_or_default();
            let settled = documents.iter().all(|d| d["status"] != "queued" && d["status"] != "processing");
            settled.then(|| documents.into_iter().map(|d| (d["source"].as_str().unwrap().rsplit_once(':').unwrap().1.split_once('/').unwrap().1.to_owned(), d)).collect())
        })
        .await
    }
}

#[tokio::test]
async fn a_sitemap_connector_collects_a_site_with_lineage_and_quality_checks() {
    let f = fixture(json!({ "min_chars": 60, "languages": ["eng"], "exclude_duplicates": true })).await;
    let sitemap = f.site.url("127.0.0.1", "/sitemap.xml");
    let schedule = f.schedule(json!({ "type": "sitemap", "url": sitemap, "delay_ms": 0 })).await;
    let fire = f.fire(&schedule, 1).await;
    let report = &fire["result"];
    assert_eq!(
        (report["discovered"].as_u64(), report["fetched"].as_u64(), report["stored"].as_u64(), report["skipped"].as_u64(), report["failed"].as_u64()),
        (Some(6), Some(5), Some(5), Some(2), Some(0)),
        "robots.txt keeps /private/ out and the other host is skipped: {report}"
    );
    assert_eq!(f.site.hits_of("/private/secret.html"), 0, "a disallowed page is never requested");
    assert_eq!(f.site.hits_of("/robots.txt"), 1);

    let documents = f.documents().await;
    let status = |path: &str| (documents[path]["status"].as_str().unwrap().to_owned(), documents[path]["error"].as_str().unwrap_or_default().to_owned());
    assert_eq!(status("docs/policy.html").0, "succeeded");
    assert_eq!(status("docs/travel.html").0, "succeeded");
    for (path, says) in [("docs/policy-copy.html", "same bytes"), ("docs/short.html", "at least 60"), ("docs/german.html", "deu")] {
        let (status, error) = status(path);
        assert_eq!(status, "excluded", "{path}: {error}");
        assert!(error.contains(says), "{path}: {error}");
    }
    let german = documents["docs/german.html"]["id"].as_str().unwrap();
    let (_, versions) = send(&f.app, &f.admin, Method::GET, &format!("/api/v1/documents/{german}/versions"), None).await;
    assert_eq!(versions["data"][0]["quality_check"], "language", "{versions}");

    // Excluded documents are never found.
    let (status, found) = send(&f.app, &f.admin, Method::POST, "/api/v1/search", Some(json!({ "query": "Festplattenverschlüsselung Leerlauf", "mode": "keyword" }))).await;
    assert_eq!(status, 200, "{found}");
    assert!(found["results"].as_array().unwrap().iter().all(|hit| hit["document_id"] != german), "{found}");
    let (_, found) = send(&f.app, &f.admin, Method::POST, "/api/v1/search", Some(json!({ "query": "full-disk encryption laptop", "mode": "keyword" }))).await;
    let copy = documents["docs/policy-copy.html"]["id"].as_str().unwrap();
    let hits = found["results"].as_array().unwrap();
    assert!(hits.iter().any(|hit| hit["document_id"] == documents["docs/policy.html"]["id"]), "{found}");
    assert!(hits.iter().all(|hit| hit["document_id"] != copy), "{found}");

    // Lineage: the connector, its schedule and fire, the sitemap it was found on.
    let policy = documents["docs/policy.html"]["id"].as_str().unwrap();
    let (status, lineage) = send(&f.app, &f.admin, Method::GET, &format!("/api/v1/documents/{policy}/lineage"), None).await;
    assert_eq!(status, 200, "{lineage}");
    let first = &lineage["data"][0];
    assert_eq!(
        (first["origin"].as_str(), first["schedule_id"].as_str(), first["schedule_run_id"].as_str(), first["discovered_from"].as_str()),
        (Some("connector"), Some(schedule.as_str()), fire["id"].as_str(), Some(sitemap.as_str())),
        "{lineage}"
    );
    assert_eq!((first["connector"]["type"].as_str(), first["source_url"].as_str()), (Some("sitemap"), Some(f.site.url("127.0.0.1", "/docs/policy.html").as_str())));
    assert!(first["fetched_at_ms"].as_i64().unwrap() > 0 && first["content_hash"].as_str().unwrap().len() == 64, "{lineage}");
    assert!(first["parent_version"].is_null(), "{lineage}");

    // A second run finds nothing new: no new versions.
    let again = f.fire(&schedule, 2).await;
    assert_eq!((again["result"]["stored"].as_u64(), again["result"]["unchanged"].as_u64()), (Some(0), Some(5)), "{again}");
    let (_, lineage) = send(&f.app, &f.admin, Method::GET, &format!("/api/v1/documents/{policy}/lineage"), None).await;
    assert_eq!(lineage["data"].as_array().unwrap().len(), 1, "{lineage}");

    // The quality report, now and for the run.
    let (status, quality) = send(&f.app, &f.admin, Method::GET, &format!("/api/v1/collections/{}/quality", f.collection), None).await;
    assert_eq!(status, 200, "{quality}");
    let counted = |outcomes: &Value, status: &str, check: Option<&str>| {
        outcomes.as_array().unwrap().iter().find(|o| o["status"] == status && o["quality_check"].as_str() == check).map_or(0, |o| o["count"].as_i64().unwrap())
    };
    for (status, check, count) in [("succeeded", None, 2), ("excluded", Some("duplicate"), 1), ("excluded", Some("min_chars"), 1), ("excluded", Some("language"), 1)] {
        assert_eq!(counted(&quality["documents"], status, check), count, "{status} {check:?}: {quality}");
    }
    let runs = quality["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "the second run stored nothing: {quality}");
    assert_eq!((runs[0]["schedule_run_id"].as_str(), runs[0]["versions"].as_i64()), (fire["id"].as_str(), Some(5)), "{quality}");
    assert_eq!(counted(&runs[0]["outcomes"], "excluded", Some("language")), 1, "{quality}");

    // Changing the checks applies to what is ingested next.
    let (status, changed) = send(&f.app, &f.admin, Method::PATCH, &format!("/api/v1/collections/{}", f.collection), Some(json!({ "quality": { "min_chars": 5 } }))).await;
    assert_eq!((status, changed["quality"].clone()), (200, json!({ "min_chars": 5 })), "{changed}");
    let (status, refused) = send(&f.app, &f.admin, Method::PATCH, &format!("/api/v1/collections/{}", f.collection), Some(json!({ "quality": { "languages": ["english"] } }))).await;
    assert_eq!((status, refused["error"]["param"].as_str()), (400, Some("quality")), "{refused}");
    // The next run stores the excluded pages again (the checks changed since), and now they pass.
    let third = f.fire(&schedule, 3).await;
    assert_eq!((third["result"]["stored"].as_u64(), third["result"]["unchanged"].as_u64()), (Some(3), Some(2)), "{third}");
    let documents = f.documents().await;
    assert!(documents.values().all(|d| d["status"] == "succeeded"), "{documents:?}");
}

#[tokio::test]
async fn crawl_and_feed_connectors_follow_links_and_entries() {
    let f = fixture(json!({})).await;
    let crawl = f.schedule(json!({ "type": "crawl", "url": f.site.url("127.0.0.1", "/start.html"), "delay_ms": 0, "max_depth": 1 })).await;
    let fire = f.fire(&crawl, 1).await;
    let documents = f.documents().await;
    let mut stored: Vec<&str> = documents.keys().map(String::as_str).collect();
    stored.sort_unstable();
    assert_eq!(stored, ["docs/policy.html", "docs/travel.html", "start.html"], "noindex, nofollow, robots.txt and depth obeyed: {}", fire["result"]);
    assert_eq!(f.site.hits_of("/hidden.html"), 1, "a noindex page is fetched (its links may be followed) but not stored");
    assert_eq!((f.site.hits_of("/docs/german.html"), f.site.hits_of("/private/secret.html"), f.site.hits_of("/docs/short.html")), (0, 0, 0), "nofollow, robots.txt, depth");
    let travel = documents["docs/travel.html"]["id"].as_str().unwrap();
    let (_, lineage) = send(&f.app, &f.admin, Method::GET, &format!("/api/v1/documents/{travel}/lineage"), None).await;
    assert_eq!(lineage["data"][0]["discovered_from"], f.site.url("127.0.0.1", "/start.html"), "{lineage}");

    // max_pages stops the run and says so.
    let capped = f.schedule(json!({ "type": "crawl", "url": f.site.url("127.0.0.1", "/start.html"), "delay_ms": 0, "max_pages": 2 })).await;
    let fire = f.fire(&capped, 1).await;
    assert_eq!((fire["result"]["fetched"].as_u64(), fire["result"]["truncated"].as_bool()), (Some(2), Some(true)), "{fire}");

    // A feed's entries are pages already collected: unchanged.
    let feed = f.schedule(json!({ "type": "feed", "url": f.site.url("127.0.0.1", "/feed.xml"), "delay_ms": 0 })).await;
    let fire = f.fire(&feed, 1).await;
    assert_eq!((fire["result"]["discovered"].as_u64(), fire["result"]["unchanged"].as_u64()), (Some(2), Some(2)), "{fire}");

    // A connector whose own document is missing fails the fire with the reason.
    let missing = f.schedule(json!({ "type": "sitemap", "url": f.site.url("127.0.0.1", "/nope.xml"), "delay_ms": 0 })).await;
    let (status, _) = send(&f.app, &f.admin, Method::POST, &format!("/api/v1/schedules/{missing}/trigger"), None).await;
    assert_eq!(status, 202);
    let failed = wait_for("the failed fire", async || history(&f.app, &f.admin, &missing).await.into_iter().find(|r| r["status"] != "queued")).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("404"), "{failed}");

    // Settings out of range are refused when the schedule is made.
    for (connector, says) in [
        (json!({ "type": "crawl", "url": "file:///etc/passwd" }), "scheme"),
        (json!({ "type": "crawl", "url": "https://example.com/", "max_depth": 11 }), "max_depth"),
        (json!({ "type": "sitemap", "url": "https://example.com/", "max_pages": 0 }), "max_pages"),
        (json!({ "type": "ftp", "url": "https://example.com/" }), "ftp"),
    ] {
        let action = json!({ "type": "run_connector", "collection_id": f.collection, "connector": connector });
        let (status, refused) = send(&f.app, &f.admin, Method::POST, "/api/v1/schedules", Some(json!({ "name": "bad", "cron": "@daily", "action": action }))).await;
        assert_eq!(status, 400, "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(says), "{says}: {refused}");
    }
}

#[tokio::test]
async fn lineage_and_quality_reports_are_only_for_those_who_may_see_them() {
    let f = fixture(json!({})).await;
    f.app.add_member(&f.admin, &f.tenant, "reader@example.com", "user").await;
    let user = f.app.token("reader@example.com").await;
    let documents = format!("/api/v1/collections/{}/documents", f.collection);
    let (status, private) = send(&f.app, &f.admin, Method::POST, &documents, Some(json!({ "text": "Only admins read this.", "acl": { "roles": ["admin"] } }))).await;
    assert_eq!(status, 202, "{private}");
    let id = private["document"]["id"].as_str().unwrap();
    assert_eq!(send(&f.app, &user, Method::GET, &format!("/api/v1/documents/{id}/lineage"), None).await.0, 404, "a document the reader may not see");
    assert_eq!(send(&f.app, &f.admin, Method::GET, &format!("/api/v1/documents/{id}/lineage"), None).await.0, 200);
    let (status, refused) = send(&f.app, &user, Method::GET, &format!("/api/v1/collections/{}/quality", f.collection), None).await;
    assert_eq!(status, 403, "counts over documents a reader may not see: {refused}");
    // A member who may upload may describe the collection, but not decide what everyone's documents may be found by.
    let collection = format!("/api/v1/collections/{}", f.collection);
    assert_eq!(send(&f.app, &user, Method::PATCH, &collection, Some(json!({ "description": "Our handbook" }))).await.0, 200);
    let (status, refused) = send(&f.app, &user, Method::PATCH, &collection, Some(json!({ "quality": { "min_chars": 1000000 } }))).await;
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = send(&f.app, &user, Method::POST, "/api/v1/collections", Some(json!({ "name": "mine", "quality": { "exclude_duplicates": true } }))).await;
    assert_eq!(status, 403, "{refused}");
}
