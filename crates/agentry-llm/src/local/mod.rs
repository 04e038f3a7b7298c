//! In-process inference with candle: a GGUF chat model ([`LocalChatModel`])
//! and a sentence-transformers embedding model ([`LocalEmbedder`]).
//!
//! Each model's weights are owned by one dedicated OS thread, fed through a
//! channel, so no tensor work ever runs on the async runtime and requests are
//! served one at a time (the chat model's KV cache lives in its weights).
//! Dropping the model closes the channel and ends the thread after the
//! current job.
//!
//! Submodules: `tokenizer` (GGUF → `tokenizers` BPE, incremental decoding),
//! `template` (the GGUF's Jinja chat template), `stop` (stop strings across
//! token boundaries), `chat` (generation), `embed` (embeddings), `bert` (the
//! embedding model's forward pass), `kernels` (its vectorised math),
//! `matmul` (its f32 matrix products on strided views) and `bf16` (its
//! dense layers on CPUs with AVX-512 BF16).
//!
//! Must not: download anything (paths come from [`crate::model_files`] or
//! configuration), know about HTTP, tenants or pricing, or retry (the router
//! does).

mod bert;
mod bf16;
mod chat;
mod embed;
mod kernels;
mod matmul;
mod stop;
mod template;
mod tokenizer;

pub use chat::LocalChatModel;
pub use embed::LocalEmbedder;

use crate::LlmError;

/// How a [`LocalChatModel`] runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalChatOptions {
    /// Threads for the model's rayon work (matmuls outside the quantized
    /// kernels, softmax…); `None` uses the global rayon pool. candle's
    /// quantized-matmul worker pool is process-wide and sized by
    /// `CANDLE_NUM_THREADS` / `RAYON_NUM_THREADS` (default: physical cores).
    pub threads: Option<usize>,
    /// Cap the context window below what the GGUF declares (and below
    /// candle's 4096-position RoPE table). `None` uses the smaller of the two.
    pub context_window: Option<usize>,
}

/// Wrap any displayable failure as a local-model error.
pub(crate) fn local_err(context: &str) -> impl FnOnce(candle_core::Error) -> LlmError + '_ {
    move |e| LlmError::Local(format!("{context}: {e}"))
}

/// A rayon pool of `threads` threads, when asked for one.
pub(crate) fn thread_pool(threads: Option<usize>, name: &'static str) -> Result<Option<rayon::ThreadPool>, LlmError> {
    match threads {
        None => Ok(None),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .thread_name(move |i| format!("{name}-{i}"))
            .build()
            .map(Some)
            .map_err(|e| LlmError::Local(format!("cannot start {n} inference threads: {e}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
