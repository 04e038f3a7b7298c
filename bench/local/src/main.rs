//! Local-model benchmark. Measures Agentry's in-process chat model (prompt
//! and generation tokens/s) and embedder (sentences/s at batch 32) and, in
//! the same run on the same files and inputs, the reference implementations:
//! llama.cpp (llama-cpp-python) on our Q8_0 GGUF and on the original Q4_1
//! one, and sentence-transformers on the MiniLM folder (`reference.py`,
//! run with the venv from `setup.sh`). Checks cosine similarity of every
//! vector against sentence-transformers'. Prints a table of ours vs
//! reference, ratio, floor and pass/fail, and appends it with date, commit
//! and machine facts to `bench/results/local.md`.
//!
//! Usage: `bench-local [--models-dir DIR] [--python PY] [--threads 2] [--reps 5]`
//! (see `--help` and bench/README.md).
//!
//! Must not: assert on timings (a failed floor is reported, not an error),
//! or measure while its own setup work (model download) is running.

mod inputs;
mod machine;
mod ours;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use agentry_llm::model_files::{PullOptions, ensure_default_models};
use anyhow::{Context, bail};
use clap::Parser;
use serde::Deserialize;
use serde_json::json;

use ours::ChatRun;

/// Generation must reach this fraction of llama.cpp's speed on the same file.
const GEN_FLOOR: f64 = 0.8;
/// Embedding throughput must reach this fraction of sentence-transformers'.
const EMBED_FLOOR: f64 = 1.0;
/// Every vector's cosine similarity to sentence-transformers' must reach this.
const COSINE_FLOOR: f64 = 0.999;
const BATCH: usize = 32;

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
    #[arg(long, env = "AGENTRY_BENCH_PYTHON", default_value_os_t = home().join(".cache/agentry-bench-venv/bin/python"))]
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

/// What `reference.py` prints.
#[derive(Deserialize)]
struct Reference {
    versions: serde_json::Map<String, serde_json::Value>,
    embed: RefEmbed,
    chat: Vec<RefChat>,
}

#[derive(Deserialize)]
struct RefEmbed {
    seconds: Vec<f64>,
    vectors: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct RefChat {
    label: String,
    path: String,
    reps: Vec<Vec<ChatRun>>,
    internal: Option<Internal>,
}

/// llama.cpp's own eval timers (no Python overhead), over all measured reps.
#[derive(Deserialize)]
struct Internal {
    prompt_ms: f64,
    prompt_tokens: f64,
    eval_ms: f64,
    eval_tokens: f64,
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
    let paths = ensure_default_models(&args.models_dir, &PullOptions { offline: false, show_progress: true })
        .await
        .with_context(|| format!("models in {}", args.models_dir.display()))?;
    let prompts = inputs::prompts(&args.corpus)?;
    let sentences = inputs::sentences(&args.corpus, args.sentences)?;

    let still_busy = machine::wait_for_quiet(Duration::from_secs(args.quiet_wait));
    let watch = machine::LoadWatch::start();

    let chat = ours::chat(&paths.chat_gguf, args.threads, &prompts, args.max_tokens, args.reps).await?;
    let (embed_secs, vectors, embed_tokens) = ours::embed(&paths.embed_dir, &sentences, args.reps).await?;

    // The reference generates exactly as many tokens per prompt as we did.
    let last = chat.last().context("no chat repetitions")?;
    let spec = json!({
        "threads": args.threads,
        "reps": args.reps,
        "embed": { "dir": paths.embed_dir, "sentences": sentences, "batch": BATCH },
        "chat": {
            "models": [
                { "label": "Q8_0", "path": paths.chat_gguf },
                { "label": "Q4_1", "path": null },
            ],
            "prompts": prompts.iter().zip(last).map(|(p, r)| json!({
                "messages": [{ "role": "user", "content": p }],
                "gen_tokens": r.gen_tokens + 1,
            })).collect::<Vec<_>>(),
        },
    });
    let reference = reference(&args.python, &spec)?;
    let load_seen = watch.seen();
    drop(watch);

    let report = Report { args: &args, chat: &chat, embed_secs: &embed_secs, vectors: &vectors, embed_tokens, sentences: &sentences, reference: &reference };
    let mut text = report.render()?;
    if !still_busy.is_empty() || !load_seen.is_empty() {
        text.push_str(&format!(
            "\n**Measured with load present**: still running after {} s of waiting: {}; seen during the run: {}.\n",
            args.quiet_wait,
            if still_busy.is_empty() { "nothing".to_owned() } else { still_busy.join(", ") },
            if load_seen.is_empty() { "nothing".to_owned() } else { load_seen.join(", ") },
        ));
    }
    std::io::stdout().write_all(text.as_bytes())?;
    if !args.no_append {
        let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/local.md");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&results).with_context(|| format!("open {}", results.display()))?;
        let when = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        let commit = command_output("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"]);
        let dirty = if command_output("git", &["-C", env!("CARGO_MANIFEST_DIR"), "status", "--porcelain", "--untracked-files=no"]).is_empty() { "" } else { "+changes" };
        writeln!(file, "\n## {when} (commit {commit}{dirty}, {} cores)\n\n{text}", std::thread::available_parallelism().map_or(0, |n| n.get()))?;
        eprintln!("appended to {}", results.display());
    }
    Ok(())
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program).args(args).output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).unwrap_or_default()
}

/// Run `reference.py` on the spec; its stderr (progress) passes through.
fn reference(python: &Path, spec: &serde_json::Value) -> anyhow::Result<Reference> {
    let mut file = tempfile::NamedTempFile::new().context("temp file for the reference spec")?;
    serde_json::to_writer(&mut file, spec)?;
    file.flush()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference.py");
    eprintln!("running the reference: {} {}", python.display(), script.display());
    let output = Command::new(python)
        .arg(&script)
        .arg(file.path())
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("run {}", python.display()))?;
    if !output.status.success() {
        bail!("reference.py failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).context("reference.py output")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Median over repetitions of (prompt tokens/s, generation tokens/s), each
/// repetition's rate being its total tokens over its total seconds.
fn chat_rates(reps: &[Vec<ChatRun>]) -> (f64, f64) {
    let prompt = reps.iter().map(|r| r.iter().map(|x| x.prompt_tokens as f64).sum::<f64>() / r.iter().map(|x| x.ttft).sum::<f64>());
    let generation = reps.iter().map(|r| r.iter().map(|x| x.gen_tokens as f64).sum::<f64>() / r.iter().map(|x| x.gen_seconds).sum::<f64>());
    (median(prompt.collect()), median(generation.collect()))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

fn verdict(ratio: f64, floor: f64) -> &'static str {
    if ratio >= floor { "pass" } else { "FAIL" }
}

struct Report<'a> {
    args: &'a Args,
    chat: &'a [Vec<ChatRun>],
    embed_secs: &'a [f64],
    vectors: &'a [Vec<f32>],
    embed_tokens: u32,
    sentences: &'a [String],
    reference: &'a Reference,
}

impl Report<'_> {
    fn render(&self) -> anyhow::Result<String> {
        let r = self.reference;
        let n = self.sentences.len() as f64;
        let ours_sps = median(self.embed_secs.iter().map(|s| n / s).collect());
        let ref_sps = median(r.embed.seconds.iter().map(|s| n / s).collect());
        if r.embed.vectors.len() != self.vectors.len() {
            bail!("reference returned {} vectors for {} sentences", r.embed.vectors.len(), self.vectors.len());
        }
        let cosines: Vec<f64> = self.vectors.iter().zip(&r.embed.vectors).map(|(a, b)| cosine(a, b)).collect();
        let min_cos = cosines.iter().copied().fold(f64::INFINITY, f64::min);
        let mean_cos = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
        let (ours_pp, ours_gen) = chat_rates(self.chat);

        let mut rows = Vec::new();
        for rc in &r.chat {
            let (pp, generation) = chat_rates(&rc.reps);
            let like = rc.label == "Q8_0";
            let what = if like { "same Q8_0 file" } else { "original Q4_1 file" };
            rows.push(format!("| chat prompt tok/s vs llama.cpp, {what} | {ours_pp:.1} | {pp:.1} | {:.2}× | — | info |", ours_pp / pp));
            let (floor, result) = if like {
                (format!("≥ {GEN_FLOOR:.2}×"), verdict(ours_gen / generation, GEN_FLOOR))
            } else {
                ("—".to_owned(), "info")
            };
            rows.push(format!("| chat generation tok/s vs llama.cpp, {what} | {ours_gen:.1} | {generation:.1} | {:.2}× | {floor} | {result} |", ours_gen / generation));
        }
        rows.push(format!(
            "| embeddings sentences/s (batch {BATCH}) vs sentence-transformers | {ours_sps:.1} | {ref_sps:.1} | {:.2}× | ≥ {EMBED_FLOOR:.2}× | {} |",
            ours_sps / ref_sps,
            verdict(ours_sps / ref_sps, EMBED_FLOOR)
        ));
        rows.push(format!(
            "| cosine vs sentence-transformers, min (mean) over {} sentences | {min_cos:.6} ({mean_cos:.6}) | 1 | — | ≥ {COSINE_FLOOR} | {} |",
            cosines.len(),
            verdict(min_cos, COSINE_FLOOR)
        ));

        let versions: Vec<String> = r.versions.iter().map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or_default())).collect();
        let ours_prompt: Vec<String> = self.chat.first().map(|rep| rep.iter().map(|x| x.prompt_tokens.to_string()).collect()).unwrap_or_default();
        let ref_prompt: Vec<String> = r.chat.first().and_then(|c| c.reps.first()).map(|rep| rep.iter().map(|x| x.prompt_tokens.to_string()).collect()).unwrap_or_default();
        let generated: Vec<String> = self.chat.last().map(|rep| rep.iter().map(|x| (x.gen_tokens + 1).to_string()).collect()).unwrap_or_default();
        let mut out = String::new();
        out.push_str(&format!("machine: {}\n\n", machine::facts()));
        out.push_str(&format!(
            "threads {} for every implementation; median of {} repetitions after a warm-up; reference: {}\n\n",
            self.args.threads,
            self.args.reps,
            versions.join(", ")
        ));
        out.push_str(&format!(
            "chat: {} prompts of {} prompt tokens (llama.cpp tokenizes them to {}), greedy, {} new tokens each; prompt tok/s = prompt tokens / time to first token, generation tok/s = tokens after the first / time after the first\n\n",
            self.chat.first().map_or(0, Vec::len),
            ours_prompt.join(", "),
            ref_prompt.join(", "),
            generated.join(", "),
        ));
        out.push_str(&format!(
            "embeddings: {} Cranfield sentences ({} tokens, {:.1} per sentence), normalised, one call in batches of {BATCH}\n\n",
            self.sentences.len(),
            self.embed_tokens,
            f64::from(self.embed_tokens) / n
        ));
        out.push_str("| measure | ours | reference | ratio | floor | result |\n|---|---|---|---|---|---|\n");
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
        for rc in &r.chat {
            if let Some(i) = &rc.internal {
                out.push_str(&format!(
                    "\nllama.cpp {} internal timers (no Python): prompt {:.1} tok/s, generation {:.1} tok/s ({})",
                    rc.label,
                    i.prompt_tokens / i.prompt_ms * 1000.0,
                    i.eval_tokens / i.eval_ms * 1000.0,
                    Path::new(&rc.path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
                ));
            }
        }
        out.push_str(&format!("\n\nours per repetition: generation {} tok/s; embeddings {} sentences/s\n", spread(self.chat.iter().map(|r| chat_rates(std::slice::from_ref(r)).1)), spread(self.embed_secs.iter().map(|s| n / s))));
        Ok(out)
    }
}

/// `min–max` of a series, one decimal.
fn spread(xs: impl Iterator<Item = f64>) -> String {
    let xs: Vec<f64> = xs.collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.1}–{hi:.1}")
}
