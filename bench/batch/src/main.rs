//! Batch overhead: a batch of N chat lines (`/v1/files` + `/v1/batches`)
//! against the mock model, timed from the upload to the batch's end,
//! compared in the same run with the same N requests sent straight to
//! `POST /v1/chat/completions`, as many in flight as the batch answers at
//! once (`batches.concurrency`). The difference per line is what a batch
//! costs on top of the calls themselves: the upload and its line checks,
//! the job, storing each answer with its usage record in one transaction,
//! and writing the output file.
//!
//! Usage: `cargo build --release --bin agentry && cargo run --release -p bench-batch [-- --lines 10000 --rounds 3]`.
//! Prints a table and appends it to `bench/results/batch.md`.

use std::io::Write;
use std::time::{Duration, Instant};

use agentry_server::Settings;
use agentry_server::eval::{Harness, percentile};
use anyhow::Context;
use futures::StreamExt;
use serde_json::{Value, json};

/// Lines answered at once: the batch setting, and the baseline's requests in flight.
const CONCURRENCY: usize = 8;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn request(i: usize) -> Value {
    json!({ "model": "fast", "messages": [{ "role": "user", "content": format!("question number {i}") }] })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let lines: usize = flag(&args, "--lines").map_or(Ok(10_000), |v| v.parse())?;
    let rounds: usize = flag(&args, "--rounds").map_or(Ok(3), |v| v.parse())?;
    // The server checks its document parser at start: the `agentry` binary beside this one.
    let agentry = std::env::current_exe()?.with_file_name("agentry");
    anyhow::ensure!(agentry.exists(), "build the server first: cargo build --release --bin agentry");
    let settings: Settings = serde_json::from_value(json!({
        "providers": [{ "type": "mock", "name": "mock" }],
        "models": [{ "name": "fast", "provider": "mock", "upstream_model": "mock-echo" }],
        "batches": { "concurrency": CONCURRENCY, "max_lines": lines },
        "knowledge": { "parse_worker": agentry },
        "local": { "enabled": false },
        "log": "warn",
    }))?;
    let harness = Harness::start(settings).await?;
    let client = reqwest::Client::new();
    let (mut direct, mut batch) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        direct.push(direct_calls(&client, &harness, lines).await?);
        batch.push(one_batch(&client, &harness, lines).await?);
    }
    let (direct_s, batch_s) = (percentile(&mut direct, 0.5), percentile(&mut batch, 0.5));
    let table = format!(
        "{lines} chat lines against the mock model (`mock-echo`), {CONCURRENCY} at a time; in-process server on SQLite, API-key auth; \
         median of {rounds} alternating rounds.\n\n\
         | way | total s | lines/s | per line ms |\n|---|---|---|---|\n\
         | direct `/v1/chat/completions`, {CONCURRENCY} in flight (baseline) | {direct_s:.2} | {:.0} | {:.3} |\n\
         | batch: upload, create, answered, output file written | {batch_s:.2} | {:.0} | {:.3} |\n\n\
         Overhead per line (batch minus baseline, per line): {:.3} ms.\n",
        lines as f64 / direct_s,
        direct_s * 1000.0 / lines as f64,
        lines as f64 / batch_s,
        batch_s * 1000.0 / lines as f64,
        (batch_s - direct_s) * 1000.0 / lines as f64,
    );
    harness.stop().await?;
    record(&table)
}

/// Seconds to answer `lines` requests directly, `CONCURRENCY` in flight.
async fn direct_calls(client: &reqwest::Client, harness: &Harness, lines: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let url = format!("{}/v1/chat/completions", harness.base());
    let calls = futures::stream::iter(0..lines).map(|i| {
        let request = client.post(&url).bearer_auth(harness.api_key()).json(&request(i)).send();
        async move {
            let response = request.await?;
            anyhow::ensure!(response.status().is_success(), "{}", response.status());
            response.bytes().await?;
            Ok(())
        }
    });
    let results: Vec<anyhow::Result<()>> = calls.buffer_unordered(CONCURRENCY).collect().await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds from the upload of a `lines`-line file until its batch completed.
async fn one_batch(client: &reqwest::Client, harness: &Harness, lines: usize) -> anyhow::Result<f64> {
    let jsonl: String =
        (0..lines).map(|i| json!({ "custom_id": format!("l{i}"), "method": "POST", "url": "/v1/chat/completions", "body": request(i) }).to_string() + "\n").collect();
    let started = Instant::now();
    let form = reqwest::multipart::Form::new().text("purpose", "batch").part("file", reqwest::multipart::Part::bytes(jsonl.into_bytes()).file_name("lines.jsonl"));
    let file: Value = client.post(format!("{}/v1/files", harness.base())).bearer_auth(harness.api_key()).multipart(form).send().await?.json().await?;
    let body = json!({ "input_file_id": file["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h" });
    let batch: Value = client.post(format!("{}/v1/batches", harness.base())).bearer_auth(harness.api_key()).json(&body).send().await?.json().await?;
    let id = batch["id"].as_str().with_context(|| format!("no batch: {batch}"))?;
    loop {
        let batch: Value = client.get(format!("{}/v1/batches/{id}", harness.base())).bearer_auth(harness.api_key()).send().await?.json().await?;
        match batch["status"].as_str() {
            Some("completed") => {
                anyhow::ensure!(batch["request_counts"]["completed"].as_u64() == Some(lines as u64), "not every line was answered: {batch}");
                return Ok(started.elapsed().as_secs_f64());
            }
            Some("failed" | "expired" | "cancelled") => anyhow::bail!("the batch ended {batch}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

fn record(table: &str) -> anyhow::Result<()> {
    std::io::stderr().write_all(table.as_bytes())?;
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/batch.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results)?;
    let when = std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let commit = std::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(file, "\n## {when} (commit {commit}, {} cores)\n\n{table}", std::thread::available_parallelism().map_or(0, |n| n.get()))?;
    Ok(())
}
