"""Assembles the similarity graph: kNN edges, symmetrised (host numpy), weighted by a kernel."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from llp_jax.compile_clock import compile_stage
from llp_jax.graph.faiss_search import HnswSettings, knn_faiss
from llp_jax.graph.kernels import edge_weights, median_lengthscale
from llp_jax.graph.knn import KnnResult, check_points, host_pair_distances, knn
from llp_jax.graph.settings import GraphSettings, check_graph_settings


class SimilarityGraph(NamedTuple):
    """Undirected weighted edge list over n_nodes points, the input of the BP engine (one tuple passed
    whole, as jraph's GraphsTuple).

    n_nodes:   int               number of points (nodes), including any without an edge
    senders:   int32[n_edges]    senders < receivers, each undirected edge once, no self loops,
    receivers: int32[n_edges]    sorted by (sender, receiver)
    weights:   float32[n_edges]  kernel weights
    distances: float32[n_edges]  the distance the kernel was applied to (None for a graph built by hand
                                 from weights alone)
    knn_recall: float | None     an approximate search's recall@k on a sample (None: exact search)
    """

    n_nodes: int
    senders: jax.Array
    receivers: jax.Array
    weights: jax.Array
    distances: jax.Array | None = None
    knn_recall: float | None = None

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


def graph_from_knn(z, neighbours: KnnResult, settings: GraphSettings | None = None) -> SimilarityGraph:
    """The weighted edge list of a kNN result found under settings.metric (see `build_graph`).

    z: float[n, d] the points the neighbours were found in; neighbours: KnnResult(indices int32[n, k],
    distances float32[n, k]); settings: None for GraphSettings() (its k and search settings are not
    used here).
    """
    settings = check_graph_settings(GraphSettings() if settings is None else settings)
    if z.shape[0] != neighbours.indices.shape[0]:
        raise ValueError(
            f"z has {z.shape[0]} rows but the kNN result has {neighbours.indices.shape[0]}; pass the "
            "points the neighbours were found in."
        )
    senders, receivers, distances = symmetrise(neighbours.indices, neighbours.distances)
    # Device work on the edges is padded to n * k, the most edges a kNN graph can have, and arrays go to the
    # device by device_put: each round's and seed's graph has its own edge count, which would otherwise
    # compile these programs again. (XLA's CPU exp may differ by 1 ulp between vector lanes and the tail.)
    capacity = neighbours.indices.size
    if settings.weight_distance != settings.metric:
        distances = host_pair_distances(z, senders, receivers, settings.weight_distance, capacity=capacity)
    lengthscale = settings.lengthscale
    if lengthscale == "median":
        lengthscale = median_lengthscale(distances)
    if settings.prune_distance is not None:
        keep = distances <= settings.prune_distance
        senders, receivers, distances = senders[keep], receivers[keep], distances[keep]
    padded = np.pad(distances, (0, capacity - len(distances)))
    weights = np.asarray(edge_weights(padded, settings.kernel, lengthscale))[: len(distances)]
    senders, receivers, weights, distances = jax.device_put((senders, receivers, weights, distances))
    return SimilarityGraph(int(z.shape[0]), senders, receivers, weights, distances, neighbours.recall)


@compile_stage("graph")  # its compilation counts there
def build_graph(
    z,
    settings: GraphSettings | None = None,
    *,
    block_size: int | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> SimilarityGraph:
    """The symmetrised kNN similarity graph of the rows of z.

    z: float[n, d] raw features or embeddings (numpy or jax; used as float32).
    settings: GraphSettings (neighbours, metric, kernel, lengthscale, weight distance, pruning, search
    backend and its settings; None for the defaults), checked before any search. block_size, chunk_size:
    the jax backend's tiles, see `knn`; progress: a bar over the query blocks.

    Returns SimilarityGraph(n_nodes, senders, receivers, weights, distances) with device arrays; every
    undirected edge once with senders < receivers, no self loops.
    """
    settings = check_graph_settings(GraphSettings() if settings is None else settings)
    z = check_points(z, settings.k)
    neighbours = search(z, settings, block_size=block_size, chunk_size=chunk_size, progress=progress)
    return graph_from_knn(z, neighbours, settings)


def search(
    z,
    settings: GraphSettings,
    *,
    block_size: int | None = None,
    chunk_size: int | None = None,
    progress: bool = False,
) -> KnnResult:
    """The settings.k nearest neighbours of every row of z: float[n, d] under settings.metric, by
    settings.backend (checked settings, see `check_graph_settings`; block_size and chunk_size: the
    jax backend's tiles, see `knn`)."""
    if settings.backend == "jax":
        return knn(
            z,
            settings.k,
            settings.metric,
            block_size=block_size,
            chunk_size=chunk_size,
            max_block_bytes=settings.max_block_bytes,
            progress=progress,
        )
    hnsw = None
    if settings.backend == "faiss_hnsw":
        hnsw = HnswSettings(settings.hnsw_m, settings.hnsw_ef_search)
    return knn_faiss(z, settings.k, settings.metric, hnsw=hnsw, progress=progress)
