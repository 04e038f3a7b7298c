//! Gateway overhead benchmark. Starts a mock OpenAI upstream with a fixed tiny
//! latency (this same binary, `mock` mode, in its own process), starts the
//! release `agentry` binary pointed at it, and drives both with `oha` at fixed
//! rates — direct to the mock and through Agentry, in the same run — for
//! non-streamed and streamed chat completions. Then it bootstraps a tenant
//! and compares the same request authenticated with the master key
//! (baseline), an API key and a JWT access token, and an API key without a
//! budget or tier against one with a budget and a rate-limit tier (the usage
//! layer over HTTP). Last, the usage layer in process ([`accounting`]), where
//! microseconds can be resolved. Prints tables and appends them to
//! `bench/results/gateway.md`.
//!
//! Usage: `cargo run --release -p bench-gateway [-- --seconds 10 --rates 500,1000,2000 --repeat 3
//! --suite all|http|accounting --redis redis://127.0.0.1:6379]`
//! Needs `oha` on PATH (`cargo install oha`) for the HTTP suite.

mod accounting;
mod mock;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

const MASTER_KEY: &str = "sk-bench-master-key-0123456789";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("mock") {
        let port: u16 = args.get(2).context("mock PORT LATENCY_MS")?.parse()?;
        let latency_ms: u64 = args.get(3).context("mock PORT LATENCY_MS")?.parse()?;
        return mock::serve(port, Duration::from_millis(latency_ms));
    }
    let seconds = flag(&args, "--seconds").unwrap_or_else(|| "10".into()).parse::<u64>()?;
    let rates: Vec<u32> = flag(&args, "--rates").unwrap_or_else(|| "500,1000,2000".into()).split(',').map(str::parse).collect::<Result<_, _>>()?;
    let repeat = flag(&args, "--repeat").unwrap_or_else(|| "3".into()).parse::<usize>()?.max(1);
    let suite = flag(&args, "--suite").unwrap_or_else(|| "all".into());
    let mut table = String::new();
    if suite == "all" || suite == "http" {
        table.push_str(&run(seconds, &rates, repeat, 1)?);
    }
    if suite == "all" || suite == "accounting" {
        table.push_str(&accounting_report(&accounting::measure(flag(&args, "--redis").as_deref())?));
    }
    if table.is_empty() {
        bail!("--suite must be all, http or accounting");
    }
    record(&table)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// Kills the child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_ready(url: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if Command::new("curl").args(["-sf", "-o", "/dev/null", url]).status().is_ok_and(|s| s.success()) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{url} did not become ready")
}

fn run(seconds: u64, rates: &[u32], repeat: usize, latency_ms: u64) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let agentry = exe.with_file_name("agentry");
    if !agentry.exists() {
        bail!("{} not found: build it with `cargo build --release --bin agentry`", agentry.display());
    }
    let mock_port = free_port()?;
    let _mock = Guard(Command::new(&exe).args(["mock", &mock_port.to_string(), &latency_ms.to_string()]).spawn()?);
    let mock_url = format!("http://127.0.0.1:{mock_port}");
    wait_ready(&format!("{mock_url}/health"))?;

    let data_dir = std::env::temp_dir().join(format!("agentry-bench-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir)?;
    let config = data_dir.join("agentry.toml");
    std::fs::write(
        &config,
        format!(
            "local.enabled = false\nlog = \"warn\"\n[[providers]]\ntype = \"openai_compat\"\nname = \"mock\"\nbase_url = \"{mock_url}/v1\"\n\
             [[models]]\nname = \"bench-model\"\nprovider = \"mock\"\n\
             input_price_per_1k = 0.001\noutput_price_per_1k = 0.002\n"
        ),
    )?;
    let agentry_port = free_port()?;
    let server = Guard(
        Command::new(&agentry)
            .args(["--config", config.to_str().context("path")?, "--data-dir", data_dir.to_str().context("path")?, "serve"])
            .args(["--listen", &format!("127.0.0.1:{agentry_port}")])
            .env("AGENTRY_MASTER_KEY", MASTER_KEY)
            .stdout(Stdio::null())
            .spawn()?,
    );
    let agentry_url = format!("http://127.0.0.1:{agentry_port}");
    wait_ready(&format!("{agentry_url}/health"))?;
    let server_pid = server.0.id();

    let mut rows = Vec::new();
    for stream in [false, true] {
        let body = json!({ "model": "bench-model", "messages": [{ "role": "user", "content": "hello" }], "stream": stream }).to_string();
        // Warm up both paths (connection pools, allocator).
        oha(&format!("{mock_url}/v1/chat/completions"), &body, 2, None, 32, MASTER_KEY)?;
        oha(&format!("{agentry_url}/v1/chat/completions"), &body, 2, None, 32, MASTER_KEY)?;
        for &rate in rates {
            // Alternate direct and through runs and keep the median of each, so a
            // burst of noise on the shared cores does not decide a cell.
            let mut direct = Vec::new();
            let mut through = Vec::new();
            for _ in 0..repeat {
                direct.push(oha(&format!("{mock_url}/v1/chat/completions"), &body, seconds, Some(rate), 64, MASTER_KEY)?);
                through.push(oha(&format!("{agentry_url}/v1/chat/completions"), &body, seconds, Some(rate), 64, MASTER_KEY)?);
            }
            rows.push(Row { stream, rate: Some(rate), direct: Stats::median(&direct), through: Stats::median(&through) });
        }
        let direct = oha(&format!("{mock_url}/v1/chat/completions"), &body, seconds, None, 64, MASTER_KEY)?;
        let through = oha(&format!("{agentry_url}/v1/chat/completions"), &body, seconds, None, 64, MASTER_KEY)?;
        rows.push(Row { stream, rate: None, direct, through });
    }
    let credentials = credentials(&agentry, &config, &data_dir, &agentry_url)?;
    let auth = auth_rows(&credentials, &agentry_url, seconds, repeat)?;
    let usage = usage_rows(&credentials, &agentry_url, rates, seconds, repeat)?;
    let rss = rss_kib(server_pid)?;
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(report(&rows, &auth, &usage, rss, seconds, repeat, latency_ms))
}

/// Rate of the authentication comparison.
const AUTH_RATE: u32 = 1000;

fn plain_body() -> String {
    json!({ "model": "bench-model", "messages": [{ "role": "user", "content": "hello" }] }).to_string()
}

/// Run `oha` on each credential in turn, `repeat` times, and keep the median per credential.
fn alternate(target: &str, credentials: &[&str], seconds: u64, rate: Option<u32>, repeat: usize) -> anyhow::Result<Vec<Stats>> {
    let body = plain_body();
    let mut runs: Vec<Vec<Stats>> = vec![Vec::new(); credentials.len()];
    for _ in 0..repeat {
        for (i, credential) in credentials.iter().enumerate() {
            runs[i].push(oha(target, &body, seconds, rate, 64, credential)?);
        }
    }
    Ok(runs.iter().map(|r| Stats::median(r)).collect())
}

/// The same plain request through Agentry with the master key (baseline),
/// an API key and a JWT access token.
fn auth_rows(credentials: &Credentials, url: &str, seconds: u64, repeat: usize) -> anyhow::Result<Vec<(&'static str, Stats)>> {
    let target = format!("{url}/v1/chat/completions");
    let names = ["master key", "API key", "JWT access token"];
    let tokens = [MASTER_KEY, credentials.api_key.as_str(), credentials.jwt.as_str()];
    for token in tokens {
        oha(&target, &plain_body(), 2, None, 32, token)?;
    }
    Ok(names.into_iter().zip(alternate(&target, &tokens, seconds, Some(AUTH_RATE), repeat)?).collect())
}

/// An API key with no budget or tier (its calls are metered) against one
/// with a daily budget and a rate-limit tier, at each rate and at max.
fn usage_rows(credentials: &Credentials, url: &str, rates: &[u32], seconds: u64, repeat: usize) -> anyhow::Result<Vec<(Option<u32>, Stats, Stats)>> {
    let target = format!("{url}/v1/chat/completions");
    let tokens = [credentials.api_key.as_str(), credentials.limited_key.as_str()];
    oha(&target, &plain_body(), 2, None, 32, &credentials.limited_key)?;
    let mut rows = Vec::new();
    for rate in rates.iter().copied().map(Some).chain([None]) {
        let stats = alternate(&target, &tokens, seconds, rate, if rate.is_some() { repeat } else { 1 })?;
        rows.push((rate, stats[0], stats[1]));
    }
    Ok(rows)
}

struct Credentials {
    jwt: String,
    /// A key with no budget and no tier.
    api_key: String,
    /// A key with a daily budget and a tier no run of the benchmark reaches.
    limited_key: String,
}

/// Bootstrap a tenant and admin with the CLI; over HTTP sign in, make two
/// API keys, give the second a tier and a budget.
fn credentials(agentry: &Path, config: &Path, data_dir: &Path, url: &str) -> anyhow::Result<Credentials> {
    let password = "bench password 12345";
    let status = Command::new(agentry)
        .args(["--config", config.to_str().context("path")?, "--data-dir", data_dir.to_str().context("path")?])
        .args(["admin", "bootstrap", "--tenant", "bench", "--email", "bench@example.com"])
        .env("AGENTRY_BOOTSTRAP_PASSWORD", password)
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("agentry admin bootstrap failed");
    }
    let send = |method: &str, path: &str, bearer: Option<&str>, body: Value| -> anyhow::Result<Value> {
        let mut command = Command::new("curl");
        command.args(["-sf", "-X", method, &format!("{url}{path}"), "-H", "Content-Type: application/json", "-d", &body.to_string()]);
        if let Some(bearer) = bearer {
            command.args(["-H", &format!("Authorization: Bearer {bearer}")]);
        }
        let output = command.output()?;
        if !output.status.success() {
            bail!("{method} {path} failed");
        }
        Ok(serde_json::from_slice(&output.stdout).unwrap_or(Value::Null))
    };
    let login = send("POST", "/api/v1/auth/login", None, json!({ "email": "bench@example.com", "password": password }))?;
    let jwt = login["access_token"].as_str().context("access token")?.to_owned();
    let new_key = |name: &str| send("POST", "/api/v1/tenants/bench/api-keys", Some(&jwt), json!({ "name": name, "scopes": ["use_models"] }));
    let plain = new_key("bench")?;
    let limited = new_key("bench-limited")?;
    let limited_id = limited["id"].as_str().context("api key id")?;
    let huge = 1_000_000_000_000_u64;
    let tier = json!({ "requests_per_minute": huge, "tokens_per_minute": huge, "concurrent": 100_000, "requests_per_day": huge });
    send("PUT", "/api/v1/admin/rate-limits/tiers/bench", Some(MASTER_KEY), tier)?;
    send("PUT", "/api/v1/rate-limits/assignments", Some(&jwt), json!({ "scope": "api_key", "scope_id": limited_id, "tier": "bench" }))?;
    let budget = json!({ "scope": "api_key", "scope_id": limited_id, "period": "daily", "limit_usd": 1_000_000, "soft_limit_usd": 500_000 });
    send("POST", "/api/v1/costs/budget", Some(&jwt), budget)?;
    Ok(Credentials { jwt, api_key: plain["key"].as_str().context("api key")?.to_owned(), limited_key: limited["key"].as_str().context("api key")?.to_owned() })
}

#[derive(Clone, Copy)]
struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    success_rate: f64,
}

impl Stats {
    /// Field-wise median of repeated runs.
    fn median(runs: &[Stats]) -> Stats {
        let median = |f: fn(&Stats) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(f).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Stats { rps: median(|s| s.rps), p50_ms: median(|s| s.p50_ms), p99_ms: median(|s| s.p99_ms), success_rate: median(|s| s.success_rate) }
    }
}

struct Row {
    stream: bool,
    rate: Option<u32>,
    direct: Stats,
    through: Stats,
}

fn oha(url: &str, body: &str, seconds: u64, rate: Option<u32>, connections: u32, credential: &str) -> anyhow::Result<Stats> {
    let mut command = Command::new("oha");
    command
        .args(["-z", &format!("{seconds}s"), "-c", &connections.to_string(), "--no-tui", "--output-format", "json"])
        .args(["-m", "POST", "-H", &format!("Authorization: Bearer {credential}"), "-H", "Content-Type: application/json"])
        .args(["-d", body]);
    if let Some(rate) = rate {
        command.args(["-q", &rate.to_string(), "--latency-correction"]);
    }
    let output = command.arg(url).output().context("running oha (cargo install oha)")?;
    if !output.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let report: Value = serde_json::from_slice(&output.stdout).context("oha JSON output")?;
    let ms = |p: &str| report["latencyPercentiles"][p].as_f64().unwrap_or(f64::NAN) * 1000.0;
    Ok(Stats {
        rps: report["summary"]["requestsPerSec"].as_f64().unwrap_or(f64::NAN),
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        success_rate: report["summary"]["successRate"].as_f64().unwrap_or(f64::NAN),
    })
}

fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok((field("VmRSS:"), field("VmHWM:")))
}

#[allow(clippy::too_many_arguments)]
fn report(rows: &[Row], auth: &[(&str, Stats)], usage: &[(Option<u32>, Stats, Stats)], (rss, peak): (u64, u64), seconds: u64, repeat: usize, latency_ms: u64) -> String {
    let mut table = String::new();
    table.push_str(&format!(
        "mock upstream latency {latency_ms} ms; {seconds} s per run, median of {repeat} alternating runs per fixed-rate cell; oha -c 64 with latency correction\n\n"
    ));
    table.push_str(
        "| mode | target rps | direct rps | through rps | direct p50 ms | through p50 ms | added p50 ms | direct p99 ms | through p99 ms | added p99 ms | through success |\n",
    );
    table.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        table.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} |\n",
            if r.stream { "stream" } else { "plain" },
            rate_name(r.rate),
            r.direct.rps,
            r.through.rps,
            r.direct.p50_ms,
            r.through.p50_ms,
            r.through.p50_ms - r.direct.p50_ms,
            r.direct.p99_ms,
            r.through.p99_ms,
            r.through.p99_ms - r.direct.p99_ms,
            r.through.success_rate,
        ));
    }
    table.push_str(&format!(
        "\nauthentication on the same plain request through Agentry at {AUTH_RATE} rps (median of {repeat} alternating runs; the master key is the baseline):\n\n"
    ));
    table.push_str("| credential | p50 ms | p99 ms | added p50 ms | added p99 ms | success |\n|---|---|---|---|---|---|\n");
    if let Some((_, baseline)) = auth.first() {
        for (name, stats) in auth {
            table.push_str(&format!(
                "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} |\n",
                stats.p50_ms,
                stats.p99_ms,
                stats.p50_ms - baseline.p50_ms,
                stats.p99_ms - baseline.p99_ms,
                stats.success_rate
            ));
        }
    }
    table.push_str(&format!(
        "\nusage layer over HTTP, plain requests: an API key with no budget or tier (off: metered only) vs one with a daily budget and a rate-limit tier (on); median of {repeat} alternating runs per fixed rate, one at max:\n\n"
    ));
    table.push_str("| target rps | off rps | on rps | off p50 ms | on p50 ms | added p50 ms | off p99 ms | on p99 ms | added p99 ms | on success |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for (rate, off, on) in usage {
        table.push_str(&format!(
            "| {} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.4} |\n",
            rate_name(*rate),
            off.rps,
            on.rps,
            off.p50_ms,
            on.p50_ms,
            on.p50_ms - off.p50_ms,
            off.p99_ms,
            on.p99_ms,
            on.p99_ms - off.p99_ms,
            on.success_rate,
        ));
    }
    table.push_str(&format!("\nagentry RSS after the run: {:.1} MiB (peak {:.1} MiB)\n", rss as f64 / 1024.0, peak as f64 / 1024.0));
    table
}

fn rate_name(rate: Option<u32>) -> String {
    rate.map_or("max".to_owned(), |v| v.to_string())
}

fn accounting_report(measured: &[accounting::Measured]) -> String {
    let mut table = format!(
        "\nusage layer in process: one chat call to the in-process mock model at a time, {} calls per mode in alternating blocks; \
         added = mode minus off; calls/s with 64 concurrent callers on a 2-worker runtime:\n\n\
         | coordination | mode | p50 µs | p99 µs | added p50 µs | added p99 µs | calls/s (64 callers) | refused (64 callers) |\n|---|---|---|---|---|---|---|---|\n",
        accounting::CALLS_PER_MODE
    );
    for m in measured {
        let Some(base) = m.rows.first() else { continue };
        for row in &m.rows {
            table.push_str(&format!(
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.4} |\n",
                m.coordination,
                row.mode,
                row.p50_us,
                row.p99_us,
                row.p50_us - base.p50_us,
                row.p99_us - base.p99_us,
                row.calls_per_second,
                row.refused
            ));
        }
    }
    table
}

/// Print the tables and append them, dated, to `bench/results/gateway.md`.
fn record(table: &str) -> anyhow::Result<()> {
    std::io::stderr().write_all(table.as_bytes())?;
    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/gateway.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results)?;
    let when = Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    let commit = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(file, "\n## {when} (commit {commit}, {} cores)\n\n{table}", std::thread::available_parallelism().map_or(0, |n| n.get()))?;
    Ok(())
}
