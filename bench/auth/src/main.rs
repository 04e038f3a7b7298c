//! Cost of authentication on the hot path: what `Identity::authenticate`
//! plus `Identity::tenant_access` add to a request, per credential type, in
//! process (the HTTP stack is the same for all of them and measured by
//! bench-gateway). Baseline in the same run: the master-key comparison the
//! foundation used. Cached API key (the floor: ≤ 20 µs median), a re-used
//! JWT access token (verification cached), a fresh JWT (EdDSA signature
//! check), and the first, uncached use of each of many API keys (database
//! round trips).
//!
//! Usage: `cargo run --release -p bench-auth [-- --iterations 20000 --keys 500]`
//! Prints a table and appends it to `bench/results/auth.md`.

use std::hint::black_box;
use std::io::Write;
use std::time::Instant;

use agentry_core::audit::RequestMeta;
use agentry_core::identity::{IdentitySettings, LoginOutcome, NewApiKey};
use agentry_core::{Audit, Identity};
use agentry_db::Db;
use anyhow::{Context, bail};
use subtle::ConstantTimeEq;

const MASTER_KEY: &str = "sk-bench-master-key-0123456789abcdef";

fn flag(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    Ok(match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).context("flag value")?.parse()?,
        None => default,
    })
}

/// Median, p99 and mean of per-call times in microseconds.
struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

impl Stats {
    fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Self { p50: at(0.5), p99: at(0.99), mean: samples.iter().sum::<f64>() / samples.len() as f64 }
    }
}

async fn time<F, Fut>(iterations: usize, mut call: F) -> anyhow::Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for _ in 0..iterations.min(1000) {
        call().await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        call().await?;
        samples.push(start.elapsed().as_secs_f64() * 1e6);
    }
    Ok(Stats::of(samples))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let iterations = flag(&args, "--iterations", 20_000)?;
    let keys = flag(&args, "--keys", 500)?;

    let dir = tempfile::tempdir()?;
    let db = Db::connect(&format!("sqlite://{}", dir.path().join("bench.db").display())).await?;
    db.migrate().await?;
    let identity =
        Identity::new(db.clone(), Audit::new(db.clone()), agentry_core::secrets::Sealer::development(), "bench-auth-master-key".into(), IdentitySettings::default()).await?;
    let password = "bench password 12345";
    let (tenant, _) = identity.bootstrap("bench", "Bench", "bench@example.com", password).await?;
    let meta = RequestMeta::default();
    let LoginOutcome::Tokens(tokens) = identity.login("bench@example.com", password, &meta).await? else { bail!("unexpected MFA") };
    let user = identity.authenticate(&tokens.access_token).await?;
    let access = identity.tenant_access(&user, &tenant.id).await?;
    let mut secrets = Vec::with_capacity(keys + 1);
    for i in 0..=keys {
        let new = NewApiKey { name: format!("k{i}"), scopes: None, expires_in_secs: None, metadata: serde_json::Value::Null };
        secrets.push(identity.create_api_key(&access, new, &meta).await?.key);
    }
    let hot_key = secrets.pop().context("a key")?;

    let master = time(iterations, || async {
        black_box(bool::from(black_box(MASTER_KEY).as_bytes().ct_eq(MASTER_KEY.as_bytes())));
        Ok(())
    })
    .await?;
    let api_key = time(iterations, || async {
        let principal = identity.authenticate(black_box(&hot_key)).await?;
        black_box(identity.tenant_access(&principal, &tenant.id).await?);
        Ok(())
    })
    .await?;
    let jwt = time(iterations, || async {
        let principal = identity.authenticate(black_box(&tokens.access_token)).await?;
        black_box(identity.tenant_access(&principal, &tenant.id).await?);
        Ok(())
    })
    .await?;
    let mut jwt_cold = Vec::with_capacity(keys);
    for _ in 0..keys {
        let fresh = identity.tokens().issue(&tokens.user_id, &tokens.session_id, agentry_core::identity::tokens::TokenUse::Access)?.0;
        let start = Instant::now();
        let principal = identity.authenticate(&fresh).await?;
        black_box(identity.tenant_access(&principal, &tenant.id).await?);
        jwt_cold.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let jwt_cold = Stats::of(jwt_cold);
    let mut cold = Vec::with_capacity(secrets.len());
    for secret in &secrets {
        let start = Instant::now();
        let principal = identity.authenticate(secret).await?;
        black_box(identity.tenant_access(&principal, &tenant.id).await?);
        cold.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let cold = Stats::of(cold);

    let rows = [
        ("master key (baseline: constant-time compare)", &master, iterations),
        ("API key, cached", &api_key, iterations),
        ("JWT access token, cached (re-used within 5 s; session cached)", &jwt, iterations),
        ("JWT access token, first use (EdDSA verify)", &jwt_cold, keys),
        ("API key, first use (SQLite lookups)", &cold, keys),
    ];
    let mut table = String::from("| credential | calls | median µs | p99 µs | mean µs | median added vs baseline µs |\n|---|---|---|---|---|---|\n");
    for (name, stats, calls) in rows {
        table.push_str(&format!("| {name} | {calls} | {:.2} | {:.2} | {:.2} | {:.2} |\n", stats.p50, stats.p99, stats.mean, stats.p50 - master.p50));
    }
    let verdict = if api_key.p50 - master.p50 <= 20.0 { "pass" } else { "FAIL" };
    table.push_str(&format!("\nfloor: cached API key ≤ 20 µs median added → {:.2} µs: {verdict}\n", api_key.p50 - master.p50));
    std::io::stderr().write_all(table.as_bytes())?;

    let results = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/auth.md");
    let new_file = !results.exists();
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results)?;
    if new_file {
        writeln!(file, "# Authentication cost results\n\nAppended by `bench-auth` (see ../README.md).")?;
    }
    let when = std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())?;
    writeln!(
        file,
        "\n## {when} ({} cores)\n\nIn process, SQLite, tokio with 2 workers; `authenticate` + `tenant_access` per call.\n\n{table}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;
    Ok(())
}
