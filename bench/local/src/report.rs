//! Turns the raw timings of both sides into the results table: medians over
//! repetitions, ours / reference ratios against the floors, cosine
//! similarity of every vector, plus the context lines (machine, versions,
//! inputs, llama.cpp's own timers, per-repetition spread).
//!
//! Must not: measure anything or decide pass/fail other than against the
//! floors defined here.

use std::path::Path;

use crate::machine;
use crate::ours::ChatRun;
use crate::reference::Internal;

/// Generation must reach this fraction of llama.cpp's speed on the same file.
pub const GEN_FLOOR: f64 = 0.8;
/// Embedding throughput must reach this fraction of sentence-transformers'.
pub const EMBED_FLOOR: f64 = 1.0;
/// Every vector's cosine similarity to sentence-transformers' must reach this.
pub const COSINE_FLOOR: f64 = 0.999;

/// llama.cpp's repetitions on one GGUF.
pub struct RefChat {
    pub label: String,
    pub path: String,
    pub reps: Vec<Vec<ChatRun>>,
    pub internal: Vec<Internal>,
}

/// Everything measured in one run.
pub struct Results {
    pub threads: usize,
    pub batch: usize,
    pub sentences: usize,
    pub embed_tokens: u32,
    pub versions: Vec<String>,
    pub ours_chat: Vec<Vec<ChatRun>>,
    pub ours_embed_secs: Vec<f64>,
    pub ours_vectors: Vec<Vec<f32>>,
    pub ref_chat: Vec<RefChat>,
    pub ref_embed_secs: Vec<f64>,
    pub ref_vectors: Vec<Vec<f32>>,
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// (prompt tokens/s, generation tokens/s) of one repetition: its total
/// tokens over its total seconds.
pub fn rep_rates(rep: &[ChatRun]) -> (f64, f64) {
    let prompt = rep.iter().map(|x| x.prompt_tokens as f64).sum::<f64>() / rep.iter().map(|x| x.ttft).sum::<f64>();
    let generation = rep.iter().map(|x| x.gen_tokens as f64).sum::<f64>() / rep.iter().map(|x| x.gen_seconds).sum::<f64>();
    (prompt, generation)
}

/// Medians over repetitions of [`rep_rates`].
fn chat_rates(reps: &[Vec<ChatRun>]) -> (f64, f64) {
    (median(reps.iter().map(|r| rep_rates(r).0).collect()), median(reps.iter().map(|r| rep_rates(r).1).collect()))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

fn verdict(value: f64, floor: f64) -> &'static str {
    if value >= floor { "pass" } else { "FAIL" }
}

/// A cosine close to 1 as its distance from 1 (`1 − 2.1e-8`), so the digits that differ show.
fn similarity(c: f64) -> String {
    if c > 0.9999 && c <= 1.0 { format!("1 − {:.1e}", 1.0 - c) } else { format!("{c:.6}") }
}

/// `min–max` of a series, one decimal.
fn spread(xs: impl Iterator<Item = f64>) -> String {
    let xs: Vec<f64> = xs.collect();
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.1}–{hi:.1}")
}

fn token_counts(rep: Option<&Vec<ChatRun>>, count: impl Fn(&ChatRun) -> usize) -> String {
    rep.map(|r| r.iter().map(|x| count(x).to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

impl Results {
    /// The markdown block printed and appended to the results file.
    pub fn render(&self) -> String {
        let n = self.sentences as f64;
        let ours_sps = median(self.ours_embed_secs.iter().map(|s| n / s).collect());
        let ref_sps = median(self.ref_embed_secs.iter().map(|s| n / s).collect());
        let cosines: Vec<f64> = self.ours_vectors.iter().zip(&self.ref_vectors).map(|(a, b)| cosine(a, b)).collect();
        let min_cos = if cosines.len() == self.sentences { cosines.iter().copied().fold(f64::INFINITY, f64::min) } else { f64::NAN };
        let mean_cos = cosines.iter().sum::<f64>() / cosines.len().max(1) as f64;
        let (ours_pp, ours_gen) = chat_rates(&self.ours_chat);

        let mut rows = Vec::new();
        for rc in &self.ref_chat {
            let (pp, generation) = chat_rates(&rc.reps);
            let like = rc.label == "Q8_0";
            let what = if like { "same Q8_0 file" } else { "original Q4_1 file" };
            rows.push(format!("| chat prompt tok/s vs llama.cpp, {what} | {ours_pp:.1} | {pp:.1} | {:.2}× | — | info |", ours_pp / pp));
            let (floor, result) = if like { (format!("≥ {GEN_FLOOR:.2}×"), verdict(ours_gen / generation, GEN_FLOOR)) } else { ("—".to_owned(), "info") };
            rows.push(format!("| chat generation tok/s vs llama.cpp, {what} | {ours_gen:.1} | {generation:.1} | {:.2}× | {floor} | {result} |", ours_gen / generation));
        }
        rows.push(format!(
            "| embeddings sentences/s (batch {}) vs sentence-transformers | {ours_sps:.1} | {ref_sps:.1} | {:.2}× | ≥ {EMBED_FLOOR:.2}× | {} |",
            self.batch,
            ours_sps / ref_sps,
            verdict(ours_sps / ref_sps, EMBED_FLOOR)
        ));
        rows.push(format!(
            "| cosine vs sentence-transformers, min (mean) over {} sentences | {} ({}) | 1 | — | ≥ {COSINE_FLOOR} | {} |",
            cosines.len(),
            similarity(min_cos),
            similarity(mean_cos),
            verdict(min_cos, COSINE_FLOOR)
        ));

        let mut out = String::new();
        out.push_str(&format!("machine: {}\n\n", machine::facts()));
        out.push_str(&format!(
            "threads {} for every implementation; median of {} repetitions after a warm-up, ours and the reference's alternating; reference: {}\n\n",
            self.threads,
            self.ours_chat.len(),
            self.versions.join(", ")
        ));
        out.push_str(&format!(
            "chat: {} prompts of {} prompt tokens (llama.cpp tokenizes them to {}), greedy, {} new tokens each; \
             prompt tok/s = prompt tokens / time to first token, generation tok/s = tokens after the first / time after the first\n\n",
            self.ours_chat.first().map_or(0, Vec::len),
            token_counts(self.ours_chat.first(), |x| x.prompt_tokens),
            token_counts(self.ref_chat.first().and_then(|c| c.reps.first()), |x| x.prompt_tokens),
            token_counts(self.ours_chat.first(), |x| x.gen_tokens + 1),
        ));
        out.push_str(&format!(
            "embeddings: {} Cranfield sentences ({} tokens, {:.1} per sentence), normalised, one call in batches of {}\n\n",
            self.sentences,
            self.embed_tokens,
            f64::from(self.embed_tokens) / n,
            self.batch
        ));
        out.push_str("| measure | ours | reference | ratio | floor | result |\n|---|---|---|---|---|---|\n");
        for row in rows {
            out.push_str(&row);
            out.push('\n');
        }
        out.push('\n');
        for rc in self.ref_chat.iter().filter(|rc| !rc.internal.is_empty()) {
            out.push_str(&format!(
                "llama.cpp {} ({}) by its own timers, without Python's per-token overhead: prompt {:.1} tok/s, generation {:.1} tok/s\n\n",
                rc.label,
                Path::new(&rc.path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                median(rc.internal.iter().map(|i| i.prompt_tokens / i.prompt_ms * 1000.0).collect()),
                median(rc.internal.iter().map(|i| i.eval_tokens / i.eval_ms * 1000.0).collect()),
            ));
        }
        let per_rep = |reps: &[Vec<ChatRun>]| spread(reps.iter().map(|r| rep_rates(r).1));
        let mut spreads = vec![format!("ours generation {} tok/s", per_rep(&self.ours_chat))];
        spreads.extend(self.ref_chat.iter().map(|rc| format!("llama.cpp {} generation {} tok/s", rc.label, per_rep(&rc.reps))));
        spreads.push(format!("ours embeddings {} sentences/s", spread(self.ours_embed_secs.iter().map(|s| n / s))));
        spreads.push(format!("sentence-transformers {} sentences/s", spread(self.ref_embed_secs.iter().map(|s| n / s))));
        out.push_str(&format!("per repetition (min–max): {}\n", spreads.join("; ")));
        out
    }
}
