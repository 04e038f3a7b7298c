//! `/docs`: the interactive API reference renders in a real browser
//! (headless Chromium, installed by scripts/test) with every other host
//! unreachable, so nothing it needs comes from a CDN.

use std::process::Command;

use crate::helpers::spawn_app;

fn chromium() -> Option<String> {
    match std::env::var("TEST_AGENTRY_CHROMIUM") {
        Ok(path) => Some(path),
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "TEST_AGENTRY_CHROMIUM must be set in CI (scripts/test sets it)");
            None
        }
    }
}

/// Chromium, headless, that can reach only the test server.
fn browser(path: &str, extra: &[&str], url: &str) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    Command::new(path)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=20000", "--window-size=1280,1000"])
        .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("chromium runs")
}

#[tokio::test]
async fn the_reference_renders_offline_in_headless_chromium() {
    let app = spawn_app().await;
    let page = reqwest::get(format!("{}/docs", app.address)).await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page names another origin:\n{html}");

    let Some(chromium) = chromium() else { return };
    let url = format!("{}/docs", app.address);
    let dom = tokio::task::spawn_blocking({
        let (chromium, url) = (chromium.clone(), url.clone());
        move || browser(&chromium, &["--dump-dom"], &url)
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    // Rendered by Swagger UI from /openapi.json: the document's title, a tag and an operation's summary.
    for expected in ["Agentry API", "operations-tag-admin", "Query the platform audit chain"] {
        assert!(dom.contains(expected), "'{expected}' is not in the rendered page:\n{}", &dom[..dom.len().min(3000)]);
    }

    let shot = tempfile::tempdir().unwrap();
    let file = shot.path().join("docs.png");
    let output = tokio::task::spawn_blocking({
        let arg = format!("--screenshot={}", file.display());
        move || browser(&chromium, &[&arg], &url)
    })
    .await
    .unwrap();
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "screenshot of {size} bytes; chromium said: {}", String::from_utf8_lossy(&output.stderr));
}
