//! Throughput of the durable job queue: jobs claimed, run and completed
//! per second, on SQLite and on PostgreSQL, with 1 and 8 workers, through
//! the server's own worker pool (`agentry_core::jobs`: rounds of
//! settle-and-claim, each attempt redeeming its job's delegation and
//! holding its lease) with a handler that does nothing, so the number is
//! what the queue itself costs per job.
//!
//! Baseline in the same run, on the same pool: the same number of jobs
//! taken and finished as two plain single-row updates by id per job
//! (`Db::renew_job_lease` twice, from as many tasks as workers; each task
//! already knows its ids) — what a queue that writes a claim and an end
//! per job could at best do.
//!
//! PostgreSQL runs when `TEST_AGENTRY_POSTGRES_URL` names a server (a fresh
//! database per round, as the tests make them).
//!
//! Usage: `cargo run --release -p bench-jobs [-- --jobs 5000 --rounds 3]`
//! Prints a table and appends it to `bench/results/jobs.md`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use agentry_core::jobs::{JobContext, JobFailure, JobHandler, Jobs, JobsSettings};
use agentry_core::{Audit, Identity};
use agentry_db::Db;
use agentry_db::jobs::JobRecord;
use agentry_types::{JobKind, JobStatus};
use anyhow::Context;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

const WORKERS: [usize; 2] = [1, 8];
const LEASE_MS: i64 = 60_000;

fn flag(args: &[String], name: &str, default: usize) -> anyhow::Result<usize> {
    Ok(match args.iter().position(|a| a == name) {
        Some(i) => args.get(i + 1).context("flag value")?.parse()?,
        None => default,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn job(i: usize, status: JobStatus) -> JobRecord {
    let now = now_ms();
    JobRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: "bench".into(),
        kind: JobKind::AgentRun,
        subject_id: format!("run-{i}"),
        subject_version: 0,
        owner: Some("user:bench".into()),
        delegation: Some(r#"{"as":"master_key"}"#.into()),
        payload: "{}".into(),
        priority: 0,
        idempotency_key: None,
        status,
        attempts: 0,
        claims: 0,
        max_attempts: 5,
        run_after_ms: now,
        locked_until_ms: (status == JobStatus::Running).then_some(i64::MAX / 2),
        progress_done: 0,
        progress_total: None,
        error: None,
        created_at_ms: now,
        updated_at_ms: now,
        finished_at_ms: None,
    }
}

/// A handler that does nothing but count.
struct Count(Arc<std::sync::atomic::AtomicUsize>, Arc<tokio::sync::Notify>, usize);

#[async_trait::async_trait]
impl JobHandler for Count {
    async fn run(&self, _: &JobRecord, _: &JobContext) -> Result<(), JobFailure> {
        if self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == self.2 {
            self.1.notify_one();
        }
        Ok(())
    }

    async fn ended(&self, _: &JobRecord, _: JobStatus, _: &str) {}

    async fn requeued(&self, _: &JobRecord) {}
}

/// Jobs per second: the server's pool of `workers` runs `count` queued jobs until all succeeded.
async fn queue(db: &Db, count: usize, workers: usize) -> anyhow::Result<f64> {
    let tenant = agentry_db::identity::TenantRow { id: "bench".into(), slug: "bench".into(), name: "Bench".into(), mfa_required: false, created_at_ms: now_ms() };
    db.insert_tenant(&tenant).await?;
    for i in 0..count {
        db.insert_job(&job(i, JobStatus::Queued)).await?;
    }
    let identity = Identity::new(db.clone(), Audit::new(db.clone()), agentry_core::secrets::Sealer::development(), "bench-master-key".into(), Default::default()).await?;
    let jobs = Jobs::new(db.clone(), identity, JobsSettings { workers, ..JobsSettings::default() });
    let (ran, all_ran) = (Arc::new(std::sync::atomic::AtomicUsize::new(0)), Arc::new(tokio::sync::Notify::new()));
    jobs.register(JobKind::AgentRun, Arc::new(Count(ran.clone(), all_ran.clone(), count)));
    let stop = CancellationToken::new();
    let start = Instant::now();
    let tasks = agentry_core::jobs::spawn_workers(&jobs, stop.clone());
    // Done when the last job's end is written: every one succeeded.
    all_ran.notified().await;
    loop {
        let depths = db.job_depths().await?;
        if depths.iter().all(|d| d.status != "queued" && d.status != "running") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.cancel();
    for task in tasks {
        task.await?;
    }
    anyhow::ensure!(ran.load(std::sync::atomic::Ordering::Relaxed) == count, "every job runs exactly once");
    Ok(count as f64 / elapsed)
}

/// Jobs per second of the baseline: two single-row updates by id per job.
async fn baseline(db: &Db, count: usize, workers: usize) -> anyhow::Result<f64> {
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let record = job(i, JobStatus::Running);
        db.insert_job(&record).await?;
        ids.push(record.id);
    }
    let ids = Arc::new(Mutex::new(ids));
    let start = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (db, ids) = (db.clone(), ids.clone());
            tokio::spawn(async move {
                loop {
                    let Some(id) = ids.lock().await.pop() else { return Ok::<_, anyhow::Error>(()) };
                    for _ in 0..2 {
                        anyhow::ensure!(db.renew_job_lease(&id, 0, now_ms(), LEASE_MS).await?, "a baseline row went missing");
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let count = flag(&args, "--jobs", 5000)?;
    let rounds = flag(&args, "--rounds", 3)?.max(1);
    let mut rows = Vec::new();
    for workers in WORKERS {
        // backend name → (queue, baseline) per round, alternating.
        let mut results: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
        for _ in 0..rounds {
            for mode in ["queue", "baseline"] {
                let dir = tempfile::tempdir()?;
                for db in agentry_db::test_support::test_databases(dir.path()).await {
                    db.migrate().await?;
                    let name = format!("{:?}", db.backend());
                    let rate = if mode == "queue" { queue(&db, count, workers).await? } else { baseline(&db, count, workers).await? };
                    let slot = match results.iter().position(|(n, _, _)| *n == name) {
                        Some(i) => i,
                        None => {
                            results.push((name, Vec::new(), Vec::new()));
                            results.len() - 1
                        }
                    };
                    if mode == "queue" { results[slot].1.push(rate) } else { results[slot].2.push(rate) }
                }
            }
        }
        for (name, queue_rates, baseline_rates) in results {
            let (q, b) = (median(queue_rates), median(baseline_rates));
            rows.push(format!("| {name} | {workers} | {q:.0} | {b:.0} | {:.2} |", q / b));
        }
    }
    let table = format!(
        "| database | workers | queue: jobs/s (the server's worker pool, no-op handler) | baseline: jobs/s (2 updates by id) | queue / baseline |\n|---|---|---|---|---|\n{}\n",
        rows.join("\n")
    );
    let header = format!(
        "\n## {} — {count} jobs per round, median of {rounds} alternating rounds\n\n",
        std::process::Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{header}{table}")?;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/jobs.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    write!(file, "{header}{table}")?;
    Ok(())
}
