"""k-nearest neighbours with faiss-cpu (the optional extra `llp_jax[faiss]`), on the host.

    knn_faiss(z, k, "cosine")                           # exact: a flat index, the same result as `knn`
    knn_faiss(z, k, "cosine", hnsw=HnswSettings(m=32, ef_search=64))   # approximate, recall@k measured

Same definitions as llp_jax.graph.knn: cosine by inner products of unit rows, euclidean by squared L2 on
mean-centred rows; faiss scores max(16, k + 1) candidates per query and `rerank` recomputes their
distances from the vectors, drops the query and breaks ties by index, so the flat index returns what
the JAX search returns, distances included. faiss is imported only when one of these runs.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from llp_jax.graph.knn import (
    KnnResult,
    candidates_per_query,
    check_metric,
    check_points,
    rerank,
    unit_rows,
)

logger = logging.getLogger("llp_jax")

# Queries per faiss search call: a progress step. faiss tiles the product itself; 16,384 queries of
# 16 candidates are 2 MiB of results.
QUERY_BLOCK = 16384
# Queries whose HNSW neighbours are checked against the flat index.
RECALL_SAMPLE = 1000


class HnswSettings(NamedTuple):
    """m: links per node of the HNSW graph (faiss's M); ef_search: the candidate list of a search
    (larger: higher recall, slower; raised to the max(16, k + 1) candidates if below). Index
    construction keeps faiss's default efConstruction = 40. Defaults: llp_jax.graph.GraphSettings."""

    m: int
    ef_search: int


def import_faiss():
    """The faiss module, or ImportError naming the extra that installs it."""
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "graph.backend=faiss and faiss_hnsw need faiss-cpu, which is not installed: "
            "pip install 'llp_jax[faiss]' (or pip install faiss-cpu), or use graph.backend=jax."
        ) from error
    return faiss


def _index(faiss, vectors: np.ndarray, metric: str, hnsw: HnswSettings | None):
    """A faiss index over vectors float32[n, d]: flat (exact) or HNSW, inner product for cosine."""
    d = vectors.shape[1]
    faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if hnsw is None:
        index = faiss.IndexFlat(d, faiss_metric)
    else:
        index = faiss.IndexHNSWFlat(d, hnsw.m, faiss_metric)
        index.hnsw.efSearch = hnsw.ef_search
    index.add(vectors)
    return index


_rerank = jax.jit(rerank, static_argnames=("metric", "k"))


def _search(index, vectors, exact, rows: np.ndarray, n_candidates: int, metric: str, k: int, progress: bool):
    """KnnResult of the queries vectors[rows] (int[q]) against the index, re-ranked exactly."""
    indices = np.empty((len(rows), k), np.int32)
    distances = np.empty((len(rows), k), np.float32)
    starts = range(0, len(rows), QUERY_BLOCK)
    for start in tqdm(starts, desc=f"kNN faiss ({metric}, k={k})", unit="block", disable=not progress):
        block = rows[start : start + QUERY_BLOCK]
        _, candidates = index.search(vectors[block], n_candidates)
        block_ids = jnp.asarray(block, jnp.int32)
        top, top_distances = _rerank(block_ids, candidates.astype(np.int32), exact, metric, k)
        indices[start : start + len(block)] = np.asarray(top)
        distances[start : start + len(block)] = np.asarray(top_distances)
    if np.isinf(distances).any():
        raise RuntimeError(
            f"the faiss index returned fewer than k={k} neighbours for some points; raise "
            "graph.hnsw_ef_search (or use graph.backend=faiss, the exact index)."
        )
    return KnnResult(indices, distances)


def knn_faiss(
    z, k: int, metric: str = "cosine", *, hnsw: HnswSettings | None = None, progress: bool = True
) -> KnnResult:
    """k nearest neighbours of every row of z among the other rows, by faiss on the CPU.

    z: float[n, d]; k: 1 <= k < n; metric: "cosine" or "euclidean"; hnsw: None for the exact flat
    index, else the HNSW index's settings. progress shows a tqdm bar over the query blocks.
    Returns KnnResult(indices int32[n, k], distances float32[n, k], recall): recall is None for the
    flat index; for HNSW, recall@k against the flat index on RECALL_SAMPLE random queries (also logged).
    """
    faiss = import_faiss()
    check_metric(metric)
    z = check_points(z, k)
    n = z.shape[0]
    exact = unit_rows(z) if metric == "cosine" else z
    vectors = np.asarray(exact if metric == "cosine" else z - jnp.mean(z, axis=0), np.float32)
    n_candidates = candidates_per_query(n, k)
    if hnsw is not None:
        hnsw = hnsw._replace(ef_search=max(hnsw.ef_search, n_candidates))
    index = _index(faiss, vectors, metric, hnsw)
    result = _search(index, vectors, exact, np.arange(n), n_candidates, metric, k, progress)
    if hnsw is None:
        return result
    sample = np.random.default_rng(0).choice(n, size=min(RECALL_SAMPLE, n), replace=False)
    flat = _index(faiss, vectors, metric, None)
    truth = _search(flat, vectors, exact, sample, n_candidates, metric, k, progress=False)
    recall = recall_at_k(result.indices[sample], truth.indices)
    logger.info("HNSW kNN recall@%d on %d sampled points: %.4f", k, len(sample), recall)
    return result._replace(recall=recall)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of truth's neighbours that found holds: found, truth int[q, k] -> float in [0, 1]."""
    hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found, truth, strict=True))
    return hits / truth.size
