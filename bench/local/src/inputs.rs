//! The fixed inputs both sides run on: chat prompts and embedding sentences,
//! taken deterministically from the Cranfield corpus (real technical text).
//!
//! Must not: depend on anything but the corpus file and the requested
//! counts, so every run (ours and the reference) sees identical inputs.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Deserialize)]
struct Doc {
    title: String,
    text: String,
}

/// Cranfield documents in file order.
fn docs(corpus: &Path) -> anyhow::Result<Vec<Doc>> {
    let text = std::fs::read_to_string(corpus).with_context(|| format!("cannot read {}", corpus.display()))?;
    text.lines().filter(|l| !l.trim().is_empty()).enumerate().map(|(i, line)| serde_json::from_str(line).with_context(|| format!("{} line {}", corpus.display(), i + 1))).collect()
}

/// Collapse runs of whitespace (the corpus pads sentence ends with spaces).
fn tidy(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first sentence of each abstract after its title (the corpus repeats
/// the title as the text's first sentence), at least five words long, in
/// file order, `count` of them.
pub fn sentences(corpus: &Path, count: usize) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(count);
    for doc in docs(corpus)? {
        let title = tidy(doc.title.trim_end_matches(" ."));
        let sentence = doc.text.split(" . ").map(tidy).filter(|s| !s.is_empty() && *s != title && s.trim_end_matches(" .") != title).find(|s| s.split(' ').count() >= 5);
        if let Some(s) = sentence {
            out.push(format!("{} .", s.trim_end_matches(" .")));
        }
        if out.len() == count {
            return Ok(out);
        }
    }
    bail!("{} has only {} usable sentences; asked for {count}", corpus.display(), out.len())
}

/// Three chat prompts: two short instructions and one long one (a whole
/// abstract to summarise) so prompt processing is measured on a real batch.
pub fn prompts(corpus: &Path) -> anyhow::Result<Vec<String>> {
    let docs = docs(corpus)?;
    let abstract_text = docs.iter().map(|d| tidy(&d.text)).find(|t| t.split(' ').count() >= 150).context("no long abstract in the corpus")?;
    Ok(vec![
        "Write a long story about a dragon who learns to fly.".to_owned(),
        "Explain in detail how a jet engine works, step by step.".to_owned(),
        format!("Summarize the following abstract in detail.\n\n{abstract_text}"),
    ])
}
