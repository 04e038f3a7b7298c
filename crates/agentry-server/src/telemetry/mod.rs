//! Logging and metrics setup: a `tracing` subscriber (text or JSON) and the
//! Prometheus recorder behind `/metrics` (families described from
//! [`catalog`]), and the scrape token. Called once per process; tests that
//! start several servers share the one recorder.

pub mod catalog;
pub mod gauges;
pub mod traces;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::configuration::LogFormat;

/// Install the global log subscriber, with the OpenTelemetry layer when
/// traces are configured (keep the guard until exit). Later calls are ignored.
/// Each layer has its own filter: `log` chooses log lines; traces take
/// Agentry's own spans at info, whatever `log` says (and never the spans of
/// the HTTP stack that sends them).
pub fn init_logging(filter: &str, format: LogFormat, telemetry: &crate::configuration::TelemetrySettings) -> Result<traces::TracesGuard, anyhow::Error> {
    let filter = EnvFilter::try_new(filter).map_err(|e| anyhow::anyhow!("invalid configuration: log: {e}"))?;
    let (tracer, guard) = traces::tracer(telemetry)?;
    let own_spans = tracing_subscriber::filter::Targets::new().with_target("agentry", tracing::Level::INFO);
    let spans = tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer).with_tracked_inactivity(false).with_filter(own_spans));
    let registry = tracing_subscriber::registry().with(spans);
    let result = match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter)).try_init(),
        LogFormat::Json => {
            registry.with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(std::io::stderr).with_filter(filter)).try_init()
        }
    };
    drop(result);
    Ok(guard)
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            // From 100 µs: the gateway's own work on a request is sub-millisecond.
            let latency_buckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
            let score_buckets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency_buckets)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("agent_quality_score".into()), &score_buckets))
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            catalog::describe();
            metrics::gauge!("agentry_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            // Histogram samples are buffered until drained; drain them even when nobody scrapes.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the metrics upkeep thread");
            }
            handle
        })
        .clone()
}

/// The credential that may read `/metrics` and nothing else
/// (`metrics.bearer_token`); none configured matches nothing.
#[derive(Clone, Default)]
pub struct ScrapeToken(Option<secrecy::SecretString>);

impl ScrapeToken {
    pub fn new(token: Option<secrecy::SecretString>) -> Self {
        Self(token)
    }

    /// Whether `presented` is the token (compared in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        use secrecy::ExposeSecret;
        use subtle::ConstantTimeEq;
        self.0.as_ref().is_some_and(|token| bool::from(token.expose_secret().as_bytes().ct_eq(presented.as_bytes())))
    }
}
