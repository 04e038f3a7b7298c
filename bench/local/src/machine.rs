//! Facts about the machine for the results file, and a watch for other
//! heavy work (builds, test runs, load generators) that would pollute the
//! numbers: wait for quiet before measuring, then note anything that shows
//! up while measuring.
//!
//! Must not: stop or signal any process; it only reads `/proc`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Samples busy processes every second on its own thread until dropped.
pub struct LoadWatch {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<BTreeSet<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoadWatch {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for p in busy_processes() {
                        if let Ok(mut seen) = seen.lock() {
                            seen.insert(p.split(' ').next().unwrap_or_default().to_owned());
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
        };
        Self { stop, seen, thread: Some(thread) }
    }

    /// Names of busy processes seen at any sample so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

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
    let field = |name: &str| {
        cpuinfo.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_owned()).unwrap_or_default()
    };
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
