//! Our side, in process: `LocalChatModel` streamed greedily and
//! `LocalEmbedder` on the fixed inputs, timed exactly like `reference.py`
//! times llama.cpp and sentence-transformers.
//!
//! Must not: change how the models run (options are the server's defaults
//! apart from the thread count), or time anything but the model calls.

use std::path::Path;
use std::time::Instant;

use agentry_llm::local::{LocalChatModel, LocalChatOptions, LocalEmbedder};
use agentry_llm::{ChatModel, ChatRequest, Embedder, StreamEvent};
use agentry_types::{ChatMessage, Role};
use anyhow::{Context, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

/// One generation: prompt processing up to the first token, then decoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRun {
    pub prompt_tokens: usize,
    /// Seconds from the request to the first generated text.
    pub ttft: f64,
    /// Tokens generated after the first one.
    pub gen_tokens: usize,
    /// Seconds from the first token to the last.
    pub gen_seconds: f64,
}

fn request(prompt: &str, max_tokens: usize) -> ChatRequest {
    ChatRequest {
        model: "smollm2".into(),
        messages: vec![ChatMessage::text(Role::User, prompt)],
        temperature: Some(0.0),
        max_tokens: Some(u32::try_from(max_tokens).unwrap_or(u32::MAX)),
        ..ChatRequest::default()
    }
}

async fn generate(model: &LocalChatModel, prompt: &str, max_tokens: usize) -> anyhow::Result<ChatRun> {
    let request = request(prompt, max_tokens);
    let started = Instant::now();
    let mut stream = model.stream(&request).await.context("chat request")?;
    let mut first = None;
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event.context("generation")? {
            StreamEvent::Delta { content: Some(text), .. } if first.is_none() && !text.is_empty() => first = Some(Instant::now()),
            StreamEvent::Usage(u) => usage = Some(u),
            _ => {}
        }
    }
    let done = Instant::now();
    let usage = usage.context("no usage event")?;
    let first = first.context("no text generated")?;
    Ok(ChatRun {
        prompt_tokens: usage.prompt_tokens as usize,
        ttft: (first - started).as_secs_f64(),
        gen_tokens: (usage.completion_tokens as usize).saturating_sub(1),
        gen_seconds: (done - first).as_secs_f64(),
    })
}

/// Every prompt `reps` times after a warm-up; `runs[rep][prompt]`.
pub async fn chat(gguf: &Path, threads: usize, prompts: &[String], max_tokens: usize, reps: usize) -> anyhow::Result<Vec<Vec<ChatRun>>> {
    let options = LocalChatOptions { threads: Some(threads), context_window: None };
    let model = LocalChatModel::load(gguf, &options).with_context(|| format!("load {}", gguf.display()))?;
    let warm = prompts.first().context("no prompts")?;
    generate(&model, warm, 8).await?;
    let mut runs = Vec::with_capacity(reps);
    for rep in 0..reps {
        let mut row = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            row.push(generate(&model, prompt, max_tokens).await?);
        }
        let (tokens, secs) = row.iter().fold((0, 0.0), |(t, s), r| (t + r.gen_tokens, s + r.gen_seconds));
        eprintln!("[ours] chat rep {}/{reps}: generation {:.1} tok/s", rep + 1, tokens as f64 / secs);
        runs.push(row);
    }
    if let Some(short) = runs.iter().flatten().find(|r| r.gen_tokens + 1 < max_tokens) {
        eprintln!("note: a prompt stopped early at {} tokens (end of text); the reference generates the same count", short.gen_tokens + 1);
    }
    Ok(runs)
}

/// Sentences per second of each repetition, and the last repetition's vectors.
pub async fn embed(dir: &Path, sentences: &[String], reps: usize) -> anyhow::Result<(Vec<f64>, Vec<Vec<f32>>, u32)> {
    let embedder = LocalEmbedder::load(dir).with_context(|| format!("load {}", dir.display()))?;
    embedder.embed("bench", &sentences[..sentences.len().min(32)]).await.context("warm-up")?;
    let mut seconds = Vec::with_capacity(reps);
    let mut last = None;
    for rep in 0..reps {
        let started = Instant::now();
        let out = embedder.embed("bench", sentences).await.context("embed")?;
        seconds.push(started.elapsed().as_secs_f64());
        eprintln!("[ours] embeddings rep {}/{reps}: {:.1} sentences/s", rep + 1, sentences.len() as f64 / started.elapsed().as_secs_f64());
        last = Some(out);
    }
    let out = last.context("no repetitions")?;
    if out.vectors.len() != sentences.len() {
        bail!("{} vectors for {} sentences", out.vectors.len(), sentences.len());
    }
    Ok((seconds, out.vectors, out.prompt_tokens))
}
