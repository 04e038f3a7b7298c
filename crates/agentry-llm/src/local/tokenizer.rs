//! The chat model's tokenizer, built from GGUF metadata (or a
//! `tokenizer.json` beside the GGUF), and incremental detokenisation.
//!
//! Why not candle's GGUF tokenizer: for `tokenizer.ggml.pre = smollm` (and
//! plain `gpt2`) it falls back to a GPT-2 ByteLevel pre-tokenizer with
//! `add_prefix_space = true`, which puts a space before the first word and
//! so diverges from llama.cpp. Here the pre-tokenizer follows the `pre` name:
//! SmolLM's is Digits(individual) + ByteLevel(no prefix space, GPT-2 regex),
//! which matches llama.cpp token for token.
//!
//! Control tokens (`token_type == 3`, e.g. `<|im_start|>`) are special added
//! tokens: they match as one token in a rendered prompt and are skipped
//! when decoding output.
//!
//! Must not: render templates or run the model.

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::LlmError;

const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Tokens that end a turn in common chat formats, besides the GGUF's EOS.
const END_OF_TURN: [&str; 5] = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"];

/// A tokenizer plus what generation needs to know about special tokens.
pub(crate) struct ChatTokenizer {
    tokenizer: Tokenizer,
    /// Text of the BOS token, for the chat template.
    pub bos_token: Option<String>,
    pub bos_id: Option<u32>,
    /// Whether the model expects a BOS token before the prompt.
    pub add_bos: bool,
    /// Text of the EOS token, for the chat template.
    pub eos_token: Option<String>,
    /// Token ids that end generation with `finish_reason = stop`.
    pub stop_ids: Vec<u32>,
}

fn md<'a>(ct: &'a Content, key: &str) -> Option<&'a Value> {
    ct.metadata.get(key)
}

fn md_u32(ct: &Content, key: &str) -> Option<u32> {
    md(ct, key).and_then(|v| match v {
        Value::U8(x) => Some(u32::from(*x)),
        Value::U16(x) => Some(u32::from(*x)),
        Value::U32(x) => Some(*x),
        Value::U64(x) => u32::try_from(*x).ok(),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::I64(x) => u32::try_from(*x).ok(),
        _ => None,
    })
}

fn md_strings(ct: &Content, key: &str) -> Result<Vec<String>, LlmError> {
    let values = md(ct, key).and_then(|v| v.to_vec().ok()).ok_or_else(|| LlmError::Local(format!("GGUF metadata has no {key} array")))?;
    values.iter().map(|v| v.to_string().cloned().map_err(|e| LlmError::Local(format!("{key}: {e}")))).collect()
}

fn tok_err(e: impl std::fmt::Display) -> LlmError {
    LlmError::Local(format!("tokenizer: {e}"))
}

impl ChatTokenizer {
    /// Use `tokenizer.json` beside the GGUF when there is one, else build a
    /// BPE tokenizer from the GGUF's own vocabulary and merges.
    pub fn load(ct: &Content, gguf_path: &Path) -> Result<Self, LlmError> {
        let tokens = md_strings(ct, "tokenizer.ggml.tokens")?;
        let sibling = gguf_path.with_file_name("tokenizer.json");
        let tokenizer = if sibling.is_file() {
            tracing::debug!(path = %sibling.display(), "using tokenizer.json next to the GGUF");
            Tokenizer::from_file(&sibling).map_err(tok_err)?
        } else {
            from_gguf(ct, &tokens)?
        };
        let token_text = |id: Option<u32>| id.and_then(|id| tokens.get(id as usize)).cloned();
        let bos_id = md_u32(ct, "tokenizer.ggml.bos_token_id");
        let eos_id = md_u32(ct, "tokenizer.ggml.eos_token_id");
        let mut stop_ids: Vec<u32> = eos_id.into_iter().chain(md_u32(ct, "tokenizer.ggml.eot_token_id")).collect();
        for name in END_OF_TURN {
            if let Some(id) = tokenizer.token_to_id(name) {
                stop_ids.push(id);
            }
        }
        stop_ids.sort_unstable();
        stop_ids.dedup();
        Ok(Self {
            tokenizer,
            bos_token: token_text(bos_id),
            bos_id,
            add_bos: md(ct, "tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok()).unwrap_or(false),
            eos_token: token_text(eos_id),
            stop_ids,
        })
    }

    /// Token ids of a rendered prompt (special tokens in the text become single tokens).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, LlmError> {
        let encoding = self.tokenizer.encode_fast(text, false).map_err(tok_err)?;
        let mut ids = encoding.get_ids().to_vec();
        if let Some(bos) = self.bos_id.filter(|_| self.add_bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Text of generated ids, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String, LlmError> {
        self.tokenizer.decode(ids, true).map_err(tok_err)
    }
}

/// BPE from `tokenizer.ggml.tokens` / `merges`, pre-tokenizer chosen by `tokenizer.ggml.pre`.
fn from_gguf(ct: &Content, tokens: &[String]) -> Result<Tokenizer, LlmError> {
    let model = md(ct, "tokenizer.ggml.model").and_then(|v| v.to_string().ok()).map(String::as_str).unwrap_or("");
    if model != "gpt2" {
        return Err(LlmError::Local(format!(
            "GGUF tokenizer model '{model}' is not supported (only byte-level BPE, 'gpt2'); put the model's tokenizer.json next to the GGUF file"
        )));
    }
    let merges = md_strings(ct, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| LlmError::Local(format!("invalid GGUF merge entry '{m}'"))))
        .collect::<Result<Vec<_>, _>>()?;
    let vocab: Vocab = tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(tok_err)?;
    let mut tokenizer = Tokenizer::new(bpe);

    let pre = md(ct, "tokenizer.ggml.pre").and_then(|v| v.to_string().ok()).map(String::as_str).unwrap_or("gpt2");
    let byte_level = ByteLevel::new(false, true, true);
    let split = |regex: &str| -> Result<PreTokenizerWrapper, LlmError> {
        let split = Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false).map_err(tok_err)?;
        Ok(Sequence::new(vec![split.into(), ByteLevel::new(false, true, false).into()]).into())
    };
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        "llama3" | "llama-bpe" | "smaug-bpe" => split(LLAMA3_REGEX)?,
        "qwen2" => split(QWEN2_REGEX)?,
        "gpt2" | "default" => byte_level.into(),
        other => {
            tracing::warn!(pre = other, "unknown GGUF pre-tokenizer, using GPT-2 byte-level rules");
            byte_level.into()
        }
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    let types: Vec<u32> = md(ct, "tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|v| v.iter().map(|t| t.to_i32().map(|x| x as u32).or_else(|_| t.to_u32()).unwrap_or(1)).collect())
        .unwrap_or_default();
    let mut control = Vec::new();
    let mut user_defined = Vec::new();
    for (id, kind) in types.iter().enumerate() {
        let Some(text) = tokens.get(id) else { continue };
        match kind {
            3 => control.push(AddedToken::from(text.clone(), true)),
            4 => user_defined.push(AddedToken::from(text.clone(), false)),
            _ => {}
        }
    }
    tokenizer.add_special_tokens(control).map_err(tok_err)?;
    tokenizer.add_tokens(user_defined).map_err(tok_err)?;
    Ok(tokenizer)
}

/// Turns generated token ids into text pieces without ever splitting a
/// multi-byte UTF-8 character: a piece is released only once the text
/// decodes cleanly (no trailing U+FFFD from an incomplete byte sequence).
pub(crate) struct IncrementalDecoder {
    ids: Vec<u32>,
    /// Start of the window re-decoded each step (keeps decoding O(window)).
    prefix_start: usize,
    /// End of the part of the window whose text was already released.
    prefix_end: usize,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self { ids: Vec::new(), prefix_start: 0, prefix_end: 0 }
    }

    /// Add one token; returns the newly complete text, if any.
    pub fn push(&mut self, tokenizer: &ChatTokenizer, id: u32) -> Result<Option<String>, LlmError> {
        self.ids.push(id);
        let released = tokenizer.decode(&self.ids[self.prefix_start..self.prefix_end])?;
        let text = tokenizer.decode(&self.ids[self.prefix_start..])?;
        if text.len() > released.len() && !text.ends_with('\u{FFFD}') && text.is_char_boundary(released.len()) {
            let piece = text[released.len()..].to_string();
            self.prefix_start = self.prefix_end;
            self.prefix_end = self.ids.len();
            Ok(Some(piece))
        } else {
            Ok(None)
        }
    }

    /// Whatever is still held back at the end of generation (lossy if the
    /// model stopped mid-character).
    pub fn flush(&mut self, tokenizer: &ChatTokenizer) -> Result<Option<String>, LlmError> {
        let released = tokenizer.decode(&self.ids[self.prefix_start..self.prefix_end])?;
        let text = tokenizer.decode(&self.ids[self.prefix_start..])?;
        self.prefix_start = self.ids.len();
        self.prefix_end = self.ids.len();
        Ok((text.len() > released.len() && text.is_char_boundary(released.len())).then(|| text[released.len()..].to_string()))
    }
}
