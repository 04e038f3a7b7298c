//! Retrieval quality on BEIR-layout datasets: `corpus.jsonl` (`_id`, `title`,
//! `text`), `queries.jsonl` (`_id`, `text`) and `qrels/<split>.tsv`
//! (`query-id`, `corpus-id`, `score`, with a header line). Metrics: nDCG@k
//! with linear graded gains (`rel`, log2 discount, ideal from the qrels; as
//! trec_eval, pytrec_eval and BEIR compute it),
//! Recall@k and MRR@k, averaged over the queries that have judgements.
//!
//! Hand-written: the metrics are a few lines each and their definitions are
//! fixed by the BEIR/TREC conventions; loading is JSON lines and TSV.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} line {line}: {message}")]
    Format { path: String, line: usize, message: String },
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Document {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(default)]
    pub title: String,
    pub text: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Query {
    #[serde(rename = "_id")]
    pub id: String,
    pub text: String,
}

/// A loaded dataset; `qrels[query][document]` is the graded relevance.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub corpus: Vec<Document>,
    pub queries: Vec<Query>,
    pub qrels: HashMap<String, HashMap<String, u32>>,
}

impl Dataset {
    /// Load `dir` with the judgements of `split` (usually `test`). Only queries with judgements are kept.
    pub fn load(dir: &Path, split: &str) -> Result<Self, EvalError> {
        let corpus: Vec<Document> = read_jsonl(&dir.join("corpus.jsonl"))?;
        let qrels = read_qrels(&dir.join("qrels").join(format!("{split}.tsv")))?;
        let queries = read_jsonl::<Query>(&dir.join("queries.jsonl"))?.into_iter().filter(|q| qrels.contains_key(&q.id)).collect();
        Ok(Self { corpus, queries, qrels })
    }
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io { path: path.display().to_string(), source })?;
    Ok(std::io::BufReader::new(file))
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, EvalError> {
    let mut out = Vec::new();
    for (i, line) in open(path)?.lines().enumerate() {
        let line = line.map_err(|source| EvalError::Io { path: path.display().to_string(), source })?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|e| EvalError::Format { path: path.display().to_string(), line: i + 1, message: e.to_string() })?;
        out.push(value);
    }
    Ok(out)
}

fn read_qrels(path: &Path) -> Result<HashMap<String, HashMap<String, u32>>, EvalError> {
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for (i, line) in open(path)?.lines().enumerate() {
        let line = line.map_err(|source| EvalError::Io { path: path.display().to_string(), source })?;
        let fields: Vec<&str> = line.split('\t').collect();
        if i == 0 && fields.first() == Some(&"query-id") || line.trim().is_empty() {
            continue;
        }
        let bad = |message: &str| EvalError::Format { path: path.display().to_string(), line: i + 1, message: message.to_owned() };
        let [query, document, score] = fields[..] else { return Err(bad("expected query-id, corpus-id and score separated by tabs")) };
        let score: i64 = score.trim().parse().map_err(|_| bad("score is not an integer"))?;
        if score > 0 {
            qrels.entry(query.to_owned()).or_default().insert(document.to_owned(), score as u32);
        }
    }
    Ok(qrels)
}

/// Mean metrics over a run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Metrics {
    pub ndcg_at_10: f64,
    pub recall_at_100: f64,
    pub mrr_at_10: f64,
    pub queries: usize,
}

/// nDCG@k of one ranking against one query's judgements.
pub fn ndcg_at(k: usize, ranking: &[String], judged: &HashMap<String, u32>) -> f64 {
    let gain = |rel: u32| f64::from(rel);
    let discount = |i: usize| (i as f64 + 2.0).log2();
    let dcg: f64 = ranking.iter().take(k).enumerate().map(|(i, d)| judged.get(d).map_or(0.0, |&r| gain(r) / discount(i))).sum();
    let mut ideal: Vec<u32> = judged.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal.iter().take(k).enumerate().map(|(i, &r)| gain(r) / discount(i)).sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// Share of the judged-relevant documents found in the first `k`.
pub fn recall_at(k: usize, ranking: &[String], judged: &HashMap<String, u32>) -> f64 {
    if judged.is_empty() {
        return 0.0;
    }
    let found = ranking.iter().take(k).filter(|d| judged.contains_key(*d)).count();
    found as f64 / judged.len() as f64
}

/// Reciprocal rank of the first relevant document within the first `k`.
pub fn mrr_at(k: usize, ranking: &[String], judged: &HashMap<String, u32>) -> f64 {
    ranking.iter().take(k).position(|d| judged.contains_key(d)).map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Score a run: `rankings[query id]` is the ranked document ids (best first).
pub fn evaluate(dataset: &Dataset, rankings: &HashMap<String, Vec<String>>) -> Metrics {
    let empty = Vec::new();
    let (mut ndcg, mut recall, mut mrr) = (0.0, 0.0, 0.0);
    for query in &dataset.queries {
        let Some(judged) = dataset.qrels.get(&query.id) else { continue };
        let ranking = rankings.get(&query.id).unwrap_or(&empty);
        ndcg += ndcg_at(10, ranking, judged);
        recall += recall_at(100, ranking, judged);
        mrr += mrr_at(10, ranking, judged);
    }
    let n = dataset.queries.len().max(1) as f64;
    Metrics { ndcg_at_10: ndcg / n, recall_at_100: recall / n, mrr_at_10: mrr / n, queries: dataset.queries.len() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(d, r)| (d.to_string(), *r)).collect()
    }

    fn ranking(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_matches_a_hand_computed_value() {
        let judged = judged(&[("a", 3), ("b", 1)]);
        // Linear gains: DCG = 1/log2(2) + 3/log2(3) = 1 + 3/1.58496 = 2.89279
        // IDCG = 3/1 + 1/1.58496 = 3.63093
        let value = ndcg_at(10, &ranking(&["b", "a"]), &judged);
        assert!((value - 2.892_789 / 3.630_930).abs() < 1e-5, "{value}");
        assert_eq!(ndcg_at(10, &ranking(&["a", "b"]), &judged), 1.0);
        assert_eq!(ndcg_at(10, &ranking(&["x"]), &judged), 0.0);
    }

    #[test]
    fn recall_and_mrr() {
        let judged = judged(&[("a", 1), ("b", 2), ("c", 1), ("d", 1)]);
        assert_eq!(recall_at(100, &ranking(&["x", "a", "b"]), &judged), 0.5);
        assert_eq!(mrr_at(10, &ranking(&["x", "y", "b"]), &judged), 1.0 / 3.0);
        assert_eq!(mrr_at(2, &ranking(&["x", "y", "b"]), &judged), 0.0);
    }

    #[test]
    fn loads_a_beir_folder_and_reports_bad_lines() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(dir.path().join("qrels")).unwrap_or_else(|e| panic!("{e}"));
        write("corpus.jsonl", "{\"_id\":\"1\",\"title\":\"t\",\"text\":\"one\"}\n{\"_id\":\"2\",\"text\":\"two\"}\n");
        write("queries.jsonl", "{\"_id\":\"q1\",\"text\":\"one?\"}\n{\"_id\":\"q2\",\"text\":\"unjudged\"}\n");
        write("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\t1\t2\nq1\t2\t0\n");
        let dataset = Dataset::load(dir.path(), "test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(dataset.corpus.len(), 2);
        assert_eq!(dataset.queries.len(), 1);
        assert_eq!(dataset.qrels["q1"].len(), 1);
        let rankings = HashMap::from([("q1".to_owned(), ranking(&["1"]))]);
        assert_eq!(evaluate(&dataset, &rankings).ndcg_at_10, 1.0);
        write("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\t1\n");
        let error = Dataset::load(dir.path(), "test").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("line 2"), "{error}");
    }
}
