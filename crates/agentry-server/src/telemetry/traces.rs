//! OpenTelemetry traces: when `telemetry.otlp_endpoint` is set, the spans
//! of `tracing` (request → authentication → limits → gateway or agent step
//! → provider call, tool, database) are exported over OTLP/HTTP (protobuf)
//! in batches, and W3C trace context is read from requests and written onto
//! outbound calls (`agentry_llm::trace_context`).
//!
//! The exporter posts with this server's reqwest client on the server's
//! tokio runtime: the SDK's batch processor runs on a thread of its own,
//! and a request future handed to the runtime from there needs no second
//! HTTP stack (opentelemetry-otlp's built-in clients are another reqwest
//! major version or a blocking client).
//!
//! Owns the tracer provider and its shutdown; must not decide which spans
//! exist (the code they measure does).

use std::time::Duration;

use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::configuration::TelemetrySettings;

/// Longest wait for the collector per batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of a collector's answer read (it is a small status message).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Keeps the tracer provider until [`TracesGuard::shutdown`] flushes the
/// spans not yet sent (dropping it does too, blocking the thread).
pub struct TracesGuard(Option<SdkTracerProvider>);

impl TracesGuard {
    /// Send the spans not yet sent and stop exporting (off the async threads:
    /// the export itself runs on the runtime).
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.0.take() {
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "traces: flushing at exit failed"),
                Err(error) => tracing::warn!(%error, "traces: flushing at exit failed"),
            }
        }
    }
}

impl Drop for TracesGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("traces: flushing at exit failed: {error}");
        }
    }
}

/// A tracer exporting to the configured endpoint, or none when traces are off.
/// Needs a tokio runtime (the exporter's requests run on it).
pub fn tracer(settings: &TelemetrySettings) -> Result<(Option<SdkTracer>, TracesGuard), anyhow::Error> {
    let Some(endpoint) = &settings.otlp_endpoint else { return Ok((None, TracesGuard(None))) };
    let client = ExportClient { client: reqwest::Client::builder().timeout(EXPORT_TIMEOUT).build()?, runtime: tokio::runtime::Handle::try_current()? };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| anyhow::anyhow!("invalid configuration: telemetry.otlp_endpoint: {e}"))?;
    let resource = Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("agentry");
    agentry_types::traces::enable();
    Ok((Some(tracer), TracesGuard(Some(provider))))
}

/// Sends the exporter's requests with reqwest on the server's runtime.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let sent = self.runtime.spawn(async move {
            let mut response = client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let mut answer = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                answer.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES.saturating_sub(answer.len()))]);
            }
            Ok::<_, reqwest::Error>((status, headers, answer))
        });
        let (status, headers, answer) = sent.await??;
        let mut response = http::Response::new(Bytes::from(answer));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}
