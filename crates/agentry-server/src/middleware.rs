//! Cross-cutting HTTP layers: request ids, the error envelope, HTTP metrics
//! and the master-key check. Each is a plain `axum::middleware::from_fn`
//! function; the order they are stacked in is set in `startup.rs`.

use std::sync::LazyLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use agentry_core::MetricSeries;
use agentry_types::ErrorCode;

use crate::error::ApiError;

/// Header carrying the request id, accepted from clients when sane and always returned.
pub const REQUEST_ID: &str = "x-request-id";

/// The id of this request, set by [`request_id`].
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Header carrying the trace id of the request's span when traces are on.
pub const TRACE_ID: &str = "x-trace-id";

/// Give every request an id (a client's own if it is short and printable),
/// open a tracing span with it (the child of the caller's `traceparent` when
/// traces are on), log one line when the response is ready (streams go on
/// after it), and return the id as `x-request-id` (and the trace id as
/// `x-trace-id`).
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| format!("req_{}", uuid::Uuid::now_v7().simple()), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    // The OpenTelemetry fields only when traces are on: the log span stays as cheap as it was.
    let span = if agentry_types::traces::enabled() {
        tracing::info_span!(
            "request",
            otel.name = %req.method(),
            otel.kind = "server",
            request_id = %id,
            method = %req.method(),
            path = %req.uri().path(),
            trace_id = tracing::field::Empty,
            http.request.method = %req.method(),
            http.route = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path())
    };
    let trace_id = follow_caller_trace(&span, req.headers());
    let method = trace_id.is_some().then(|| req.method().clone());
    let started = Instant::now();
    let mut response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    if let Some(method) = method {
        if let Some(endpoint) = response.extensions().get::<Endpoint>() {
            span.record("http.route", endpoint.0.as_str());
            // The span has started (its trace id was read): rename it directly.
            use opentelemetry::trace::TraceContextExt;
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.context().span().update_name(format!("{method} {}", endpoint.0.as_str()));
        }
        span.record("http.response.status_code", response.status().as_u16());
    }
    span.in_scope(|| {
        tracing::info!(status = response.status().as_u16(), latency_ms = started.elapsed().as_secs_f64() * 1000.0, "request finished");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(value) = trace_id.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(TRACE_ID, value);
    }
    security_headers(response.headers_mut());
    response
}

/// With traces on: make `span` the child of the caller's `traceparent`, if
/// it sent a well-formed one, and give its trace id (also recorded on the
/// span, so that every log line inside the request carries it).
fn follow_caller_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) -> Option<String> {
    use opentelemetry::trace::{TraceContextExt, TraceId};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if !agentry_llm::trace_context::enabled() {
        return None;
    }
    if let Some(parent) = agentry_llm::trace_context::extract(headers)
        && let Err(error) = span.set_parent(parent)
    {
        tracing::debug!(%error, "traceparent not followed");
    }
    let trace_id = span.context().span().span_context().trace_id();
    (trace_id != TraceId::INVALID).then(|| {
        let id = trace_id.to_string();
        span.record("trace_id", id.as_str());
        id
    })
}

/// Headers every answer carries unless its handler set its own: no MIME
/// sniffing (stored bytes are never reinterpreted as a page), no referrer,
/// no framing. Pages that render (when they exist) set their own CSP.
fn security_headers(headers: &mut axum::http::HeaderMap) {
    use axum::http::header::{REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
    for (name, value) in [(X_CONTENT_TYPE_OPTIONS, "nosniff"), (REFERRER_POLICY, "no-referrer"), (X_FRAME_OPTIONS, "DENY")] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
}

/// The longest plain-text reason of the framework's kept as a message.
const MAX_FRAMEWORK_MESSAGE: usize = 1024;

fn is_plain_text(response: &Response) -> bool {
    response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"))
}

/// Render every error in the envelope with the request id, including axum's
/// own answers (405, unmatched routes, paths and queries it cannot read).
pub async fn error_envelope(req: Request, next: Next) -> Response {
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let framework_text = response.extensions().get::<ApiError>().is_none() && is_plain_text(&response);
    let (mut parts, body) = response.into_parts();
    let error = match parts.extensions.get::<ApiError>() {
        Some(error) => error.clone(),
        None => {
            let code = match status {
                StatusCode::NOT_FOUND => ErrorCode::NotFound,
                StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
                StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
                StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
                StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
                s if s.is_server_error() => ErrorCode::InternalError,
                _ => ErrorCode::InvalidRequest,
            };
            // The framework chose the status and, for a path or query it could
            // not read, said why in plain text: keep that as the message.
            let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
            let said = match framework_text && status.is_client_error() {
                true => axum::body::to_bytes(body, MAX_FRAMEWORK_MESSAGE).await.ok().map(|b| String::from_utf8_lossy(&b).trim().to_owned()).filter(|m| !m.is_empty()),
                false => None,
            };
            ApiError::new(code, said.unwrap_or(reason))
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = error.body(request_id.as_deref()).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The route template of a matched request, passed from the inner route layer
/// to the outer metrics layer.
#[derive(Clone)]
struct Endpoint(MatchedPath);

/// Inner layer (on routes): note the matched route template.
pub async fn endpoint_label(matched: Option<MatchedPath>, req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    if let Some(path) = matched {
        response.extensions_mut().insert(Endpoint(path));
    }
    response
}

/// Outer layer: `http_requests_total{method,endpoint,status}` and
/// `http_request_duration_seconds{method,endpoint}`; unmatched paths are
/// labelled `unmatched` so label cardinality stays bounded.
pub async fn http_metrics(req: Request, next: Next) -> Response {
    static REQUESTS: LazyLock<MetricSeries<3, metrics::Counter>> = LazyLock::new(MetricSeries::new);
    static DURATIONS: LazyLock<MetricSeries<2, metrics::Histogram>> = LazyLock::new(MetricSeries::new);
    let started = Instant::now();
    let method = req.method().clone();
    let response = next.run(req).await;
    let endpoint = response.extensions().get::<Endpoint>().map_or("unmatched", |e| e.0.as_str());
    let status = response.status();
    REQUESTS
        .get(
            [method.as_str(), endpoint, status.as_str()],
            |[method, endpoint, status]| metrics::counter!("http_requests_total", "method" => method.to_owned(), "endpoint" => endpoint.to_owned(), "status" => status.to_owned()),
        )
        .increment(1);
    DURATIONS
        .get(
            [method.as_str(), endpoint],
            |[method, endpoint]| metrics::histogram!("http_request_duration_seconds", "method" => method.to_owned(), "endpoint" => endpoint.to_owned()),
        )
        .record(started.elapsed().as_secs_f64());
    response
}
