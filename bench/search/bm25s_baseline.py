"""Keyword baseline for bench-search: rank a BEIR-layout dataset with bm25s
(Lucene-style BM25, English stop words and Snowball stemming) and print
{query id: [document ids, best first]} as JSON.

Usage: python bm25s_baseline.py DATASET_DIR TOP_K
"""
import json
import sys
from pathlib import Path

import bm25s
import Stemmer


def main() -> None:
    folder, top_k = Path(sys.argv[1]), int(sys.argv[2])
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open() if line.strip()]
    queries = [json.loads(line) for line in (folder / "queries.jsonl").open() if line.strip()]
    stemmer = Stemmer.Stemmer("english")
    texts = [(d.get("title", "") + " " + d["text"]).strip() for d in corpus]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    query_tokens = bm25s.tokenize([q["text"] for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    results, _ = retriever.retrieve(query_tokens, k=min(top_k, len(corpus)), show_progress=False)
    rankings = {q["_id"]: [corpus[i]["_id"] for i in row] for q, row in zip(queries, results)}
    json.dump(rankings, sys.stdout)


if __name__ == "__main__":
    main()
