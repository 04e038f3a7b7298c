//! Weighted reciprocal-rank fusion of a keyword and a vector ranking:
//! `score(d) = Σ weight_i / (k + rank_i(d))` over the rankings that contain
//! `d` (ranks from 1). Scores of the two engines are not comparable, ranks
//! are; the raw scores and ranks are kept for the caller to show.
//!
//! Hand-written: it is a dozen lines of arithmetic, not worth a dependency.

use std::collections::HashMap;
use std::hash::Hash;

/// Parameters of the fusion; `k` dampens the weight of top ranks.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Fusion {
    pub k: f32,
    pub keyword_weight: f32,
    pub vector_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Self { k: 60.0, keyword_weight: 1.0, vector_weight: 1.0 }
    }
}

impl Fusion {
    /// Refuse parameters that make the fusion meaningless.
    pub fn validate(&self) -> Result<(), &'static str> {
        if !(self.k.is_finite() && self.k >= 0.0) {
            return Err("fusion k must be a finite number ≥ 0");
        }
        for weight in [self.keyword_weight, self.vector_weight] {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err("fusion weights must be finite numbers ≥ 0");
            }
        }
        if self.keyword_weight == 0.0 && self.vector_weight == 0.0 {
            return Err("at least one fusion weight must be above 0");
        }
        Ok(())
    }
}

/// One side's view of a fused result: 1-based rank and the engine's own score.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Component {
    pub rank: usize,
    pub score: f32,
}

/// A fused result.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused<K> {
    pub key: K,
    pub score: f32,
    pub keyword: Option<Component>,
    pub vector: Option<Component>,
}

/// Fuse two rankings (best first) and keep the best `top_k`. Ties are
/// broken by the better keyword rank, then the better vector rank, so the
/// order is deterministic.
pub fn fuse<K: Eq + Hash + Clone>(keyword: &[(K, f32)], vector: &[(K, f32)], fusion: &Fusion, top_k: usize) -> Vec<Fused<K>> {
    let mut fused: HashMap<K, Fused<K>> = HashMap::with_capacity(keyword.len() + vector.len());
    for (i, (key, score)) in keyword.iter().enumerate() {
        let entry = fused.entry(key.clone()).or_insert_with(|| Fused { key: key.clone(), score: 0.0, keyword: None, vector: None });
        if entry.keyword.is_none() {
            entry.keyword = Some(Component { rank: i + 1, score: *score });
            entry.score += fusion.keyword_weight / (fusion.k + (i + 1) as f32);
        }
    }
    for (i, (key, score)) in vector.iter().enumerate() {
        let entry = fused.entry(key.clone()).or_insert_with(|| Fused { key: key.clone(), score: 0.0, keyword: None, vector: None });
        if entry.vector.is_none() {
            entry.vector = Some(Component { rank: i + 1, score: *score });
            entry.score += fusion.vector_weight / (fusion.k + (i + 1) as f32);
        }
    }
    let mut results: Vec<Fused<K>> = fused.into_values().filter(|f| f.score > 0.0).collect();
    let rank = |c: Option<Component>| c.map_or(usize::MAX, |c| c.rank);
    results.sort_by(|a, b| {
        b.score.total_cmp(&a.score).then_with(|| rank(a.keyword).cmp(&rank(b.keyword))).then_with(|| rank(a.vector).cmp(&rank(b.vector)))
    });
    results.truncate(top_k);
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_in_both_rankings_beats_one_in_either() {
        let keyword = [("a", 9.0), ("b", 5.0)];
        let vector = [("c", 0.9), ("b", 0.8)];
        let fused = fuse(&keyword, &vector, &Fusion::default(), 10);
        assert_eq!(fused[0].key, "b");
        assert_eq!(fused[0].keyword, Some(Component { rank: 2, score: 5.0 }));
        assert_eq!(fused[0].vector, Some(Component { rank: 2, score: 0.8 }));
        let expected = 1.0 / 62.0 + 1.0 / 62.0;
        assert!((fused[0].score - expected).abs() < 1e-7);
        // a and c tie on score; a wins on its keyword rank.
        assert_eq!(fused.iter().map(|f| f.key).collect::<Vec<_>>(), ["b", "a", "c"]);
    }

    #[test]
    fn weights_shift_the_order_and_zero_weight_drops_a_side() {
        let keyword = [("a", 9.0)];
        let vector = [("c", 0.9)];
        let vector_heavy = Fusion { vector_weight: 2.0, ..Fusion::default() };
        assert_eq!(fuse(&keyword, &vector, &vector_heavy, 10)[0].key, "c");
        let keyword_only = Fusion { vector_weight: 0.0, ..Fusion::default() };
        let fused = fuse(&keyword, &vector, &keyword_only, 10);
        assert_eq!(fused.iter().map(|f| f.key).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn top_k_truncates_and_invalid_parameters_are_refused() {
        let keyword = [("a", 3.0), ("b", 2.0), ("c", 1.0)];
        assert_eq!(fuse(&keyword, &[], &Fusion::default(), 2).len(), 2);
        assert!(Fusion { k: -1.0, ..Fusion::default() }.validate().is_err());
        assert!(Fusion { keyword_weight: 0.0, vector_weight: 0.0, ..Fusion::default() }.validate().is_err());
        assert!(Fusion { keyword_weight: f32::NAN, ..Fusion::default() }.validate().is_err());
        assert!(Fusion::default().validate().is_ok());
    }
}
