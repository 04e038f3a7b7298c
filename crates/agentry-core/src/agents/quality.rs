//! Which sources an answer cites and how well they support it. Citations
//! are the `[n]` markers the model wrote; when it wrote none (small local
//! models rarely do), each sentence is attributed to the source that
//! shares most of its words. The quality score is the share of the
//! answer's sentences whose words the cited sources mostly contain (the
//! same analysed, stemmed words the keyword index uses).
//!
//! Lexical support is cheap and deterministic; it misses paraphrase, which
//! is what an optional judge model is for.
//!
//! Must not: call models or read storage.

use std::collections::{BTreeSet, HashSet};

use agentry_search::index::analyzer::{Highlighter, words};

use super::events::Citation;
use crate::knowledge::SearchHit;

/// Sentences with fewer analysed words carry no claim worth checking.
const MIN_SENTENCE_WORDS: usize = 3;
/// Share of a sentence's words a source must contain to support it.
const SUPPORT_THRESHOLD: f64 = 0.5;

/// Citations of an answer and its support score.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub citations: Vec<Citation>,
    /// Supported sentences / checked sentences; `None` when nothing was checkable.
    pub score: Option<f64>,
}

/// Sentences: split after `.`, `!`, `?` followed by white space, and at line breaks.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let end_mark = matches!(b, b'.' | b'!' | b'?') && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
        if end_mark || b == b'\n' {
            out.push(&text[start..=i]);
            start = i + 1;
        }
    }
    out.push(&text[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// `[n]` markers naming one of `count` sources (1-based), as 0-based indexes.
fn markers(text: &str, count: usize) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices('[') {
        let rest = &text[i + 1..];
        let Some(close) = rest.find(']') else { continue };
        for part in rest[..close].split(',') {
            if let Ok(n) = part.trim().parse::<usize>()
                && (1..=count).contains(&n)
            {
                found.insert(n - 1);
            }
        }
    }
    found
}

/// Cite and score `answer` against the `sources` it was written from.
pub fn assess(answer: &str, sources: &[SearchHit]) -> Assessment {
    let source_words: Vec<HashSet<String>> = sources.iter().map(|s| words(&format!("{} {}", s.title, s.text)).into_iter().collect()).collect();
    let explicit = markers(answer, sources.len());
    let mut attributed = BTreeSet::new();
    let (mut checked, mut supported) = (0usize, 0usize);
    for sentence in sentences(answer) {
        let sentence_words: HashSet<String> = words(sentence).into_iter().collect();
        if sentence_words.len() < MIN_SENTENCE_WORDS {
            continue;
        }
        checked += 1;
        let share = |i: usize| sentence_words.iter().filter(|w| source_words[i].contains(*w)).count() as f64 / sentence_words.len() as f64;
        let candidates: Vec<usize> = if explicit.is_empty() { (0..sources.len()).collect() } else { explicit.iter().copied().collect() };
        let best = candidates.into_iter().map(|i| (i, share(i))).max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((i, s)) = best
            && s >= SUPPORT_THRESHOLD
        {
            supported += 1;
            attributed.insert(i);
        }
    }
    let cited = if explicit.is_empty() { attributed } else { explicit };
    let highlighter = Highlighter::new(answer);
    let citations = cited
        .into_iter()
        .map(|i| {
            let hit = &sources[i];
            let ranges = highlighter.ranges(&hit.text);
            let span = match (ranges.iter().map(|r| r.0).min(), ranges.iter().map(|r| r.1).max()) {
                (Some(start), Some(end)) => [start, end],
                _ => [0, hit.text.len()],
            };
            Citation {
                index: i + 1,
                chunk_id: hit.chunk_id,
                document_id: hit.document_id.clone(),
                title: hit.title.clone(),
                version: hit.version,
                heading_path: hit.heading_path.clone(),
                page: hit.page,
                span,
                text: hit.text.clone(),
            }
        })
        .collect();
    Assessment { citations, score: (checked > 0).then(|| supported as f64 / checked as f64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: i64, text: &str) -> SearchHit {
        SearchHit {
            chunk_id: id,
            document_id: format!("doc{id}"),
            collection_id: "c".into(),
            version: 1,
            title: format!("Doc {id}"),
            heading_path: vec![],
            page: None,
            text: text.into(),
            score: 1.0,
            keyword: None,
            vector: None,
            highlights: vec![],
        }
    }

    #[test]
    fn explicit_markers_are_the_citations_and_support_is_checked_against_them() {
        let sources = [hit(1, "The refund window is thirty days from delivery."), hit(2, "Shipping takes five business days.")];
        let a = assess("Refunds are accepted within thirty days of delivery [1]. Shipping takes five business days [2].", &sources);
        assert_eq!(a.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(a.score, Some(1.0));
        let span = a.citations[0].span;
        assert!(sources[0].text[span[0]..span[1]].contains("thirty days"));
    }

    #[test]
    fn without_markers_sentences_are_attributed_and_unsupported_ones_lower_the_score() {
        let sources = [hit(1, "The refund window is thirty days from delivery."), hit(2, "Shipping takes five business days.")];
        let a = assess("The refund window is thirty days. Our office dogs love purple bananas tremendously.", &sources);
        assert_eq!(a.citations.iter().map(|c| c.chunk_id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(a.score, Some(0.5));
        assert_eq!(assess("Yes.", &sources).score, None);
    }
}
