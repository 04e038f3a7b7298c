"""Vector-index baseline for bench-search: build an hnswlib index over the
same vectors the embedded index searches, with the same graph parameters
(M, ef_construction, ef), one thread, and report its speed and recall@10
against exact inner-product search.

Usage: python hnswlib_baseline.py VECTORS QUERIES DIMENSIONS M EF_CONSTRUCTION EF
VECTORS and QUERIES are raw little-endian float32 rows of DIMENSIONS values
(unit vectors, so cosine = inner product). Prints one JSON object.
"""
import json
import sys
import time

import hnswlib
import numpy as np


def main() -> None:
    vectors_path, queries_path = sys.argv[1], sys.argv[2]
    dimensions, m, ef_construction, ef = (int(a) for a in sys.argv[3:7])
    vectors = np.fromfile(vectors_path, dtype="<f4").reshape(-1, dimensions)
    queries = np.fromfile(queries_path, dtype="<f4").reshape(-1, dimensions)

    index = hnswlib.Index(space="cosine", dim=dimensions)
    index.init_index(max_elements=len(vectors), M=m, ef_construction=ef_construction)
    index.set_num_threads(1)
    started = time.perf_counter()
    index.add_items(vectors, np.arange(len(vectors)))
    build_seconds = time.perf_counter() - started
    index.set_ef(ef)

    found = []
    started = time.perf_counter()
    for query in queries:
        labels, _ = index.knn_query(query, k=10)
        found.append(labels[0])
    qps = len(queries) / (time.perf_counter() - started)

    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    json.dump({"build_seconds": build_seconds, "qps": qps, "recall_at_10": hits / (10 * len(queries))}, sys.stdout)


if __name__ == "__main__":
    main()
