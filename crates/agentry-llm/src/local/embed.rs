//! [`LocalEmbedder`]: a sentence-transformers BERT folder (config.json,
//! tokenizer.json, model.safetensors) served from one worker thread.
//!
//! Matches sentence-transformers' `encode(normalize)`: truncate at
//! `max_seq_length` (sentence_bert_config.json, 256 for all-MiniLM-L6-v2),
//! sort inputs by length, run batches of 32 padded to the longest input in
//! the batch (not the 128 the shipped tokenizer.json pads to), mean-pool
//! over the attention mask, L2-normalise, restore input order. Activation
//! is exact (erf) GELU as in the original model: candle's tanh
//! approximation measured no faster here (and moves cosine to ~0.999999).
//!
//! Must not: run tensor work on the async runtime or hold the weights
//! anywhere but the worker thread.

use std::path::Path;
use std::sync::mpsc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

use super::local_err;
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
    model: BertModel,
    tokenizer: Tokenizer,
    pad_id: u32,
}

fn read(path: &Path) -> Result<Vec<u8>, LlmError> {
    std::fs::read(path).map_err(|e| LlmError::Local(format!("cannot read {}: {e}", path.display())))
}

impl LocalEmbedder {
    /// Load a sentence-transformers folder and start its worker thread.
    /// Slow (reads ~90 MB): call it from `spawn_blocking`.
    pub fn load(dir: &Path) -> Result<Self, LlmError> {
        let config: Config = serde_json::from_slice(&read(&dir.join("config.json"))?)
            .map_err(|e| LlmError::Local(format!("{}: invalid BERT config: {e}", dir.join("config.json").display())))?;
        let max_seq_len = std::fs::read(dir.join("sentence_bert_config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("max_seq_length").and_then(serde_json::Value::as_u64))
            .map_or(DEFAULT_MAX_SEQ_LEN, |v| v as usize)
            .min(config.max_position_embeddings);

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| LlmError::Local(format!("cannot load {}: {e}", tokenizer_path.display())))?;
        // Padding is done per batch below (to the longest input), so switch the file's off.
        let pad_id = tokenizer.get_padding().map_or(config.pad_token_id as u32, |p| p.pad_id);
        tokenizer.with_padding(None);
        let truncation = TruncationParams { max_length: max_seq_len, ..tokenizer.get_truncation().cloned().unwrap_or_default() };
        tokenizer.with_truncation(Some(truncation)).map_err(|e| LlmError::Local(format!("tokenizer truncation: {e}")))?;

        let weights = read(&dir.join("model.safetensors"))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu).map_err(local_err("model.safetensors"))?;
        let model = BertModel::load(vb, &config).map_err(local_err("cannot build the BERT model"))?;
        let dimensions = config.hidden_size;

        let (jobs, queue) = mpsc::channel::<Job>();
        let worker = Worker { model, tokenizer, pad_id };
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
        self.jobs
            .send(Job { inputs: inputs.to_vec(), reply })
            .map_err(|_| LlmError::Local("the local embedding worker has stopped".into()))?;
        let (vectors, prompt_tokens) =
            answer.await.map_err(|_| LlmError::Local("the local embedding worker dropped the request".into()))??;
        Ok(EmbeddingResponse { model: model.to_string(), vectors, prompt_tokens })
    }
}

impl Worker {
    fn run(self, queue: mpsc::Receiver<Job>) {
        while let Ok(job) = queue.recv() {
            if job.reply.is_closed() {
                continue;
            }
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.embed(&job)))
                .unwrap_or_else(|_| Err(LlmError::Local("the local embedding model panicked".into())));
            let _ = job.reply.send(result);
        }
        tracing::debug!("local embedding worker stopped");
    }

    /// Vectors in input order and the number of real (non-pad) tokens.
    fn embed(&self, job: &Job) -> Result<(Vec<Vec<f32>>, u32), LlmError> {
        let encodings = self
            .tokenizer
            .encode_batch(job.inputs.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| LlmError::Local(format!("tokenizer: {e}")))?;
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

    /// One padded batch → mean-pooled, L2-normalised vectors.
    fn forward(&self, batch: Vec<&[u32]>) -> Result<Vec<Vec<f32>>, LlmError> {
        let device = Device::Cpu;
        let rows = batch.len();
        let width = batch.iter().map(|ids| ids.len()).max().unwrap_or(0).max(1);
        let mut input = Vec::with_capacity(rows * width);
        let mut mask = Vec::with_capacity(rows * width);
        for ids in &batch {
            input.extend_from_slice(ids);
            input.extend(std::iter::repeat_n(self.pad_id, width - ids.len()));
            mask.extend(std::iter::repeat_n(1u32, ids.len()));
            mask.extend(std::iter::repeat_n(0u32, width - ids.len()));
        }
        let err = local_err("embedding forward pass");
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let input = Tensor::from_vec(input, (rows, width), &device)?;
            let mask = Tensor::from_vec(mask, (rows, width), &device)?;
            let token_types = input.zeros_like()?;
            let hidden = self.model.forward(&input, &token_types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(err)
    }
}
