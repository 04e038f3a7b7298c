//! Deprecated operations of the stable API (`docs/api-versioning.md`): the
//! one table of them, the `Deprecation` (RFC 9745), `Sunset` (RFC 8594)
//! and `Link` headers every answer of one carries, and what the OpenAPI
//! document says of them (`deprecated: true`, the successor).
//!
//! Must not: change what a deprecated operation does; until its sunset it
//! behaves exactly as before.

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

/// One deprecated operation.
pub struct Deprecated {
    pub method: Method,
    pub path: &'static str,
    /// When it was deprecated (Unix seconds).
    pub since: i64,
    /// When it may be removed (Unix seconds; at least six months after `since`).
    pub sunset: i64,
    /// The operation that replaces it (same method).
    pub successor: &'static str,
}

/// Every deprecated operation.
pub const DEPRECATED: &[Deprecated] = &[
    // 2026-12-06 → 2027-06-30: budgets are created on their collection like every other object.
    Deprecated { method: Method::POST, path: "/api/v1/costs/budget", since: 1_796_515_200, sunset: 1_814_313_600, successor: "/api/v1/costs/budgets" },
];

/// The deprecation of the operation `method path` (a route template), if any.
pub fn deprecation_of(method: &Method, path: &str) -> Option<&'static Deprecated> {
    DEPRECATED.iter().find(|d| d.method == *method && d.path == path)
}

/// Route layer: the deprecation headers on every answer of a deprecated operation.
pub async fn headers(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let deprecated = matched.and_then(|path| deprecation_of(request.method(), path.as_str()));
    let mut response = next.run(request).await;
    if let Some(deprecated) = deprecated {
        let headers = response.headers_mut();
        for (name, value) in [
            ("deprecation", format!("@{}", deprecated.since)),
            ("sunset", http_date(deprecated.sunset)),
            ("link", format!("<{}>; rel=\"successor-version\", </docs>; rel=\"deprecation\"", deprecated.successor)),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
    response
}

/// An IMF-fixdate (`Wed, 30 Jun 2027 00:00:00 GMT`), as `Sunset` takes it.
fn http_date(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0).unwrap_or_default().format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sunsets_come_at_least_six_months_after_deprecation_and_name_a_routed_successor() {
        for deprecated in DEPRECATED {
            assert!(deprecated.sunset - deprecated.since >= 182 * 86_400, "{}", deprecated.path);
            assert!(crate::access::rule_for(&deprecated.method, deprecated.path).is_some(), "{} is routed", deprecated.path);
            assert!(crate::access::rule_for(&deprecated.method, deprecated.successor).is_some(), "{} is routed", deprecated.successor);
        }
        assert_eq!(http_date(1_814_313_600), "Wed, 30 Jun 2027 00:00:00 GMT");
    }
}
