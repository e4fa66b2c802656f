"""Benchmark the similarity graph: time build_graph on random data, check recall against scikit-learn.

    python scripts/bench_knn.py --n 100000 --d 16 --k 5 --sklearn

Prints one JSON object: device, sizes, warm-up (compile + first run), the timed kNN search and graph
assembly, recall@k and the largest distance error on a sample of queries against scikit-learn's
brute-force NearestNeighbors (float64), and with --sklearn the time of scikit-learn's full kNN.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from sklearn.neighbors import NearestNeighbors

from llp_jax.graph import GraphSettings, graph_from_knn, knn


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of points")
    parser.add_argument("--d", type=int, default=16, help="number of features")
    parser.add_argument("--k", type=int, default=5, help="neighbours per point")
    parser.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    parser.add_argument("--block-size", type=int, default=None, help="queries per block (default: by memory)")
    parser.add_argument("--chunk-size", type=int, default=None, help="corpus rows per chunk (default 32768)")
    parser.add_argument("--recall-queries", type=int, default=1000, help="queries checked against sklearn")
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn's full kNN")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def timed_graph(z: np.ndarray, args: argparse.Namespace):
    """(neighbours, graph, knn seconds, assembly seconds), each part finished on the device."""
    start = time.perf_counter()
    neighbours = knn(
        z, args.k, args.metric, block_size=args.block_size, chunk_size=args.chunk_size, progress=False
    )
    knn_s = time.perf_counter() - start
    start = time.perf_counter()
    graph = jax.block_until_ready(
        graph_from_knn(z, neighbours, GraphSettings(metric=args.metric, weight_distance=None))
    )
    return neighbours, graph, knn_s, time.perf_counter() - start


def recall_against_sklearn(z: np.ndarray, neighbours, args: argparse.Namespace) -> tuple[float, float]:
    """(mean recall@k, largest |distance error|) on a random sample of queries."""
    rng = np.random.default_rng(args.seed)
    queries = rng.choice(len(z), size=min(args.recall_queries, len(z)), replace=False)
    model = NearestNeighbors(algorithm="brute", metric=args.metric).fit(z.astype(np.float64))
    distances, indices = model.kneighbors(z[queries].astype(np.float64), n_neighbors=args.k + 1)
    hits, error = 0, 0.0
    for row, query in enumerate(queries):
        keep = indices[row] != query
        expected = indices[row][keep][: args.k]
        hits += len(np.intersect1d(expected, neighbours.indices[query]))
        error = max(error, float(np.abs(distances[row][keep][: args.k] - neighbours.distances[query]).max()))
    return hits / (len(queries) * args.k), error


def main(argv=None) -> None:
    args = parse_args(argv)
    z = np.random.default_rng(args.seed).normal(size=(args.n, args.d)).astype(np.float32)

    start = time.perf_counter()
    timed_graph(z, args)
    warmup_s = time.perf_counter() - start
    neighbours, graph, knn_s, assemble_s = timed_graph(z, args)
    recall, max_error = recall_against_sklearn(z, neighbours, args)

    report = {
        "device": jax.devices()[0].device_kind,
        "n": args.n,
        "d": args.d,
        "k": args.k,
        "metric": args.metric,
        "block_size": args.block_size,
        "chunk_size": args.chunk_size,
        "warmup_s": round(warmup_s, 3),
        "knn_s": round(knn_s, 3),
        "assemble_s": round(assemble_s, 3),
        "graph_s": round(knn_s + assemble_s, 3),
        "n_edges": graph.n_edges,
        "recall_queries": min(args.recall_queries, args.n),
        "recall": recall,
        "max_distance_error": max_error,
    }
    if args.sklearn:
        start = time.perf_counter()
        NearestNeighbors(n_neighbors=args.k, algorithm="brute", metric=args.metric, n_jobs=-1).fit(
            z
        ).kneighbors()
        report["sklearn_s"] = round(time.perf_counter() - start, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
