//! Logging and metrics setup: a `tracing` subscriber (text or JSON) and the
//! Prometheus recorder behind `/metrics`. Called once per process; tests that
//! start several servers share the one recorder.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::configuration::LogFormat;

/// Install the global log subscriber. Later calls are ignored.
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), anyhow::Error> {
    let filter = EnvFilter::try_new(filter).map_err(|e| anyhow::anyhow!("invalid configuration: log: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)).try_init(),
        LogFormat::Json => registry.with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_current_span(true).with_writer(std::io::stderr)).try_init(),
    };
    drop(result);
    Ok(())
}

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let latency_buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
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
