"""Benchmark the similarity graph: time build_graph on random data, check recall against scikit-learn.

    python scripts/bench_knn.py --n 100000 --d 16 --k 5 --backend jax faiss faiss_hnsw --sklearn

Prints one JSON object per backend (in the order given, on the same data): the device that searched,
sizes, warm-up (compile + first run), the timed kNN search and graph assembly (wall and process CPU
seconds: the CPU seconds are steadier on a shared machine), recall@k and the largest distance error on
a sample of queries against scikit-learn's brute-force NearestNeighbors (float64), for faiss_hnsw also
the recall it reports itself, and with --sklearn the time of scikit-learn's full kNN (last object).
With --floor the jax backend's object also holds the time of its matrix products alone (the same tiles
without the top-k): the floor that a faster selection could approach on this device. --points FILE.npy
searches those points (e.g. saved embeddings) instead of random ones.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np
from sklearn.neighbors import NearestNeighbors

from llp_jax.graph import Backend, GraphSettings, graph_from_knn, search
from llp_jax.graph.knn import block_shape


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of points")
    parser.add_argument("--d", type=int, default=16, help="number of features")
    parser.add_argument("--k", type=int, default=5, help="neighbours per point")
    parser.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine")
    parser.add_argument(
        "--backend", nargs="+", choices=[b.value for b in Backend], default=["jax"], help="graph.backend"
    )
    parser.add_argument("--hnsw-m", type=int, default=GraphSettings().hnsw_m)
    parser.add_argument("--hnsw-ef-search", type=int, default=GraphSettings().hnsw_ef_search)
    parser.add_argument("--block-size", type=int, default=None, help="queries per block (default: by memory)")
    parser.add_argument("--chunk-size", type=int, default=None, help="corpus rows per chunk (default 32768)")
    parser.add_argument("--recall-queries", type=int, default=1000, help="queries checked against sklearn")
    parser.add_argument("--sklearn", action="store_true", help="also time scikit-learn's full kNN")
    parser.add_argument("--floor", action="store_true", help="jax: also time the matrix products alone")
    parser.add_argument("--points", default=None, help="float[n, d] .npy file to search (--n, --d unused)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def product_floor(n: int, d: int, args: argparse.Namespace) -> dict:
    """The jax search's matrix products alone, on its own tiles ([block, d + 1] x [d + 1, chunk], the bias
    column included, float32, highest precision) for n points of d features: {floor_s, floor_mac_per_s}
    (the best of two passes; a max over each tile keeps the product from being dropped)."""
    block, chunk, _ = block_shape(n, args.block_size, args.chunk_size, None)
    n_chunks = -(-n // chunk)
    rng = np.random.default_rng(args.seed)
    queries = jax.numpy.asarray(rng.normal(size=(n, d + 1)).astype(np.float32))
    corpus = jax.numpy.asarray(rng.normal(size=(n_chunks, chunk, d + 1)).astype(np.float32))

    @jax.jit
    def block_products(start):
        rows = jax.lax.dynamic_slice_in_dim(queries, start, block)

        def tile_max(part):  # one corpus chunk, as the search's scan over the chunks
            return jax.numpy.einsum("qd,cd->qc", rows, part, precision=jax.lax.Precision.HIGHEST).max(1)

        return jax.lax.map(tile_max, corpus)

    starts = [*range(0, n - block, block), n - block]
    jax.block_until_ready(block_products(0))
    best = np.inf
    for _ in range(2):
        start = time.perf_counter()
        jax.block_until_ready([block_products(first) for first in starts])
        best = min(best, time.perf_counter() - start)
    multiply_adds = len(starts) * block * n_chunks * chunk * (d + 1)
    return {"floor_s": float(f"{best:.4g}"), "floor_mac_per_s": float(f"{multiply_adds / best:.4g}")}


def timed_graph(z: np.ndarray, settings: GraphSettings, args: argparse.Namespace):
    """(neighbours, graph, {knn_s, knn_cpu_s, assemble_s}), each part finished on the device."""
    start, cpu = time.perf_counter(), time.process_time()
    neighbours = search(z, settings, block_size=args.block_size, chunk_size=args.chunk_size)
    times = {"knn_s": time.perf_counter() - start, "knn_cpu_s": time.process_time() - cpu}
    start = time.perf_counter()
    graph = jax.block_until_ready(graph_from_knn(z, neighbours, settings))
    times["assemble_s"] = time.perf_counter() - start
    return neighbours, graph, {key: float(f"{value:.4g}") for key, value in times.items()}


def device_of(backend: str) -> str:
    """What searched: the JAX device for the jax backend, faiss-cpu and its threads otherwise."""
    if backend == Backend.jax:
        return jax.devices()[0].device_kind
    import faiss

    return f"cpu (faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads)"


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
    if args.points is None:
        z = np.random.default_rng(args.seed).normal(size=(args.n, args.d)).astype(np.float32)
    else:
        z = np.load(args.points).astype(np.float32)
        args.n, args.d = z.shape
    for backend in args.backend:
        settings = GraphSettings(
            k=args.k,
            metric=args.metric,
            weight_distance=None,
            backend=backend,
            hnsw_m=args.hnsw_m,
            hnsw_ef_search=args.hnsw_ef_search,
        )
        start = time.perf_counter()
        timed_graph(z, settings, args)
        warmup_s = time.perf_counter() - start
        neighbours, graph, times = timed_graph(z, settings, args)
        recall, max_error = recall_against_sklearn(z, neighbours, args)
        report = {
            "backend": backend,
            "device": device_of(backend),
            "n": args.n,
            "d": args.d,
            "k": args.k,
            "metric": args.metric,
            "block_size": args.block_size,
            "chunk_size": args.chunk_size,
            "warmup_s": round(warmup_s, 3),
            **times,
            "graph_s": round(times["knn_s"] + times["assemble_s"], 3),
            "n_edges": graph.n_edges,
            "recall_queries": min(args.recall_queries, args.n),
            "recall": recall,
            "reported_recall": neighbours.recall,
            "max_distance_error": max_error,
        }
        if args.floor and backend == Backend.jax:
            report.update(product_floor(args.n, args.d, args))
            report["floor_fraction"] = float(f"{report['floor_s'] / times['knn_s']:.3g}")
        if backend == Backend.faiss_hnsw:
            report.update(hnsw_m=args.hnsw_m, hnsw_ef_search=args.hnsw_ef_search)
        print(json.dumps(report), flush=True)
    if args.sklearn:
        start = time.perf_counter()
        NearestNeighbors(n_neighbors=args.k, algorithm="brute", metric=args.metric, n_jobs=-1).fit(
            z
        ).kneighbors()
        print(json.dumps({"backend": "sklearn", "sklearn_s": round(time.perf_counter() - start, 3)}))


if __name__ == "__main__":
    main()
