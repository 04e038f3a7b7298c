//! W3C trace context (`traceparent`) across process boundaries: read from a
//! request that enters, written onto requests that leave (model upstreams
//! here; MCP servers and webhooks through core's outbound client), so a trace
//! continues through Agentry into what it calls; and the spans of the hot
//! paths, made only when traces are on.
//!
//! Off until `agentry_types::traces::enable` is called (the server does
//! when `telemetry.otlp_endpoint` is set): until then nothing is read or
//! written and no time is spent. Owns no exporter.

use std::future::Future;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use agentry_types::traces::enabled;

const TRACEPARENT: &str = "traceparent";

/// `make()` when traces are on, else a disabled span: the hot paths pay for
/// their spans only when someone collects them.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() { make() } else { tracing::Span::none() }
}

/// `work` inside the span `make()` gives when traces are on.
pub fn in_span<F: Future>(make: impl FnOnce() -> tracing::Span, work: F) -> tracing::instrument::Instrumented<F> {
    work.instrument(span(make))
}

/// The current span when traces are on (to record on later), else a disabled one.
pub fn current() -> tracing::Span {
    span(tracing::Span::current)
}

/// The context a request's `traceparent` names, when tracing is on and it is well formed.
pub fn extract(headers: &http::HeaderMap) -> Option<Context> {
    if !enabled() || !headers.contains_key(TRACEPARENT) {
        return None;
    }
    Some(TraceContextPropagator::new().extract(&HeaderExtractor(headers)))
}

/// The `traceparent` of the current span (empty when tracing is off). A
/// caller's `tracestate` is not passed on: it is theirs, and the services
/// Agentry calls are not.
pub fn outbound() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if enabled() {
        TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut HeaderInjector(&mut headers));
        headers.remove("tracestate");
    }
    headers
}
