//! Token counts for calls whose provider reports none (an OpenAI-compatible
//! server that sends no usage, or a stream without a usage chunk): OpenAI's
//! BPE for the model from tiktoken-rs (`o200k_base` for gpt-4o and newer,
//! `cl100k_base` for gpt-4 and gpt-3.5), and `o200k_base` for models it does
//! not know — closer to today's tokenizers than a bytes-per-token ratio.
//! Chat prompts add OpenAI's framing: 3 tokens per message plus its role,
//! and 3 that prime the answer.
//!
//! Must not: run before a call's first token (encoding is CPU work; the
//! gateway counts only once an answer is complete).

use agentry_types::ChatMessage;
use tiktoken_rs::CoreBPE;

/// Build both vocabularies (a few hundred milliseconds) so the first
/// uncounted answer does not pay for it on the async runtime; call from a blocking thread at start.
pub fn warm() {
    let _ = tiktoken_rs::o200k_base_singleton();
    let _ = tiktoken_rs::cl100k_base_singleton();
}

fn bpe(model: &str) -> &'static CoreBPE {
    tiktoken_rs::bpe_for_model(model).unwrap_or_else(|_| tiktoken_rs::o200k_base_singleton())
}

/// Tokens of `text` for `model`.
pub fn count(model: &str, text: &str) -> u32 {
    bpe(model).encode_ordinary(text).len() as u32
}

/// Tokens of a chat prompt for `model`, framing included.
pub fn count_prompt(model: &str, messages: &[ChatMessage]) -> u32 {
    let bpe = bpe(model);
    // Every role name (system, user, assistant, tool, developer) is one token.
    let per_message = |m: &ChatMessage| 3 + 1 + bpe.encode_ordinary(&m.content_text()).len();
    (messages.iter().map(per_message).sum::<usize>() + 3) as u32
}

#[cfg(test)]
mod tests {
    use agentry_types::Role;

    use super::*;

    #[test]
    fn counts_with_the_model_tokenizer() {
        assert_eq!(count("gpt-4o", "Hello from upstream"), 3);
        assert_eq!(count("gpt-4o", "tokenization"), 2);
        // cl100k and o200k differ on some words; unknown models use o200k.
        assert_eq!(count("some-local-model", "tokenization"), count("gpt-4o", "tokenization"));
        assert_eq!(count("gpt-4o", ""), 0);
    }

    #[test]
    fn prompt_framing_matches_openai() {
        // OpenAI's cookbook: 3 per message + role + content, + 3 for the reply.
        let messages = [ChatMessage::text(Role::System, "Be brief."), ChatMessage::text(Role::User, "Hello from upstream")];
        let expected = (3 + 1 + count("gpt-4o", "Be brief.")) + (3 + 1 + 3) + 3;
        assert_eq!(count_prompt("gpt-4o", &messages), expected);
    }
}
