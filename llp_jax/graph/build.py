"""Assembles the similarity graph: kNN edges, symmetrised (host numpy), weighted by a kernel."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from llp_jax.graph.kernels import check_kernel, edge_weights, median_lengthscale
from llp_jax.graph.knn import (
    KnnResult,
    check_metric,
    check_points,
    knn,
    pair_distances,
)


class SimilarityGraph(NamedTuple):
    """Undirected weighted edge list, the input of the BP engine.

    senders:   int32[n_edges]    senders < receivers, each undirected edge once, no self loops,
    receivers: int32[n_edges]    sorted by (sender, receiver)
    weights:   float32[n_edges]  kernel weights
    distances: float32[n_edges]  the distance the kernel was applied to
    """

    senders: jax.Array
    receivers: jax.Array
    weights: jax.Array
    distances: jax.Array

    @property
    def n_edges(self) -> int:
        return self.senders.shape[0]


def symmetrise(indices: np.ndarray, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Union of the directed kNN edges i -> indices[i, j], each undirected edge once (host numpy).

    indices: int[n, k]; distances: float32[n, k]. Self loops are dropped. Each edge keeps the distance
    of its first occurrence in row-major order (both directions carry the same distance).
    Returns senders int32[n_edges], receivers int32[n_edges] (senders < receivers, sorted by
    (sender, receiver)) and distances float32[n_edges].
    """
    indices = np.asarray(indices)
    n, k = indices.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = indices.reshape(-1).astype(np.int64)
    keys = np.minimum(rows, cols) * n + np.maximum(rows, cols)
    keys[rows == cols] = -1
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.empty(sorted_keys.shape, bool)
    first[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=first[1:])
    first &= sorted_keys >= 0
    edges = sorted_keys[first]
    edge_distances = np.asarray(distances, np.float32).reshape(-1)[order[first]]
    return (edges // n).astype(np.int32), (edges % n).astype(np.int32), edge_distances


def _check_options(
    metric: str,
    kernel: str,
    lengthscale: float | str,
    weight_distance: str | None,
    prune_distance: float | None,
) -> str:
    """Validate the graph options (ValueError naming the bad one); returns the resolved weight_distance."""
    weight_distance = metric if weight_distance is None else weight_distance
    check_metric(metric)
    check_metric(weight_distance, "weight_distance")
    check_kernel(kernel, weight_distance, lengthscale)
    if prune_distance is not None and (
        isinstance(prune_distance, bool)
        or not isinstance(prune_distance, int | float)
        or not (math.isfinite(prune_distance) and prune_distance >= 0)
    ):
        raise ValueError(f"prune_distance={prune_distance!r} must be a non-negative finite number or None.")
    return weight_distance


def graph_from_knn(
    z,
    neighbours: KnnResult,
    metric: str = "cosine",
    kernel: str = "matern12",
    lengthscale: float | str = 1.0,
    weight_distance: str | None = None,
    prune_distance: float | None = None,
) -> SimilarityGraph:
    """The weighted edge list of a kNN result (see `build_graph` for the arguments).

    z: float[n, d] the points the neighbours were found in; neighbours: KnnResult(indices int32[n, k],
    distances float32[n, k]) under `metric`.
    """
    weight_distance = _check_options(metric, kernel, lengthscale, weight_distance, prune_distance)
    if z.shape[0] != neighbours.indices.shape[0]:
        raise ValueError(
            f"z has {z.shape[0]} rows but the kNN result has {neighbours.indices.shape[0]}; pass the "
            "points the neighbours were found in."
        )
    senders, receivers, distances = symmetrise(neighbours.indices, neighbours.distances)
    if weight_distance == metric:
        distances = jnp.asarray(distances)
    else:
        distances = pair_distances(z, senders, receivers, weight_distance)
    if lengthscale == "median":
        lengthscale = median_lengthscale(distances)
    if prune_distance is not None:
        keep = np.asarray(distances <= prune_distance)
        senders, receivers, distances = senders[keep], receivers[keep], distances[keep]
    return SimilarityGraph(
        senders=jnp.asarray(senders),
        receivers=jnp.asarray(receivers),
        weights=edge_weights(distances, kernel, lengthscale),
        distances=distances,
    )


def build_graph(
    z,
    k: int = 5,
    metric: str = "cosine",
    kernel: str = "matern12",
    lengthscale: float | str = 1.0,
    weight_distance: str | None = None,
    prune_distance: float | None = None,
    *,
    block_size: int | None = None,
    chunk_size: int | None = None,
    max_block_bytes: int | None = None,
    progress: bool = True,
) -> SimilarityGraph:
    """The symmetrised kNN similarity graph of the rows of z.

    z: float[n, d] raw features or embeddings (numpy or jax; used as float32).
    k: neighbours per point, 1 <= k < n. metric: "cosine" (default) or "euclidean", picks the neighbours.
    kernel: "matern12" (default), "rbf" or "cosine" (see llp_jax.graph.kernels).
    lengthscale: positive float, or "median" (median of the kNN edge distances, before pruning).
    weight_distance: the distance the kernel is applied to, "cosine" or "euclidean"; None = metric.
        The paper's code: metric="cosine", weight_distance="euclidean".
    prune_distance: drop edges whose weight distance exceeds it (None keeps all).
    block_size, chunk_size, max_block_bytes, progress: the blocked search, see `knn`.

    Returns SimilarityGraph(senders, receivers, weights, distances) as device arrays; every undirected
    edge once with senders < receivers, no self loops.
    """
    weight_distance = _check_options(metric, kernel, lengthscale, weight_distance, prune_distance)
    z = check_points(z, k)
    neighbours = knn(
        z,
        k,
        metric,
        block_size=block_size,
        chunk_size=chunk_size,
        max_block_bytes=max_block_bytes,
        progress=progress,
    )
    return graph_from_knn(z, neighbours, metric, kernel, lengthscale, weight_distance, prune_distance)
