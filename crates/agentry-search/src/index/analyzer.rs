//! The English analyzer both keyword engines' highlights and the embedded
//! BM25 index use: words (letters and digits) of 2 to 40 characters,
//! lower-cased, English stop words dropped, Snowball-stemmed.
//!
//! One-character tokens are dropped like standard BM25 tokenizers do
//! (scikit-learn's and bm25s' `\w\w+`): a stray "a", "x" or digit in a query
//! otherwise matches most chunks and only adds noise to the ranking. The
//! filter is hand-written because tantivy ships a long-token filter but no
//! short-token one; it is the few lines of a token-stream wrapper.
//!
//! Must not: know about fields, indexes or queries.

use tantivy::tokenizer::{Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

/// Tokens longer than this (in bytes) are dropped (hashes, base64, runs of digits).
const MAX_TOKEN_BYTES: usize = 40;

/// The analyzer; build once and clone.
pub fn english() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .filter(RemoveSingleCharacter)
        .filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder.filter(stop_words).filter(Stemmer::new(Language::English)).build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
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

    fn terms(text: &str) -> Vec<String> {
        let mut analyzer = english();
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn words_are_lowered_stemmed_and_stop_words_and_single_characters_dropped() {
        assert_eq!(terms("The Running of 2 engines at Mach x"), vec!["run", "engin", "mach"]);
        assert_eq!(terms("a b c"), Vec::<String>::new());
        assert_eq!(terms("é über 42"), vec!["über", "42"]);
    }
}
