"""The similarity graph's settings (llp_jax.graph.build_graph), with their checks.

The defaults are the paper's code and DESIGN.md: k = 5 cosine neighbours, Matern-1/2 weights
exp(-||z_i - z_j|| / lengthscale) on the euclidean distance.
"""

from __future__ import annotations

import enum
import math
from typing import Any, NamedTuple

from llp_jax.graph.kernels import KERNELS, check_kernel
from llp_jax.graph.knn import METRICS, check_metric

Metric = enum.StrEnum("Metric", {name: name for name in METRICS})
Kernel = enum.StrEnum("Kernel", {name: name for name in KERNELS})


class Backend(enum.StrEnum):
    """The neighbour search: jax (exact, blocked on the default JAX device), faiss (exact, faiss-cpu's
    flat index) or faiss_hnsw (approximate, faiss-cpu's HNSW index, recall@k reported)."""

    jax = "jax"
    faiss = "faiss"
    faiss_hnsw = "faiss_hnsw"


class GraphSettings(NamedTuple):
    """k: neighbours per point (1 <= k < n). metric: picks the neighbours (cosine | euclidean).
    kernel: matern12 | rbf | cosine, applied to `weight_distance` (cosine | euclidean; None: the metric).
    lengthscale: a positive number or "median" (the median kNN edge distance, before pruning).
    prune_distance: drop edges whose weight distance exceeds it (None keeps all).
    backend: jax | faiss | faiss_hnsw (see Backend; faiss needs the extra `llp_jax[faiss]`).
    max_block_bytes: bytes of one score tile of the jax search; None is the JAX backend's measured
    default (llp_jax.graph.knn.DEFAULT_MAX_BLOCK_BYTES: 16 MiB on the CPU, 256 MiB on an accelerator).
    hnsw_m, hnsw_ef_search: faiss_hnsw's links per node and search list (llp_jax.graph.HnswSettings).
    """

    k: int = 5
    metric: Metric = Metric.cosine
    kernel: Kernel = Kernel.matern12
    lengthscale: Any = 1.0
    weight_distance: Metric | None = Metric.euclidean
    prune_distance: float | None = None
    backend: Backend = Backend.jax
    max_block_bytes: int | None = None
    hnsw_m: int = 32
    hnsw_ef_search: int = 64


def plain(settings: GraphSettings) -> GraphSettings:
    """The settings with their Enum members as plain strings (what the kernels and the search take)."""
    return settings._replace(
        **{
            name: getattr(settings, name).value
            for name in ("metric", "kernel", "weight_distance", "backend")
            if isinstance(getattr(settings, name), enum.Enum)
        }
    )


def positive_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_graph_fits(settings: GraphSettings, n_points: int) -> None:
    """ValueError unless graph.k is below `n_points`, the rows the graph joins (the training split): checked
    when the data are loaded, before the warm start trains (knn itself checks it only after)."""
    if settings.k >= n_points:
        raise ValueError(
            f"graph.k={settings.k} is not below the {n_points} training rows the similarity graph joins "
            f"(a row is not its own neighbour); use graph.k < {n_points}, e.g. graph.k=5"
        )


def check_graph_settings(settings: GraphSettings) -> GraphSettings:
    """Raise ValueError naming the first bad setting as its config key (graph.<name>); returns the
    settings with plain strings and weight_distance resolved (None -> the metric)."""
    settings = plain(settings)
    if isinstance(settings.k, bool) or not isinstance(settings.k, int) or settings.k < 1:
        raise ValueError(f"graph.k={settings.k!r} must be an integer >= 1 (neighbours per point).")
    check_metric(settings.metric, "graph.metric")
    weight_distance = settings.metric if settings.weight_distance is None else settings.weight_distance
    check_metric(weight_distance, "graph.weight_distance")
    check_kernel(settings.kernel, weight_distance, settings.lengthscale)
    prune = settings.prune_distance
    finite = isinstance(prune, int | float) and not isinstance(prune, bool) and math.isfinite(prune)
    if prune is not None and not (finite and prune >= 0):
        raise ValueError(f"graph.prune_distance={prune!r} must be a non-negative finite number or None.")
    if settings.backend not in set(Backend):
        raise ValueError(
            f"graph.backend={settings.backend!r} is not a known backend; use one of "
            f"{[backend.value for backend in Backend]}."
        )
    block = settings.max_block_bytes
    if block is not None and not positive_integer(block):
        raise ValueError(
            f"graph.max_block_bytes={block!r} must be a positive integer (or None for the default)."
        )
    for name, least in (("hnsw_m", 2), ("hnsw_ef_search", 1)):
        value = getattr(settings, name)
        if not positive_integer(value) or value < least:
            raise ValueError(f"graph.{name}={value!r} must be an integer >= {least}.")
    return settings._replace(weight_distance=weight_distance)
