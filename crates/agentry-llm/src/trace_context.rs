//! W3C trace context (`traceparent`, `tracestate`) across process
//! boundaries: read from a request that enters, written onto requests that
//! leave (model upstreams here; MCP servers and webhooks through core's
//! outbound client), so a trace continues through Agentry into what it calls.
//!
//! Off until `agentry_types::traces::enable` is called (the server does
//! when `telemetry.otlp_endpoint` is set): until then nothing is read or
//! written and no time is spent. Owns no spans and no exporter.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use agentry_types::traces::{enable, enabled};

const TRACEPARENT: &str = "traceparent";

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// `make()` when traces are on, else a disabled span: the hot paths pay for
/// their spans only when someone collects them.
pub fn span(make: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if enabled() { make() } else { tracing::Span::none() }
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
    Some(propagator().extract(&Headers(headers)))
}

/// The `traceparent` of the current span (none when tracing is off). A
/// caller's `tracestate` is not passed on: it is theirs, and the services
/// Agentry calls are not.
pub fn outbound() -> Vec<(String, String)> {
    struct Collect(Vec<(String, String)>);
    impl Injector for Collect {
        fn set(&mut self, key: &str, value: String) {
            self.0.push((key.to_owned(), value));
        }
    }
    if !enabled() {
        return Vec::new();
    }
    let mut headers = Collect(Vec::new());
    propagator().inject_context(&tracing::Span::current().context(), &mut headers);
    headers.0.retain(|(name, _)| name == TRACEPARENT);
    headers.0
}
