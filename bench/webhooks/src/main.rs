//! Webhook fan-out latency: agent runs on the mock model started at a fixed
//! rate (200 a second by default, open loop), each ending in a
//! `run.completed` event that a webhook endpoint listens for; a local
//! receiver notes when each delivery arrives. Latency is arrival minus the
//! event's own timestamp (when it was published): the append with its
//! delivery and job, waking a worker, signing and the POST. The baseline in
//! the same run is the same receiver POSTed to directly by this program at
//! the same rate: what one local HTTP delivery costs at all.
//!
//! Usage: `cargo build --release --bin agentry && cargo run --release -p bench-webhooks [-- --rate 200 --seconds 10]`.
//! Prints a table and appends it to `bench/results/webhooks.md`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentry_server::Settings;
use agentry_server::eval::{Harness, percentile};
use anyhow::Context;
use parking_lot::Mutex;
use serde_json::{Value, json};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A local receiver: the latency (ms) of each delivery, from its payload's timestamp.
struct Receiver {
    url: String,
    latencies: Arc<Mutex<Vec<f64>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
        let store = latencies.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let store = store.clone();
                async move {
                    let arrived = now_ms();
                    if let Ok(payload) = serde_json::from_str::<Value>(&body)
                        && let Some(sent) = payload["timestamp"].as_str().and_then(parse_rfc3339_ms).or_else(|| payload["sent_ms"].as_f64())
                    {
                        store.lock().push(arrived - sent);
                    }
                    axum::http::StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://127.0.0.1:{}/hook", listener.local_addr()?.port());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self { url, latencies })
    }

    fn take(&self) -> Vec<f64> {
        std::mem::take(&mut *self.latencies.lock())
    }
}

/// An RFC 3339 time → milliseconds since the epoch.
fn parse_rfc3339_ms(text: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis() as f64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rate: u64 = flag(&args, "--rate").map_or(Ok(200), |v| v.parse())?;
    let seconds: u64 = flag(&args, "--seconds").map_or(Ok(10), |v| v.parse())?;
    let agentry = std::env::current_exe()?.with_file_name("agentry");
    anyhow::ensure!(agentry.exists(), "build the server first: cargo build --release --bin agentry");
    let settings: Settings = serde_json::from_value(json!({
        "providers": [{ "type": "mock", "name": "mock" }],
        "models": [{ "name": "fast", "provider": "mock", "upstream_model": "mock-echo" }],
        "knowledge": { "parse_worker": agentry },
        "local": { "enabled": false },
        "webhooks": { "allow": ["127.0.0.1/32"] },
        "log": "warn",
    }))?;
    let harness = Harness::start(settings).await?;
    let receiver = Receiver::start().await?;
    harness.call(reqwest::Method::POST, "/api/v1/agents", Some(json!({ "name": "echo", "instructions": "Repeat.", "model": "fast" }))).await?;
    harness.call(reqwest::Method::POST, "/api/v1/webhooks", Some(json!({ "url": receiver.url, "events": ["run.completed"] }))).await?;
    let client = reqwest::Client::new();

    // Warm-up, then the baseline and the fan-out at the same rate.
    drive(rate, 1, || run(&client, &harness)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    receiver.take();
    let baseline_sent = drive(rate, seconds, || direct(&client, &receiver.url)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut baseline = receiver.take();
    let runs_started = Instant::now();
    let events = drive(rate, seconds, || run(&client, &harness)).await?;
    let achieved = events as f64 / runs_started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver.latencies.lock().len() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut fanout = receiver.take();
    anyhow::ensure!(fanout.len() == events, "{} of {events} events were delivered", fanout.len());
    anyhow::ensure!(baseline.len() == baseline_sent, "{} of {baseline_sent} direct posts arrived", baseline.len());
    let row = |name: &str, values: &mut Vec<f64>| {
        format!("| {name} | {} | {:.1} | {:.1} | {:.1} |\n", values.len(), percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0))
    };
    let table = format!(
        "`run.completed` events of agent runs on the mock model, started at {rate}/s (open loop) for {seconds} s ({achieved:.0}/s reached), one webhook endpoint \
         listening; a local receiver; in-process server on SQLite, API-key auth. Latency: arrival minus the event's timestamp (ms resolution).\n\n\
         | way | deliveries | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n{}{}",
        row("direct POST to the receiver from this program (baseline)", &mut baseline),
        row("webhook delivery: event appended with its delivery job, worker woken, signed, POSTed", &mut fanout),
    );
    harness.stop().await?;
    record(&table)
}

/// Call `start` `rate` times a second for `seconds`, each call in its own task; returns how many succeeded.
async fn drive<F, Fut>(rate: u64, seconds: u64, start: F) -> anyhow::Result<usize>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::new();
    for _ in 0..rate * seconds {
        ticker.tick().await;
        calls.push(tokio::spawn(start()));
    }
    let mut done = 0;
    for call in calls {
        call.await.context("a call task")??;
        done += 1;
    }
    Ok(done)
}

fn run(client: &reqwest::Client, harness: &Harness) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
    let request = client.post(format!("{}/api/v1/runs", harness.base())).bearer_auth(harness.api_key()).json(&json!({ "agent": "echo", "input": "hello" })).send();
    async move {
        let response = request.await?;
        anyhow::ensure!(response.status().is_success(), "a run: {}", response.status());
        response.bytes().await?;
        Ok(())
    }
}

fn direct(client: &reqwest::Client, url: &str) -> impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static {
    let request = client.post(url).json(&json!({ "type": "direct", "sent_ms": now_ms() })).send();
    async move {
        let response = request.await?;
        anyhow::ensure!(response.status().is_success(), "a direct post: {}", response.status());
        Ok(())
    }
}

fn record(table: &str) -> anyhow::Result<()> {
    std::io::stderr().write_all(table.as_bytes())?;
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/webhooks.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results)?;
    let when = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let commit = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(file, "\n## {when} (commit {commit}, {} cores)\n\n{table}", std::thread::available_parallelism().map_or(0, |n| n.get()))?;
    Ok(())
}
