//! `/docs`: the interactive API reference (Swagger UI over
//! `/openapi.json`), with its assets embedded in the binary so it works
//! with no network (`assets/swagger-ui/README.md` says where they come
//! from). The page runs only scripts served from here (a strict CSP, no
//! inline script).
//!
//! Must not: describe the API itself (`api_doc` does) or need credentials
//! to load (trying an operation asks for a bearer credential in the page).

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::state::AppState;

const BUNDLE: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const STYLES: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Agentry API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="reference"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"#;

const INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  persistAuthorization: false,
  tryItOutEnabled: false,
  validatorUrl: null,
});
"##;

/// Scripts and styles from here only; Swagger UI sets inline styles and shows data: images.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new().route("/docs", get(page)).route("/docs/init.js", get(init)).route("/docs/swagger-ui-bundle.js", get(bundle)).route("/docs/swagger-ui.css", get(styles))
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CONTENT_SECURITY_POLICY, CSP)], PAGE).into_response()
}

async fn init() -> Response {
    asset("text/javascript; charset=utf-8", INIT.as_bytes())
}

async fn bundle() -> Response {
    asset("text/javascript; charset=utf-8", BUNDLE)
}

async fn styles() -> Response {
    asset("text/css; charset=utf-8", STYLES)
}
