//! Token-aware chunking: each [`Section`] of a parsed document is split by
//! text-splitter into chunks of at most `max_tokens` tokens of the
//! embedding model's own tokenizer, with `overlap_tokens` shared between
//! neighbours. Chunks never cross sections, so a chunk keeps one heading
//! path and page. Each chunk carries a content hash (heading path and
//! text) so a re-uploaded document keeps the hashes of unchanged chunks
//! and only changed ones need embedding again.
//!
//! Tokens are counted without special tokens (`[CLS]`, `[SEP]`) and with
//! the tokenizer's padding and truncation switched off: a `tokenizer.json`
//! made for inference (MiniLM's pads and truncates to 128) would otherwise
//! report every text as the same length.
//!
//! Why a local [`ChunkSizer`] instead of text-splitter's `tokenizers`
//! feature: that feature turns on `tokenizers/onig`, which would build the
//! Oniguruma C library and switch the whole workspace's tokenizers (shared
//! with agentry-llm) from fancy-regex to Oniguruma. The sizer is a few lines.
//!
//! Must not: parse documents, embed or store chunks.

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use text_splitter::{ChunkSizer, TextSplitter};
use tokenizers::Tokenizer;

use crate::parse::{Parsed, Section};

/// Chunk size limits, in tokens of the chunker's tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct ChunkConfig {
    #[schema(minimum = 32, maximum = 8192)]
    pub max_tokens: usize,
    /// At most half of `max_tokens`.
    #[schema(maximum = 4096)]
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        Self { max_tokens: 256, overlap_tokens: 32 }
    }
}

impl ChunkConfig {
    /// The smallest `max_tokens` accepted. Tinier chunks carry too little
    /// to retrieve by, and multiply the chunks (and the title and heading
    /// path each repeats) of every document.
    pub const MIN_TOKENS: usize = 32;
    /// The largest `max_tokens` accepted; no embedding model in use reads more.
    pub const MAX_TOKENS_LIMIT: usize = 8192;

    /// Refuse sizes that cannot produce useful chunks, or that would make
    /// a document into far more chunks than its length needs (an overlap
    /// near `max_tokens` advances each chunk by a token or two).
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_tokens < Self::MIN_TOKENS {
            return Err("chunk max_tokens must be at least 32");
        }
        if self.max_tokens > Self::MAX_TOKENS_LIMIT {
            return Err("chunk max_tokens must be at most 8192");
        }
        if self.overlap_tokens > self.max_tokens / 2 {
            return Err("chunk overlap_tokens must be at most half of max_tokens");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk configuration: {0}")]
    Config(&'static str),
    #[error("cannot load the tokenizer from {path}: {message}")]
    Load { path: String, message: String },
    #[error("the tokenizer cannot be used to count tokens: {0}")]
    Tokenizer(String),
    /// The document would make more chunks than the limit (`knowledge.parse.max_chunks`).
    #[error("the document is too large to process: it would make more than {limit} chunks")]
    TooManyChunks { limit: usize },
}

/// A piece of a document ready to embed and index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chunk {
    /// Position in the document, from 0, in reading order.
    pub ordinal: u32,
    pub text: String,
    pub heading_path: Vec<String>,
    pub page: Option<u32>,
    /// Tokens in `text` (no special tokens).
    pub token_count: u32,
    /// Hex SHA-256 of the heading path joined with ` > `, a newline and the text.
    pub content_hash: String,
}

/// Splits parsed documents into chunks. Immutable once built; share it
/// (it is `Send + Sync`) rather than building one per document.
pub struct Chunker {
    counter: TokenCounter,
    splitter: TextSplitter<TokenCounter>,
    config: ChunkConfig,
}

impl std::fmt::Debug for Chunker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunker").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Chunker {
    /// A chunker counting with `tokenizer` (its padding and truncation are
    /// switched off on this copy).
    pub fn new(mut tokenizer: Tokenizer, config: ChunkConfig) -> Result<Self, ChunkError> {
        config.validate().map_err(ChunkError::Config)?;
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| ChunkError::Tokenizer(e.to_string()))?;
        // A tokenizer that cannot encode plain text (a word-level model with
        // no unknown token, say) would make every count a fallback estimate.
        tokenizer.encode_fast("probe text", false).map_err(|e| ChunkError::Tokenizer(e.to_string()))?;
        let counter = TokenCounter(Arc::new(tokenizer));
        let splitter_config = text_splitter::ChunkConfig::new(config.max_tokens)
            .with_sizer(counter.clone())
            .with_overlap(config.overlap_tokens)
            .map_err(|_| ChunkError::Config("chunk overlap_tokens must be smaller than max_tokens"))?;
        Ok(Self { counter, splitter: TextSplitter::new(splitter_config), config })
    }

    /// A chunker from a Hugging Face `tokenizer.json` file.
    pub fn from_file(path: impl AsRef<Path>, config: ChunkConfig) -> Result<Self, ChunkError> {
        let path = path.as_ref();
        let tokenizer = Tokenizer::from_file(path).map_err(|e| ChunkError::Load { path: path.display().to_string(), message: e.to_string() })?;
        Self::new(tokenizer, config)
    }

    pub fn config(&self) -> ChunkConfig {
        self.config
    }

    /// Tokens in `text` as chunks count them.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.counter.size(text)
    }

    /// Split every section into chunks, numbering them in reading order;
    /// stops with [`ChunkError::TooManyChunks`] at the first chunk past
    /// `max_chunks`.
    pub fn chunk(&self, parsed: &Parsed, max_chunks: usize) -> Result<Vec<Chunk>, ChunkError> {
        let mut chunks = Vec::new();
        for section in &parsed.sections {
            for text in self.splitter.chunks(&section.text) {
                if chunks.len() >= max_chunks {
                    return Err(ChunkError::TooManyChunks { limit: max_chunks });
                }
                let ordinal = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
                chunks.push(self.make_chunk(ordinal, section, text));
            }
        }
        Ok(chunks)
    }

    fn make_chunk(&self, ordinal: u32, section: &Section, text: &str) -> Chunk {
        Chunk {
            ordinal,
            text: text.to_string(),
            heading_path: section.heading_path.clone(),
            page: section.page,
            token_count: u32::try_from(self.count_tokens(text)).unwrap_or(u32::MAX),
            content_hash: content_hash(&section.heading_path, text),
        }
    }
}

/// Hex SHA-256 of `heading > path` + `\n` + `text`.
pub fn content_hash(heading_path: &[String], text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(heading_path.join(" > ").as_bytes());
    hasher.update(b"\n");
    hasher.update(text.as_bytes());
    hex::encode(hasher.finalize())
}

/// Counts tokens for text-splitter. Should encoding fail (it does not for
/// the tokenizers [`Chunker::new`] accepts), the byte length stands in: it
/// is at least the token count of byte-level and WordPiece tokenizers, so a
/// chunk still stays under the limit.
#[derive(Clone)]
struct TokenCounter(Arc<Tokenizer>);

impl ChunkSizer for TokenCounter {
    fn size(&self, chunk: &str) -> usize {
        match self.0.encode_fast(chunk, false) {
            Ok(encoding) => encoding.len(),
            Err(e) => {
                tracing::debug!(error = %e, "tokenizer failed; counting bytes instead");
                chunk.len()
            }
        }
    }
}

#[cfg(test)]
#[path = "chunk_tests.rs"]
mod tests;
