//! The English analyzer of the embedded BM25 index and of search-result
//! highlights on either backend: words (letters and digits) of 2 to 40
//! characters, lower-cased, English stop words dropped, Snowball-stemmed.
//!
//! One-character tokens are dropped like standard BM25 tokenizers do
//! (scikit-learn's and bm25s' `\w\w+`): a stray "a", "x" or digit in a query
//! otherwise matches most chunks and only adds noise to the ranking. The
//! filter is hand-written because tantivy ships a long-token filter but no
//! short-token one; it is the few lines of a token-stream wrapper.
//!
//! Must not: know about fields, indexes or queries.

use std::collections::HashSet;
use std::sync::LazyLock;

use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

/// Tokens longer than this (in bytes) are dropped (hashes, base64, runs of digits).
const MAX_TOKEN_BYTES: usize = 40;

/// The analyzer; build once and clone.
pub fn english() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default()).filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES)).filter(RemoveSingleCharacter).filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder.filter(stop_words).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

/// The analyzer, built once; cloned per use because tokenizing needs `&mut`.
static ANALYZER: LazyLock<TextAnalyzer> = LazyLock::new(english);

/// The analysed words of `text`, in order (repeats kept: a word asked twice weighs twice).
pub fn words(text: &str) -> Vec<String> {
    let mut analyzer = ANALYZER.clone();
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while stream.advance() {
        words.push(stream.token().text.clone());
    }
    words
}

/// Finds a query's words in result texts; the query is analysed once.
pub struct Highlighter {
    wanted: HashSet<String>,
}

impl Highlighter {
    pub fn new(query: &str) -> Self {
        Self { wanted: words(query).into_iter().collect() }
    }

    /// Byte ranges in `text` whose analysed words are among the query's.
    pub fn ranges(&self, text: &str) -> Vec<(usize, usize)> {
        let mut analyzer = ANALYZER.clone();
        let mut stream = analyzer.token_stream(text);
        let mut ranges = Vec::new();
        while stream.advance() {
            let token = stream.token();
            if self.wanted.contains(&token.text) {
                ranges.push((token.offset_from, token.offset_to));
            }
        }
        ranges
    }
}

/// Drops tokens of a single character.
#[derive(Clone, Copy)]
struct RemoveSingleCharacter;

impl TokenFilter for RemoveSingleCharacter {
    type Tokenizer<T: Tokenizer> = RemoveSingleCharacterWrapper<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> RemoveSingleCharacterWrapper<T> {
        RemoveSingleCharacterWrapper(tokenizer)
    }
}

#[derive(Clone)]
struct RemoveSingleCharacterWrapper<T>(T);

impl<T: Tokenizer> Tokenizer for RemoveSingleCharacterWrapper<T> {
    type TokenStream<'a> = RemoveSingleCharacterStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        RemoveSingleCharacterStream(self.0.token_stream(text))
    }
}

struct RemoveSingleCharacterStream<T>(T);

impl<T: TokenStream> TokenStream for RemoveSingleCharacterStream<T> {
    fn advance(&mut self) -> bool {
        while self.0.advance() {
            if self.0.token().text.chars().nth(1).is_some() {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowered_stemmed_and_stop_words_and_single_characters_dropped() {
        assert_eq!(words("The Running of 2 engines at Mach x"), vec!["run", "engin", "mach"]);
        assert_eq!(words("a b c"), Vec::<String>::new());
        assert_eq!(words("é über 42"), vec!["über", "42"]);
    }
}
