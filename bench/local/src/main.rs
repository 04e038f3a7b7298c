//! Local-model benchmark. Measures Agentry's in-process chat model (prompt
//! and generation tokens/s) and embedder (sentences/s at batch 32) and, in
//! the same run on the same files and inputs, the reference implementations:
//! llama.cpp (llama-cpp-python) on our Q8_0 GGUF and on the original Q4_1
//! one, and sentence-transformers on the MiniLM folder (`reference.py`,
//! run with the venv from `setup.sh`, kept running beside us so that our
//! repetitions and the reference's alternate). Checks cosine similarity of every
//! vector against sentence-transformers'. Prints a table of ours vs
//! reference, ratio, floor and pass/fail, and appends it with date, commit
//! and machine facts to `bench/results/local.md`.
//!
//! Usage: `bench-local [--models-dir DIR] [--python PY] [--threads 2] [--reps 5]`
//! (see `--help` and bench/README.md).
//!
//! Each repetition waits for the machine to be quiet (no builds, test runs
//! or load generators: see `machine`) and is measured again when such work
//! ran during it; the results say when retries ran out.
//!
//! Must not: assert on timings (a failed floor is reported, not an error),
//! or measure while its own setup work (model download) is running.

mod inputs;
mod machine;
mod ours;
mod reference;
mod report;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agentry_llm::model_files::{PullOptions, ensure_default_models};
use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;

use ours::ChatRun;
use reference::Reference;
use report::{RefChat, Results};

const BATCH: usize = 32;

/// The allocator the `agentry` server runs with, so the models run here as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
}

#[derive(Parser, Debug)]
#[command(about = "Local chat and embedding throughput vs llama.cpp and sentence-transformers")]
struct Args {
    /// Where the default models are (pulled there if missing).
    #[arg(long, default_value_os_t = home().join(".cache/agentry-test-data/models"))]
    models_dir: PathBuf,
    /// Python of the reference venv (bench/local/setup.sh prints it).
    #[arg(long, env = "BENCH_PYTHON", default_value_os_t = home().join(".cache/agentry-bench-venv/bin/python"))]
    python: PathBuf,
    /// Threads for every implementation.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// New tokens per chat prompt.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Sentences to embed (at least 256).
    #[arg(long, default_value_t = 512)]
    sentences: usize,
    /// Cranfield corpus (JSON lines with title and text).
    #[arg(long, default_value_os_t = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/cranfield/corpus.jsonl"))]
    corpus: PathBuf,
    /// Seconds to wait for builds and test runs to finish before measuring.
    #[arg(long, default_value_t = 600)]
    quiet_wait: u64,
    /// Print the table only; do not append to bench/results/local.md.
    #[arg(long)]
    no_append: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.sentences < 256 {
        bail!("--sentences must be at least 256");
    }
    // candle's quantized-matmul pool is sized from the environment when first
    // used, so pin it by re-running ourselves with the variables set.
    let want = args.threads.to_string();
    if std::env::var("CANDLE_NUM_THREADS").ok().as_deref() != Some(want.as_str()) {
        let status = Command::new(std::env::current_exe()?)
            .args(std::env::args_os().skip(1))
            .env("CANDLE_NUM_THREADS", &want)
            .env("RAYON_NUM_THREADS", &want)
            .status()
            .context("re-run with CANDLE_NUM_THREADS set")?;
        std::process::exit(status.code().unwrap_or(1));
    }
    if !args.python.exists() {
        bail!("{} not found: create the reference venv with `bash bench/local/setup.sh` (or pass --python)", args.python.display());
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let paths =
        ensure_default_models(&args.models_dir, &PullOptions { offline: false, show_progress: true }).await.with_context(|| format!("models in {}", args.models_dir.display()))?;
    let prompts = inputs::prompts(&args.corpus)?;
    let sentences = inputs::sentences(&args.corpus, args.sentences)?;

    let chat = ours::Chat::load(&paths.chat_gguf, args.threads, &prompts, args.max_tokens).await?;
    let embed = ours::Embed::load(&paths.embed_dir, &sentences).await?;
    let spec = json!({
        "threads": args.threads,
        "embed": { "dir": paths.embed_dir, "sentences": sentences, "batch": BATCH },
        "chat": {
            "models": [{ "label": "Q8_0", "path": paths.chat_gguf }, { "label": "Q4_1", "path": null }],
            "prompts": prompts,
        },
    });
    let mut reference = Reference::start(&args.python, &spec)?;
    let labels = ["Q8_0", "Q4_1"];

    let watch = machine::LoadWatch::start(Duration::from_secs(args.quiet_wait));
    let mut ours_chat: Vec<Vec<ChatRun>> = Vec::new();
    let mut ref_chat: Vec<RefChat> = labels
        .iter()
        .map(|l| RefChat { label: (*l).to_owned(), path: reference.paths.get(*l).and_then(|p| p.as_str()).unwrap_or_default().to_owned(), reps: Vec::new(), internal: Vec::new() })
        .collect();
    let (mut ours_embed_secs, mut ref_embed_secs) = (Vec::new(), Vec::new());
    let mut last_embed = None;
    // Tokens to generate per prompt: as many as ours did in its first repetition.
    let mut counts: Vec<usize> = Vec::new();
    for rep in 1..=args.reps {
        // Alternate who goes first so neither side always follows the other.
        let ours_first = rep % 2 == 1 || counts.is_empty();
        for turn in [ours_first, !ours_first] {
            if turn {
                let row = watch.measure(&format!("ours chat rep {rep}"), async || chat.rep().await).await?;
                if counts.is_empty() {
                    counts = row.iter().map(|r| r.gen_tokens + 1).collect();
                } else if row.iter().map(|r| r.gen_tokens + 1).ne(counts.iter().copied()) {
                    eprintln!("note: greedy generation produced different lengths in rep {rep}");
                }
                eprintln!("[ours] chat rep {rep}/{}: generation {:.1} tok/s", args.reps, report::rep_rates(&row).1);
                ours_chat.push(row);
            } else {
                for rc in &mut ref_chat {
                    let reply = watch.measure(&format!("llama.cpp {} rep {rep}", rc.label), async || reference.chat(&rc.label, &counts)).await?;
                    eprintln!("[reference] llama.cpp {} rep {rep}/{}: generation {:.1} tok/s", rc.label, args.reps, report::rep_rates(&reply.runs).1);
                    rc.reps.push(reply.runs);
                    rc.internal.extend(reply.internal);
                }
            }
        }
        for turn in [ours_first, !ours_first] {
            if turn {
                let run = watch.measure(&format!("ours embeddings rep {rep}"), async || embed.rep().await).await?;
                eprintln!("[ours] embeddings rep {rep}/{}: {:.1} sentences/s", args.reps, sentences.len() as f64 / run.seconds);
                ours_embed_secs.push(run.seconds);
                last_embed = Some(run);
            } else {
                let secs = watch.measure(&format!("sentence-transformers rep {rep}"), async || reference.embed()).await?;
                eprintln!("[reference] sentence-transformers rep {rep}/{}: {:.1} sentences/s", args.reps, sentences.len() as f64 / secs);
                ref_embed_secs.push(secs);
            }
        }
    }
    let loaded = watch.loaded();
    drop(watch);
    let ours_embed = last_embed.context("no repetitions")?;
    let results = Results {
        threads: args.threads,
        batch: BATCH,
        sentences: sentences.len(),
        embed_tokens: ours_embed.prompt_tokens,
        versions: reference.versions.iter().map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or_default())).collect(),
        ours_chat,
        ours_embed_secs,
        ours_vectors: ours_embed.vectors,
        ref_chat,
        ref_embed_secs,
        ref_vectors: reference.vectors()?,
    };
    drop(reference);
    let mut text = results.render();
    if !loaded.is_empty() {
        text.push_str(&format!("\n**Measured with load present**: other work still ran after {} retries in: {}.\n", machine::RETRIES, loaded.join("; ")));
    }
    std::io::stdout().write_all(text.as_bytes())?;
    if !args.no_append {
        append(&text)?;
    }
    Ok(())
}

/// Append the block under a heading with date, commit and core count.
fn append(text: &str) -> anyhow::Result<()> {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/local.md");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results).with_context(|| format!("open {}", results.display()))?;
    let when = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let repo = env!("CARGO_MANIFEST_DIR");
    let commit = command_output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
    let dirty = if command_output("git", &["-C", repo, "status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { "+changes" };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(file, "\n## {when} (commit {commit}{dirty}, {cores} cores)\n\n{text}")?;
    eprintln!("appended to {}", results.display());
    Ok(())
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program).args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}
