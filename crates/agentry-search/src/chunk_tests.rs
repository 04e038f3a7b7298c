//! Chunking tests count with a word-level tokenizer built in code (one
//! token per word), so they need no model files. The MiniLM tokenizer is
//! also exercised when `TEST_AGENTRY_MODELS_DIR` holds it.

use std::path::PathBuf;

use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::*;
use crate::parse::{Parsed, Section};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// One token per word or punctuation run; padding to 64 and truncation at 8
/// are switched on to prove the chunker switches them off.
fn word_tokenizer() -> Result<Tokenizer, Box<dyn std::error::Error + Send + Sync>> {
    let vocab = [("[PAD]".to_string(), 0u32), ("[UNK]".to_string(), 1), ("alpha".to_string(), 2)];
    let model = WordLevel::builder().vocab(vocab.into_iter().collect()).unk_token("[UNK]".into()).build()?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(Whitespace));
    tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::Fixed(64), ..PaddingParams::default() }));
    tokenizer.with_truncation(Some(TruncationParams { max_length: 8, ..TruncationParams::default() }))?;
    Ok(tokenizer)
}

fn chunker(max_tokens: usize, overlap_tokens: usize) -> Result<Chunker, Box<dyn std::error::Error + Send + Sync>> {
    Ok(Chunker::new(word_tokenizer()?, ChunkConfig { max_tokens, overlap_tokens })?)
}

fn words(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(" ")
}

fn section(path: &[&str], page: Option<u32>, text: String) -> Section {
    Section { heading_path: path.iter().map(|s| s.to_string()).collect(), page, text }
}

/// The word numbers of a chunk made of `{prefix}{n}` words.
fn numbers(text: &str, prefix: &str) -> Vec<usize> {
    text.split_whitespace().filter_map(|w| w.strip_prefix(prefix)?.parse().ok()).collect()
}

#[test]
fn counting_ignores_the_tokenizers_padding_and_truncation() -> TestResult {
    let chunker = chunker(50, 0)?;
    assert_eq!(chunker.count_tokens("alpha beta gamma"), 3);
    assert_eq!(chunker.count_tokens(&words("w", 30)), 30);
    assert_eq!(chunker.count_tokens("hello, world!"), 4);
    Ok(())
}

#[test]
fn chunks_respect_max_tokens_and_overlap() -> TestResult {
    let chunker = chunker(32, 8)?;
    let parsed = Parsed { title: None, sections: vec![section(&["Doc"], None, words("w", 320))] };
    let chunks = chunker.chunk(&parsed, usize::MAX)?;
    assert!(chunks.len() >= 320 / 32, "{} chunks", chunks.len());
    let mut seen = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let n = chunk.text.split_whitespace().count();
        assert!(n <= 32, "chunk {i} has {n} words");
        assert_eq!(chunk.token_count as usize, n);
        assert_eq!(chunk.ordinal as usize, i);
        assert_eq!(chunk.heading_path, ["Doc"]);
        seen.extend(numbers(&chunk.text, "w"));
    }
    for pair in chunks.windows(2) {
        let (previous, next) = (numbers(&pair[0].text, "w"), numbers(&pair[1].text, "w"));
        let (last, first) = (previous.last().copied().unwrap_or(0), next.first().copied().unwrap_or(0));
        let shared = (last + 1).saturating_sub(first);
        assert!((1..=8).contains(&shared), "{shared} words shared between {previous:?} and {next:?}");
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen, (0..320).collect::<Vec<_>>(), "every word lands in some chunk");
    Ok(())
}

#[test]
fn chunks_never_cross_sections_and_keep_their_place() -> TestResult {
    let chunker = chunker(32, 0)?;
    let parsed = Parsed { title: Some("T".into()), sections: vec![section(&["A"], Some(1), words("a", 60)), section(&["A", "B"], Some(2), words("b", 5))] };
    let chunks = chunker.chunk(&parsed, usize::MAX)?;
    for chunk in &chunks {
        let from_a = chunk.text.contains('a');
        let from_b = chunk.text.contains('b');
        assert!(from_a != from_b, "chunk mixes sections: {:?}", chunk.text);
        let (path, page): (&[&str], _) = if from_a { (&["A"], Some(1)) } else { (&["A", "B"], Some(2)) };
        assert_eq!(chunk.heading_path, path);
        assert_eq!(chunk.page, page);
    }
    assert_eq!(chunks.last().map(|c| c.text.clone()), Some(words("b", 5)));
    assert_eq!(chunks.iter().map(|c| c.ordinal).collect::<Vec<_>>(), (0..chunks.len() as u32).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn hashes_are_stable_and_change_only_with_the_chunk() -> TestResult {
    let chunker = chunker(32, 8)?;
    let first = Parsed { title: None, sections: vec![section(&["A"], None, words("a", 80)), section(&["B"], None, words("b", 80))] };
    let mut second = first.clone();
    second.sections[1].text = words("c", 80);
    let (one, again, changed) = (chunker.chunk(&first, usize::MAX)?, chunker.chunk(&first, usize::MAX)?, chunker.chunk(&second, usize::MAX)?);
    assert_eq!(one, again);
    let hashes = |chunks: &[Chunk], path: &str| -> Vec<String> { chunks.iter().filter(|c| c.heading_path == [path]).map(|c| c.content_hash.clone()).collect() };
    assert_eq!(hashes(&one, "A"), hashes(&changed, "A"), "the unchanged section keeps its hashes");
    assert!(hashes(&one, "B").iter().all(|h| !hashes(&changed, "B").contains(h)));
    let chunk = &one[0];
    let expected = hex::encode(Sha256::digest(format!("A\n{}", chunk.text).as_bytes()));
    assert_eq!(chunk.content_hash, expected);
    assert_ne!(content_hash(&["X".into()], &chunk.text), chunk.content_hash, "the heading path is part of the hash");
    Ok(())
}

#[test]
fn invalid_configurations_are_refused() -> TestResult {
    for (max_tokens, overlap_tokens) in [(0, 0), (1, 0), (31, 0), (8193, 0), (64, 33), (64, 64), (64, 65)] {
        let config = ChunkConfig { max_tokens, overlap_tokens };
        assert!(config.validate().is_err(), "{config:?}");
        assert!(matches!(Chunker::new(word_tokenizer()?, config), Err(ChunkError::Config(_))));
    }
    assert!(ChunkConfig::default().validate().is_ok());
    assert_eq!(ChunkConfig::default(), ChunkConfig { max_tokens: 256, overlap_tokens: 32 });
    assert!(ChunkConfig { max_tokens: 32, overlap_tokens: 16 }.validate().is_ok());
    let partial: ChunkConfig = serde_json::from_str(r#"{"max_tokens": 128}"#)?;
    assert_eq!(partial, ChunkConfig { max_tokens: 128, overlap_tokens: 32 });
    Ok(())
}

#[test]
fn a_document_over_the_chunk_limit_stops_at_it() -> TestResult {
    let chunker = chunker(32, 0)?;
    let parsed = Parsed { title: None, sections: vec![section(&[], None, words("w", 32 * 100))] };
    assert_eq!(chunker.chunk(&parsed, 100)?.len(), 100);
    assert!(matches!(chunker.chunk(&parsed, 99), Err(ChunkError::TooManyChunks { limit: 99 })));
    Ok(())
}

#[test]
fn a_tokenizer_file_loads_and_a_missing_one_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tokenizer.json");
    word_tokenizer()?.save(&path, false)?;
    let chunker = Chunker::from_file(&path, ChunkConfig::default())?;
    assert_eq!(chunker.count_tokens("one two three"), 3);
    assert!(matches!(Chunker::from_file(dir.path().join("missing.json"), ChunkConfig::default()), Err(ChunkError::Load { .. })));
    Ok(())
}

/// The real embedding tokenizer, when the test models are present.
fn minilm_tokenizer() -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os("TEST_AGENTRY_MODELS_DIR")?);
    Some(dir.join("all-minilm-l6-v2/tokenizer.json")).filter(|p| p.is_file())
}

#[test]
fn minilm_counts_are_unpadded_and_untruncated_when_available() -> TestResult {
    let Some(path) = minilm_tokenizer() else { return Ok(()) };
    let chunker = Chunker::from_file(&path, ChunkConfig { max_tokens: 64, overlap_tokens: 8 })?;
    assert_eq!(chunker.count_tokens("hello world"), 2);
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(40);
    assert!(chunker.count_tokens(&long) > 128, "truncation must be off");
    let parsed = Parsed { title: None, sections: vec![section(&[], None, long)] };
    let chunks = chunker.chunk(&parsed, usize::MAX)?;
    assert!(chunks.len() > 1);
    assert!(chunks.iter().all(|c| c.token_count <= 64 && c.token_count as usize == chunker.count_tokens(&c.text)));
    Ok(())
}
