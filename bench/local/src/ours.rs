//! Our side, in process: `LocalChatModel` streamed greedily and
//! `LocalEmbedder` on the fixed inputs, one repetition per call, timed
//! exactly like `reference.py` times llama.cpp and sentence-transformers.
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
use serde::Deserialize;

/// One generation: prompt processing up to the first token, then decoding.
#[derive(Debug, Clone, Deserialize)]
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

/// Our chat model on the fixed prompts.
pub struct Chat {
    model: LocalChatModel,
    prompts: Vec<String>,
    max_tokens: usize,
}

impl Chat {
    /// Load the GGUF with `threads` inference threads and warm it up.
    pub async fn load(gguf: &Path, threads: usize, prompts: &[String], max_tokens: usize) -> anyhow::Result<Self> {
        let options = LocalChatOptions { threads: Some(threads), context_window: None };
        let model = LocalChatModel::load(gguf, &options).with_context(|| format!("load {}", gguf.display()))?;
        generate(&model, prompts.first().context("no prompts")?, 8).await?;
        Ok(Self { model, prompts: prompts.to_vec(), max_tokens })
    }

    /// Every prompt once, in order.
    pub async fn rep(&self) -> anyhow::Result<Vec<ChatRun>> {
        let mut row = Vec::with_capacity(self.prompts.len());
        for prompt in &self.prompts {
            row.push(generate(&self.model, prompt, self.max_tokens).await?);
        }
        Ok(row)
    }
}

/// Our embedder on the fixed sentences.
pub struct Embed {
    embedder: LocalEmbedder,
    sentences: Vec<String>,
}

/// One embedding repetition.
pub struct EmbedRun {
    pub seconds: f64,
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

impl Embed {
    /// Load the sentence-transformers folder and warm it up on one batch.
    pub async fn load(dir: &Path, sentences: &[String]) -> anyhow::Result<Self> {
        let embedder = LocalEmbedder::load(dir).with_context(|| format!("load {}", dir.display()))?;
        embedder.embed("bench", &sentences[..sentences.len().min(32)]).await.context("warm-up")?;
        Ok(Self { embedder, sentences: sentences.to_vec() })
    }

    /// All sentences in one call (the embedder batches by 32).
    pub async fn rep(&self) -> anyhow::Result<EmbedRun> {
        let started = Instant::now();
        let out = self.embedder.embed("bench", &self.sentences).await.context("embed")?;
        let seconds = started.elapsed().as_secs_f64();
        if out.vectors.len() != self.sentences.len() {
            bail!("{} vectors for {} sentences", out.vectors.len(), self.sentences.len());
        }
        Ok(EmbedRun { seconds, vectors: out.vectors, prompt_tokens: out.prompt_tokens })
    }
}
