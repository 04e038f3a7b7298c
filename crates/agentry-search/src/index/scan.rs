//! Exact ranking of a handful of passages that no index holds (the chunks
//! of one earlier version of a document, read from the database): BM25 over
//! title and text with the index's analyzer and title weight, and cosine
//! similarity against every vector. Scores follow the embedded index's
//! formulas (Lucene's BM25 idf, k1 = 1.2, b = 0.75), but term statistics are
//! those of the passages given, so compare them by rank, as fusion does.
//!
//! Hand-written rather than a throwaway tantivy + HNSW index per query: the
//! passages number tens to hundreds, where one pass over them is cheaper
//! than building either structure.
//!
//! Must not: filter by tenant or ACL (the caller hands over only passages
//! the reader may see).

use std::collections::HashMap;

use super::Ranked;
use super::analyzer;
use super::embedded::TITLE_BOOST;

const K1: f32 = 1.2;
const B: f32 = 0.75;

/// One passage to rank; `key` comes back in the rankings.
#[derive(Debug, Clone, Copy)]
pub struct Passage<'a> {
    pub key: u64,
    pub title: &'a str,
    pub text: &'a str,
    pub vector: &'a [f32],
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 { 0.0 } else { dot / denominator }
}

/// One field's BM25 statistics over the passages.
struct Field {
    /// Term frequencies per passage.
    counts: Vec<HashMap<String, u32>>,
    lengths: Vec<f32>,
    average_length: f32,
    /// Passages holding each term.
    document_frequency: HashMap<String, u32>,
}

impl Field {
    fn new<'a>(texts: impl Iterator<Item = &'a str>) -> Self {
        let mut counts = Vec::new();
        let mut lengths = Vec::new();
        let mut document_frequency: HashMap<String, u32> = HashMap::new();
        for text in texts {
            let words = analyzer::words(text);
            lengths.push(words.len() as f32);
            let mut count: HashMap<String, u32> = HashMap::new();
            for word in words {
                *count.entry(word).or_default() += 1;
            }
            for word in count.keys() {
                *document_frequency.entry(word.clone()).or_default() += 1;
            }
            counts.push(count);
        }
        let average_length = if lengths.is_empty() { 0.0 } else { lengths.iter().sum::<f32>() / lengths.len() as f32 };
        Self { counts, lengths, average_length, document_frequency }
    }

    fn score(&self, passage: usize, word: &str) -> f32 {
        let Some(&frequency) = self.counts[passage].get(word) else { return 0.0 };
        let n = self.counts.len() as f32;
        let df = self.document_frequency.get(word).copied().unwrap_or(0) as f32;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let tf = frequency as f32;
        let norm = if self.average_length > 0.0 { self.lengths[passage] / self.average_length } else { 0.0 };
        idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * norm))
    }
}

/// Passages with at least one query word, by BM25 (text + weighted title), best first.
pub fn keyword_ranking(query: &str, passages: &[Passage<'_>], top_k: usize) -> Vec<Ranked> {
    let words = analyzer::words(query);
    if words.is_empty() {
        return Vec::new();
    }
    let text = Field::new(passages.iter().map(|p| p.text));
    let title = Field::new(passages.iter().map(|p| p.title));
    let mut ranked: Vec<Ranked> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.key, words.iter().map(|w| text.score(i, w) + TITLE_BOOST * title.score(i, w)).sum::<f32>()))
        .filter(|(_, score)| *score > 0.0)
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top_k);
    ranked
}

/// Every passage by cosine similarity to `query`, best first.
pub fn vector_ranking(query: &[f32], passages: &[Passage<'_>], top_k: usize) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = passages.iter().map(|p| (p.key, cosine(query, p.vector))).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(top_k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passages() -> Vec<Passage<'static>> {
        vec![
            Passage { key: 1, title: "Engines", text: "The jet engine burns fuel.", vector: &[1.0, 0.0] },
            Passage { key: 2, title: "Engines", text: "Wings lift the aircraft; engines push it; engines are loud.", vector: &[0.0, 1.0] },
            Passage { key: 3, title: "Engines", text: "Nothing relevant here.", vector: &[0.7, 0.7] },
        ]
    }

    #[test]
    fn bm25_prefers_frequent_and_rare_words_and_skips_passages_without_any() {
        let ranked = keyword_ranking("wing engines", &passages(), 10);
        let keys: Vec<u64> = ranked.iter().map(|r| r.0).collect();
        // Every passage's title says "Engines", so passage 3 still scores through its title, lowest.
        assert_eq!(keys, vec![2, 1, 3], "{ranked:?}");
        assert!(keyword_ranking("fuel", &passages(), 10).iter().map(|r| r.0).eq([1]));
        assert!(keyword_ranking("the of", &passages(), 10).is_empty(), "stop words only");
        assert_eq!(keyword_ranking("engines", &passages(), 1).len(), 1);
    }

    #[test]
    fn vectors_rank_by_cosine() {
        let ranked = vector_ranking(&[1.0, 0.1], &passages(), 2);
        assert_eq!(ranked.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3]);
        assert!((ranked[0].1 - cosine(&[1.0, 0.1], &[1.0, 0.0])).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
