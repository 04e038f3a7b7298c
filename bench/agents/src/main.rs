//! Agent run-loop overhead: time to first token of a streamed agent run
//! against a mock model with a fixed time to first token, compared in the
//! same run with a streamed chat completion of the same model straight
//! through the gateway (the baseline: same server, same auth, same usage
//! layer). The added time is what the run loop costs before the first
//! token: routing the request to a run, storing the run, building the
//! context, starting the run's task and relaying its events over SSE.
//!
//! Three ways are measured, one request at a time: the baseline
//! `POST /v1/chat/completions` (model `ttft`), the platform's
//! `POST /api/v1/runs` (`stream: true`, agent `general` on `ttft`), and
//! `POST /v1/chat/completions` with `model: "agent:general"`.
//!
//! Usage: `cargo run --release -p bench-agents [-- --requests 500 --ttft-ms 20]`.
//! Prints a table and appends it to `bench/results/agents.md`.

use std::io::Write;
use std::time::{Duration, Instant};

use agentry_server::Settings;
use agentry_server::eval::{Harness, percentile};
use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let requests: usize = flag(&args, "--requests").map_or(Ok(500), |v| v.parse())?;
    let ttft_ms: u64 = flag(&args, "--ttft-ms").map_or(Ok(20), |v| v.parse())?;
    let settings: Settings = serde_json::from_value(json!({
        "providers": [{ "type": "mock", "name": "mock" }],
        "models": [{ "name": "ttft", "provider": "mock", "upstream_model": format!("mock-slow-{ttft_ms}") }],
        "agents": { "default_model": "ttft" },
        "local": { "enabled": false },
        "log": "warn",
    }))?;
    let harness = Harness::start(settings).await?;
    let client = reqwest::Client::new();
    let ways: [(&str, &str, Value, &str); 3] = [
        (
            "gateway stream (baseline)",
            "/v1/chat/completions",
            json!({ "model": "ttft", "stream": true, "messages": [{ "role": "user", "content": "hello there" }] }),
            "\"content\":\"echo:",
        ),
        ("agent run, SSE (/api/v1/runs)", "/api/v1/runs", json!({ "agent": "general", "stream": true, "input": "hello there" }), "\"type\":\"token\""),
        (
            "agent via OpenAI (agent:general)",
            "/v1/chat/completions",
            json!({ "model": "agent:general", "stream": true, "messages": [{ "role": "user", "content": "hello there" }] }),
            "\"content\":\"echo:",
        ),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(requests); ways.len()];
    for round in 0..requests + 20 {
        for (i, (_, path, body, marker)) in ways.iter().enumerate() {
            let ms = first_token_ms(&client, &harness, path, body, marker).await.context(path.to_string())?;
            if round >= 20 {
                samples[i].push(ms);
            }
        }
    }
    let (base50, base99) = (percentile(&mut samples[0], 0.50), percentile(&mut samples[0], 0.99));
    let mut table = format!(
        "Time to first token, {requests} streamed requests per way, one at a time, interleaved; mock model `mock-slow-{ttft_ms}` \
         (first token after {ttft_ms} ms); in-process server on SQLite, API-key auth.\n\n\
         | way | TTFT p50 ms | TTFT p99 ms | added p50 ms | added p99 ms |\n|---|---|---|---|---|\n"
    );
    for (i, (name, ..)) in ways.iter().enumerate() {
        let (p50, p99) = (percentile(&mut samples[i], 0.50), percentile(&mut samples[i], 0.99));
        let added = if i == 0 { ("—".to_owned(), "—".to_owned()) } else { (format!("{:.2}", p50 - base50), format!("{:.2}", p99 - base99)) };
        table.push_str(&format!("| {name} | {p50:.2} | {p99:.2} | {} | {} |\n", added.0, added.1));
    }
    table.push_str("\nAdded = the way's percentile minus the baseline's percentile in the same run (floor: added p99 ≤ 5 ms).\n");
    harness.stop().await?;
    record(&table)
}

/// Milliseconds from sending the request until `marker` shows up in the streamed body.
async fn first_token_ms(client: &reqwest::Client, harness: &Harness, path: &str, body: &Value, marker: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let response = client.post(format!("{}{path}", harness.base())).bearer_auth(harness.api_key()).json(body).send().await?;
    anyhow::ensure!(response.status().is_success(), "{}", response.status());
    let mut stream = response.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await?.transpose()? {
        seen.extend_from_slice(&chunk);
        if first.is_none() && String::from_utf8_lossy(&seen).contains(marker) {
            first = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    first.context("the stream never produced a token")
}

fn record(table: &str) -> anyhow::Result<()> {
    std::io::stderr().write_all(table.as_bytes())?;
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/agents.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results)?;
    let when = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let commit = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(file, "\n## {when} (commit {commit}, {} cores)\n\n{table}", std::thread::available_parallelism().map_or(0, |n| n.get()))?;
    Ok(())
}
