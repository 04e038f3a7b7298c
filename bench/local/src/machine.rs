//! Facts about the machine for the results file, and a watch for other
//! heavy work (builds, test runs, load generators) that would pollute the
//! numbers: wait for quiet before each repetition, measure a repetition
//! again when such work ran during it, and note it when retries run out.
//! The reference's repetitions run through the same gate (the binary drives
//! them), and the reference's own Python process is not on the list.
//!
//! Must not: stop or signal any process; it only reads `/proc`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Process names that mean someone else is using the cores.
const BUSY: &[&str] = &["rustc", "cargo", "oha", "nextest", "cargo-nextest", "cc1", "cc1plus", "ld", "clippy-driver"];

/// Our own ancestors (e.g. `cargo run`), which must not count as load.
fn ancestors() -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut pid = std::process::id();
    while pid > 1 && out.insert(pid) {
        let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1).and_then(|p| p.parse().ok())))
        else {
            break;
        };
        pid = ppid;
    }
    out
}

/// `name (pid)` of every busy process running now, ours excluded.
pub fn busy_processes() -> Vec<String> {
    let mine = ancestors();
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        if mine.contains(&pid) {
            continue;
        }
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else { continue };
        let comm = comm.trim();
        if BUSY.contains(&comm) {
            found.push(format!("{comm} ({pid})"));
        }
    }
    found.sort();
    found
}

/// Poll until no busy process is running or `limit` passes; returns what
/// was still running at the end (empty when quiet).
pub fn wait_for_quiet(limit: Duration) -> Vec<String> {
    let started = Instant::now();
    let mut announced = false;
    loop {
        let busy = busy_processes();
        if busy.is_empty() || started.elapsed() >= limit {
            return busy;
        }
        if !announced {
            eprintln!("waiting up to {limit:?} for the machine to be quiet: {}", busy.join(", "));
            announced = true;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Samples busy processes every 250 ms on its own thread until dropped, so
/// that a repetition disturbed by other work can be measured again.
pub struct LoadWatch {
    stop: Arc<AtomicBool>,
    /// Busy process names seen since the last [`LoadWatch::begin`].
    since: Arc<Mutex<BTreeSet<String>>>,
    quiet_wait: Duration,
    /// Repetitions kept although disturbed (retries ran out).
    loaded: Mutex<Vec<String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadWatch {
    pub fn start(quiet_wait: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let since = Arc::new(Mutex::new(BTreeSet::new()));
        let thread = {
            let (stop, since) = (stop.clone(), since.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let busy = busy_processes();
                    if !busy.is_empty()
                        && let Ok(mut since) = since.lock()
                    {
                        since.extend(busy.iter().map(|p| p.split(' ').next().unwrap_or_default().to_owned()));
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        Self { stop, since, quiet_wait, loaded: Mutex::new(Vec::new()), thread: Some(thread) }
    }

    /// Wait for quiet (at most the configured time), then start a clean interval.
    pub fn begin(&self) {
        let busy = wait_for_quiet(self.quiet_wait);
        if !busy.is_empty() {
            eprintln!("still busy after {:?}: {}; measuring anyway", self.quiet_wait, busy.join(", "));
        }
        if let Ok(mut since) = self.since.lock() {
            since.clear();
        }
    }

    /// Busy process names seen since [`LoadWatch::begin`].
    pub fn disturbed(&self) -> Vec<String> {
        self.since.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Notes on repetitions that were kept although other work ran during them.
    pub fn loaded(&self) -> Vec<String> {
        self.loaded.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Run one repetition of `f`, again (up to [`RETRIES`] times) while other
    /// work ran during it.
    pub async fn measure<T>(&self, label: &str, mut f: impl AsyncFnMut() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut attempt = 0;
        loop {
            self.begin();
            let out = f().await?;
            let disturbed = self.disturbed();
            if disturbed.is_empty() {
                return Ok(out);
            }
            if attempt == RETRIES {
                if let Ok(mut loaded) = self.loaded.lock() {
                    loaded.push(format!("{label} ({})", disturbed.join(", ")));
                }
                return Ok(out);
            }
            eprintln!("{label}: {} ran during this repetition; measuring it again", disturbed.join(", "));
            attempt += 1;
        }
    }
}

/// How many times a disturbed repetition is measured again before it is kept.
pub const RETRIES: usize = 5;

impl Drop for LoadWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU model, core count, memory and kernel, one line.
pub fn facts() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
    let flags = field("flags");
    let simd: Vec<&str> = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"].into_iter().filter(|f| flags.split(' ').any(|x| x == *f)).collect();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kib| kib / 1_048_576.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} (family {}, model {}), {} cores, {mem_gib:.1} GiB, SIMD {}, Linux {}",
        field("model name"),
        field("cpu family"),
        field("model\t"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        simd.join("/"),
        kernel.trim()
    )
}
