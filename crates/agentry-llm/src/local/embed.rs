//! [`LocalEmbedder`]: a sentence-transformers BERT folder (config.json,
//! tokenizer.json, model.safetensors) served from one worker thread.
//!
//! Matches sentence-transformers' `encode(normalize)`: truncate at
//! `max_seq_length` (sentence_bert_config.json, 256 for all-MiniLM-L6-v2),
//! sort inputs by length, run batches of 32 padded to the longest input in
//! the batch (not the 128 the shipped tokenizer.json pads to), mean-pool
//! over the real tokens, L2-normalise, restore input order. The forward
//! pass is [`super::bert::Encoder`] on packed rows (no padding is computed
//! at all); activation is exact (erf) GELU as in the original model.
//!
//! Must not: run tensor work on the async runtime or hold the weights
//! anywhere but the worker thread.

use std::path::Path;
use std::sync::mpsc;

use async_trait::async_trait;
use candle_transformers::models::bert::Config;
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use super::bert::Encoder;
use crate::LlmError;
use crate::types::{Embedder, EmbeddingResponse};

/// Inputs per forward pass, as in sentence-transformers.
const BATCH: usize = 32;
/// sentence-transformers' default when sentence_bert_config.json is absent.
const DEFAULT_MAX_SEQ_LEN: usize = 256;

type Reply = oneshot::Sender<Result<(Vec<Vec<f32>>, u32), LlmError>>;

struct Job {
    inputs: Vec<String>,
    reply: Reply,
}

/// A sentence-embedding model running in-process on the CPU.
pub struct LocalEmbedder {
    jobs: mpsc::Sender<Job>,
    dimensions: usize,
}

struct Worker {
    encoder: Encoder,
    tokenizer: Tokenizer,
}

fn read(path: &Path) -> Result<Vec<u8>, LlmError> {
    std::fs::read(path).map_err(|e| LlmError::Local(format!("cannot read {}: {e}", path.display())))
}

impl LocalEmbedder {
    /// Load a sentence-transformers folder and start its worker thread.
    /// Slow (reads ~90 MB): call it from `spawn_blocking`.
    pub fn load(dir: &Path) -> Result<Self, LlmError> {
        let config: Config =
            serde_json::from_slice(&read(&dir.join("config.json"))?).map_err(|e| LlmError::Local(format!("{}: invalid BERT config: {e}", dir.join("config.json").display())))?;
        let max_seq_len = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map_or(DEFAULT_MAX_SEQ_LEN, |v| v as usize)
            .min(config.max_position_embeddings);

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| LlmError::Local(format!("cannot load {}: {e}", tokenizer_path.display())))?;
        // Rows are packed per batch, never padded: switch the file's padding off.
        tokenizer.with_padding(None);
        let truncation = TruncationParams { max_length: max_seq_len, ..tokenizer.get_truncation().cloned().unwrap_or_default() };
        tokenizer.with_truncation(Some(truncation)).map_err(|e| LlmError::Local(format!("tokenizer truncation: {e}")))?;

        let encoder = Encoder::load(&config, &read(&dir.join("model.safetensors"))?)?;
        let dimensions = encoder.hidden_size();

        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = Worker { encoder, tokenizer };
        std::thread::Builder::new()
            .name("agentry-local-embed".into())
            .spawn(move || worker.run(queue))
            .map_err(|e| LlmError::Local(format!("cannot start the embedding worker thread: {e}")))?;
        tracing::info!(path = %dir.display(), dimensions, max_seq_len, "local embedding model loaded");
        Ok(Self { jobs, dimensions })
    }

    /// Length of every vector this model returns.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn provider(&self) -> &'static str {
        "local"
    }

    async fn embed(&self, model: &str, inputs: &[String]) -> Result<EmbeddingResponse, LlmError> {
        if inputs.is_empty() {
            return Ok(EmbeddingResponse { model: model.to_string(), vectors: Vec::new(), prompt_tokens: 0 });
        }
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { inputs: inputs.to_vec(), reply }).map_err(|_| LlmError::Local("the local embedding worker has stopped".into()))?;
        let (vectors, prompt_tokens) = answer.await.map_err(|_| LlmError::Local("the local embedding worker dropped the request".into()))??;
        Ok(EmbeddingResponse { model: model.to_string(), vectors, prompt_tokens })
    }
}

impl Worker {
    fn run(self, queue: mpsc::Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            if job.reply.is_closed() {
                continue;
            }
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.embed(&job))).unwrap_or_else(|_| Err(LlmError::Local("the local embedding model panicked".into())));
            let _ = job.reply.send(result);
        }
        tracing::debug!("local embedding worker stopped");
    }

    /// Vectors in input order and the number of real (non-pad) tokens.
    fn embed(&self, job: &Job) -> Result<(Vec<Vec<f32>>, u32), LlmError> {
        let encodings = self.tokenizer.encode_batch(job.inputs.iter().map(String::as_str).collect::<Vec<_>>(), true).map_err(|e| LlmError::Local(format!("tokenizer: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        let prompt_tokens: usize = ids.iter().map(|i| i.len()).sum();

        // Longest first, like sentence-transformers; similar lengths share a batch.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
        let mut vectors = vec![Vec::new(); ids.len()];
        for batch in order.chunks(BATCH) {
            if job.reply.is_closed() {
                return Err(LlmError::Local("embedding request cancelled".into()));
            }
            let pooled = self.forward(batch.iter().map(|&i| ids[i]).collect())?;
            for (&i, v) in batch.iter().zip(pooled) {
                vectors[i] = v;
            }
        }
        Ok((vectors, u32::try_from(prompt_tokens).unwrap_or(u32::MAX)))
    }

    /// One batch → mean-pooled, L2-normalised vectors, as sentence-transformers
    /// computes them (count clamped at 1e-9, norm at 1e-12).
    fn forward(&self, batch: Vec<&[u32]>) -> Result<Vec<Vec<f32>>, LlmError> {
        let hidden = self.encoder.hidden_size();
        let states = self.encoder.forward(&batch)?;
        let mut rows = states.chunks_exact(hidden);
        let mut vectors = Vec::with_capacity(batch.len());
        for ids in &batch {
            let mut mean = vec![0f32; hidden];
            for row in rows.by_ref().take(ids.len()) {
                mean.iter_mut().zip(row).for_each(|(m, x)| *m += x);
            }
            let count = (ids.len() as f32).max(1e-9);
            mean.iter_mut().for_each(|m| *m /= count);
            let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            vectors.push(mean);
        }
        Ok(vectors)
    }
}
