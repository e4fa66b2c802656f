"""Exact k-nearest neighbours by blocked brute force on the device.

For one block of queries at a time, the scores against one chunk of the corpus at a time are a matrix
product (float32, `Precision.HIGHEST`, the bias folded in as an extra column); a two-stage top-k
(`select_top`: the best groups of 32 rows by their maxima, then the best rows among them, exact and
stable) keeps each chunk's best candidates and a running top-k merges them over the chunks, so the
working memory is bounded by the size of one query-block x corpus-chunk tile, whatever n is. The
surviving max(16, k + 1) candidates per query (the query itself may be one) are then re-ranked by
distances recomputed directly from the vectors (`rerank`), which makes the reported distances accurate
to float32 rounding instead of carrying the cancellation of the matrix-product form.

Metrics (distance between rows x and y):
  cosine     1 - <x, y> / (||x|| ||y||), clipped to [0, 2]. A zero vector has cosine similarity 0, hence
             distance 1, to every point, other zero vectors included (as scikit-learn's cosine_distances).
  euclidean  ||x - y||. Candidates are scored by 2<q, x> - ||x||^2 (the ||q||^2 + ||x||^2 - 2<q, x> form
             without its per-query constant) on mean-centred points, which limits cancellation.

A point is never its own neighbour (its duplicates are, at distance 0). Ties of the exact distances are
broken by index, smaller index first, among the max(16, k + 1) candidates of the float32 scoring stage,
whose top-k is stable (so exactly, unless the float32 scores of equally distant points differ).
Distances that differ by less than float32 resolution (~1e-7 relative) may come out in either order.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from llp_jax.sharding import constrain_replicated, constrain_rows, replicate

METRICS = ("cosine", "euclidean")
DEFAULT_CHUNK_SIZE = 32768  # corpus rows per chunk
DEFAULT_GROUP_SIZE = 32  # corpus rows per group of the two-stage top-k (`select_top`)
# Default bound on the bytes of one float32 [block_size, chunk_size] score tile, per backend. On the CPU
# smaller tiles stay in cache: n = 1e5, d = 16, k = 5, process CPU seconds of the whole search, side by
# side: 4 MiB 20-23, 16 MiB 17-19, 64 MiB 26-27 (and 27 s wall instead of 34 s before the two-stage
# top-k). On an accelerator larger tiles mean fewer, fuller kernel launches (not yet measured).
DEFAULT_MAX_BLOCK_BYTES = {"cpu": 16 * 2**20, "accelerator": 256 * 2**20}
# Candidates kept per query for the exact re-ranking, the query itself included: max(16, k + 1). 16 is
# the largest k served by XLA's fast GPU top-k kernel (k <= 16), and leaves a margin for near-ties.
MIN_CANDIDATES = 16
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class KnnResult(NamedTuple):
    """indices:   int32[n, k]    neighbours of every row, nearest first; never the row itself
    distances: float32[n, k]  their distances under the metric, ascending
    recall:    float | None   an approximate search's recall@k on a sample; None for an exact search
    """

    indices: np.ndarray
    distances: np.ndarray
    recall: float | None = None


def check_metric(metric: str, name: str = "metric") -> None:
    if metric not in METRICS:
        raise ValueError(f"{name}={metric!r} is not a known metric; use one of {METRICS}.")


def check_points(z, k: int) -> jax.Array:
    """Validate a point set and return it as a float32 device array.

    z: any real array float[n, d] (raw features or embeddings); k: number of neighbours, 1 <= k < n.
    Returns float32[n, d]. Raises ValueError naming the problem: not 2-D, empty, non-finite values
    (after conversion to float32), values so large that squared distances overflow float32, or k
    out of range.
    """
    if not hasattr(z, "shape") or not hasattr(z, "dtype"):
        z = np.asarray(z)
    if z.ndim != 2:
        raise ValueError(
            f"z must be a 2-D array [n_points, n_features]; got shape {tuple(z.shape)}. "
            "Reshape it, e.g. z.reshape(len(z), -1)."
        )
    if not (jnp.issubdtype(z.dtype, jnp.floating) or jnp.issubdtype(z.dtype, jnp.integer)):
        raise ValueError(
            f"z must hold real numbers; got dtype {z.dtype}. Convert it with z.astype(np.float32)."
        )
    n, d = z.shape
    if d == 0:
        raise ValueError(f"z has shape {tuple(z.shape)}: no features. Pass at least one column.")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k < n:
        raise ValueError(
            f"k={k!r} must be an integer with 1 <= k < n_points = {n} (a point is not its own "
            "neighbour); lower k or pass more points."
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        z = jnp.asarray(z, dtype=jnp.float32)
    max_abs = float(jnp.max(jnp.abs(z)))
    if not math.isfinite(max_abs):
        bad_rows = np.flatnonzero(~np.asarray(jnp.isfinite(z).all(axis=1)))
        raise ValueError(
            f"z has {bad_rows.size} rows with NaN or infinite values (after conversion to float32), "
            f"first at row {bad_rows[0]}. Impute or drop them before building the graph."
        )
    if 4.0 * d * max_abs**2 >= _FLOAT32_MAX:
        raise ValueError(
            f"z has values up to {max_abs:g}: squared distances would overflow float32. "
            "Rescale z (e.g. standardise the features)."
        )
    return z


def unit_rows(z: jax.Array) -> jax.Array:
    """float32[n, d] -> float32[n, d]: rows scaled to unit norm; zero rows stay zero.

    Rows are first divided by their largest magnitude, so the norm neither underflows nor overflows.
    """
    row_max = jnp.max(jnp.abs(z), axis=-1, keepdims=True)
    scaled = z / jnp.where(row_max > 0, row_max, 1.0)
    norm = jnp.linalg.norm(scaled, axis=-1, keepdims=True)
    return scaled / jnp.where(norm > 0, norm, 1.0)


def exact_distances(a: jax.Array, b: jax.Array, metric: str) -> jax.Array:
    """Distances between paired rows, computed directly from the vectors.

    a, b: float32[..., d] (unit rows for cosine, raw points for euclidean), broadcastable.
    Returns float32[...].
    """
    if metric == "cosine":
        return jnp.clip(1.0 - jnp.sum(a * b, axis=-1), 0.0, 2.0)
    return jnp.sqrt(jnp.sum(jnp.square(a - b), axis=-1))


def _scored_points(z: jax.Array, metric: str) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Arrays the blocked search works on: the score of query q against point x is <queries[q],
    corpus[x]>, higher is nearer, one matrix product with the bias folded in as a last column.

    Returns queries float32[n, d + 1], corpus float32[n, d + 1], exact float32[n, d] (the vectors the
    final distances are computed from). cosine: [u, 1] . [u, 0] for the unit rows u; euclidean:
    [c, 1] . [2c, -||c||^2] for the mean-centred rows c. Folding the bias into the product saves a pass
    over the score tile: adding it afterwards made `select_top` 3x slower on the CPU (22 ms instead of
    7 ms for a [160, 25024] tile, d = 16), as XLA fused the addition into the grouped reduction badly.
    """
    ones = jnp.ones((z.shape[0], 1), jnp.float32)
    if metric == "cosine":
        unit = unit_rows(z)
        return jnp.concatenate([unit, ones], 1), jnp.concatenate([unit, 0 * ones], 1), unit
    centred = z - jnp.mean(z, axis=0)
    bias = -jnp.sum(jnp.square(centred), axis=1, keepdims=True)
    return jnp.concatenate([centred, ones], 1), jnp.concatenate([2 * centred, bias], 1), z


def select_top(best: tuple[jax.Array, jax.Array], scores: jax.Array, offset: jax.Array, group: int):
    """The running top candidates merged with one chunk's scores, exactly, in two stages.

    best: (scores float32[q, m], ids int32[q, m]) so far, from earlier chunks (smaller ids);
    scores: float32[q, c] of the corpus rows offset .. offset + c - 1, c a multiple of group.
    Returns (scores float32[q, m], ids int32[q, m]): the m best of both, equal scores by smaller id.

    The chunk's m best scores lie in the m groups of `group` consecutive rows with the highest maxima
    (a row outside them is beaten by m group maxima, each another row), so `top_k` runs on c / group
    maxima and on m x group candidates instead of on all c scores, where it cost about three times the
    matrix product on the CPU (d = 16).
    """
    n_queries, width = scores.shape
    n_best = best[0].shape[1]
    groups = scores.reshape(n_queries, width // group, group)
    _, group_ids = jax.lax.top_k(jnp.max(groups, axis=2), min(n_best, width // group))
    # In index order, so that top_k (stable) keeps the smaller id among equal scores; best comes first.
    group_ids = jnp.sort(group_ids, axis=1)
    chunk_scores = jnp.take_along_axis(groups, group_ids[:, :, None], axis=1).reshape(n_queries, -1)
    chunk_ids = (offset + group_ids[:, :, None] * group + jnp.arange(group)).reshape(n_queries, -1)
    all_scores = jnp.concatenate([best[0], chunk_scores], axis=1)
    all_ids = jnp.concatenate([best[1], chunk_ids], axis=1)
    top_scores, top_pos = jax.lax.top_k(all_scores, n_best)
    return top_scores, jnp.take_along_axis(all_ids, top_pos, axis=1)


@partial(jax.jit, static_argnames=("metric", "block_size", "chunk_size", "group_size", "n_candidates", "k"))
def _knn_block(
    start: jax.Array,
    queries: jax.Array,
    corpus: jax.Array,
    exact: jax.Array,
    *,
    metric: str,
    block_size: int,
    chunk_size: int,
    group_size: int,
    n_candidates: int,
    k: int,
) -> tuple[jax.Array, jax.Array]:
    """k nearest neighbours of the queries start .. start + block_size - 1.

    start: int32[] first query row; queries float32[n, d + 1], corpus float32[n_chunks * chunk_size,
    d + 1] and exact float32[n, d] from `_scored_points`, the corpus padded with rows that score -inf.
    n_candidates: rows kept per query for the exact re-ranking, the query itself among them when it
    scores high enough (it is dropped after the re-ranking, which spares a mask over the score tile).
    Returns indices int32[block_size, k], distances float32[block_size, k].
    """
    n_padded, width = corpus.shape
    block = constrain_rows(jax.lax.dynamic_slice_in_dim(queries, start, block_size))  # several devices

    def merge_chunk(best, chunk):
        chunk_corpus, offset = chunk
        scores = jnp.einsum("qd,cd->qc", block, chunk_corpus, precision=jax.lax.Precision.HIGHEST)
        return select_top(best, scores, offset, group_size), None

    n_chunks = n_padded // chunk_size
    chunks = (
        corpus.reshape(n_chunks, chunk_size, width),
        jnp.arange(n_chunks, dtype=jnp.int32) * chunk_size,
    )
    init = (
        jnp.full((block_size, n_candidates), -jnp.inf, jnp.float32),
        jnp.zeros((block_size, n_candidates), jnp.int32),
    )
    init = constrain_rows(init)  # several devices: the running top-k split like the queries
    (_, candidates), _ = jax.lax.scan(merge_chunk, init, chunks)

    return rerank(start + jnp.arange(block_size), candidates, exact, metric, k)


def rerank(
    query_ids: jax.Array, candidates: jax.Array, exact: jax.Array, metric: str, k: int
) -> tuple[jax.Array, jax.Array]:
    """The k nearest of each query's candidates by distances recomputed from the vectors.

    query_ids: int32[q]; candidates: int32[q, m] distinct rows of exact (a negative id: none), the
    query itself possibly among them; exact: float32[n, d] (unit rows for cosine, the points for
    euclidean); m > k. Returns indices int32[q, k], distances float32[q, k], ascending, equal distances
    by smaller index, the query and missing ids left out (distance inf when fewer than k remain).
    """
    distances = exact_distances(exact[query_ids][:, None, :], exact[candidates], metric)
    dropped = (candidates == query_ids[:, None]) | (candidates < 0)
    distances = jnp.where(dropped, jnp.inf, distances)
    distances, candidates = jax.lax.sort((distances, candidates), dimension=1, num_keys=2)
    return constrain_replicated((candidates[:, :k], distances[:, :k]))  # several devices: for the host


def candidates_per_query(n: int, k: int) -> int:
    """Rows scored as candidates per query for the exact re-ranking (the query among them): at least
    k + 1, at most n."""
    return min(n, max(MIN_CANDIDATES, k + 1))


def block_shape(
    n: int,
    block_size: int | None,
    chunk_size: int | None,
    max_block_bytes: int | None,
    group_size: int | None = None,
) -> tuple[int, int, int]:
    """(queries per block, corpus rows per chunk, rows per group of the top-k selection) for n points.

    chunk_size (default DEFAULT_CHUNK_SIZE) is an upper bound: the corpus is cut into
    ceil(n / chunk_size) chunks of equal size, a multiple of the group size (group_size, default
    DEFAULT_GROUP_SIZE, at most the chunk), so the padding of the last chunk is small. A missing
    block_size is the largest one (a multiple of 8 when above 8) whose float32 score tile
    [block_size, chunk] fits in max_block_bytes (default: DEFAULT_MAX_BLOCK_BYTES of the default
    backend); an explicit one is used as given, capped at n.
    """
    for name, value in (
        ("block_size", block_size),
        ("chunk_size", chunk_size),
        ("max_block_bytes", max_block_bytes),
        ("group_size", group_size),
    ):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1
        ):
            raise ValueError(f"{name}={value!r} must be a positive integer (or None for the default).")
    limit = min(n, chunk_size or DEFAULT_CHUNK_SIZE)
    group = min(limit, group_size or DEFAULT_GROUP_SIZE)
    limit -= limit % group
    n_chunks = -(-n // limit)
    chunk = -(-n // (n_chunks * group)) * group
    if block_size is None:
        if max_block_bytes is None:
            max_block_bytes = DEFAULT_MAX_BLOCK_BYTES[
                "cpu" if jax.default_backend() == "cpu" else "accelerator"
            ]
        block_size = max(1, max_block_bytes // (4 * chunk))
        block_size = block_size - block_size % 8 if block_size > 8 else block_size
    return min(n, block_size), chunk, group


def knn(
    z,
    k: int,
    metric: str = "cosine",
    *,
    block_size: int | None = None,
    chunk_size: int | None = None,
    max_block_bytes: int | None = None,
    group_size: int | None = None,
    progress: bool = True,
) -> KnnResult:
    """Exact k nearest neighbours of every row of z among the other rows.

    z: float[n, d] points (numpy or jax; converted to float32); k: 1 <= k < n; metric: "cosine" or
    "euclidean". Queries run in blocks of block_size rows against corpus chunks of chunk_size rows;
    by default the blocks are sized so that one float32 score tile [block_size, chunk_size] takes at
    most max_block_bytes (default 16 MiB on the CPU, 256 MiB on an accelerator; peak working memory is
    a small multiple of it, plus a few copies of z).
    progress shows a tqdm bar over the query blocks.

    Returns KnnResult(indices int32[n, k], distances float32[n, k]) as host numpy arrays.
    """
    check_metric(metric)
    z = check_points(z, k)
    n = z.shape[0]
    block, chunk, group = block_shape(n, block_size, chunk_size, max_block_bytes, group_size)
    n_candidates = candidates_per_query(n, k)

    queries, corpus, exact = _scored_points(z, metric)
    # Padding rows [0, .., 0, -inf] score -inf against every query (whose last column is 1).
    padding = jnp.zeros((-n % chunk, corpus.shape[1]), jnp.float32).at[:, -1].set(-jnp.inf)
    corpus = jnp.concatenate([corpus, padding])
    queries, corpus, exact = replicate((queries, corpus, exact))  # several devices: each holds them all, once
    run_block = partial(
        _knn_block,
        metric=metric,
        block_size=block,
        chunk_size=chunk,
        group_size=group,
        n_candidates=n_candidates,
        k=k,
    )

    # The last block is shifted back to end at row n (it recomputes a few rows) so no query padding
    # is needed; the next block is dispatched before the previous one is copied to the host.
    starts = [*range(0, n - block, block), n - block]
    indices = np.empty((n, k), np.int32)
    distances = np.empty((n, k), np.float32)
    pending = None
    for start in tqdm(starts, desc=f"kNN ({metric}, k={k})", unit="block", disable=not progress):
        result = (start, run_block(jnp.int32(start), queries, corpus, exact))
        if pending is not None:
            _store(pending, indices, distances)
        pending = result
    _store(pending, indices, distances)
    return KnnResult(indices, distances)


def _store(block_result, indices: np.ndarray, distances: np.ndarray) -> None:
    start, (block_indices, block_distances) = block_result
    stop = start + block_indices.shape[0]
    indices[start:stop] = np.asarray(block_indices)
    distances[start:stop] = np.asarray(block_distances)


@partial(jax.jit, static_argnames=("metric",))
def _pair_distances_chunk(vectors: jax.Array, senders: jax.Array, receivers: jax.Array, metric: str):
    return exact_distances(vectors[senders], vectors[receivers], metric)


def pair_distances(
    z, senders: np.ndarray, receivers: np.ndarray, metric: str, *, chunk_size: int = 2**20, capacity: int = 0
) -> jax.Array:
    """Distances between rows senders[e] and receivers[e] of z, computed directly from the vectors.

    z: float[n, d]; senders, receivers: int[n_pairs]; metric: "cosine" or "euclidean".
    Pairs are processed chunk_size at a time (the last chunk padded) to bound memory; capacity: pad to at
    least this many pairs, so that calls with up to capacity pairs (the graphs of a run's rounds) compile
    one program. Returns float32[n_pairs] (same definitions and precision as `knn`'s distances).
    """
    # put back with device_put: jnp.asarray of a host array compiles a copy program for each length
    return jax.device_put(
        host_pair_distances(z, senders, receivers, metric, chunk_size=chunk_size, capacity=capacity)
    )


def host_pair_distances(
    z, senders: np.ndarray, receivers: np.ndarray, metric: str, *, chunk_size: int = 2**20, capacity: int = 0
) -> np.ndarray:
    """`pair_distances` as a host array (computed on the device, cut to n_pairs on the host: a device
    slice of each length would be a program of its own), for callers that go on on the host."""
    check_metric(metric)
    z = jnp.asarray(z, jnp.float32)
    vectors = unit_rows(z) if metric == "cosine" else z
    senders, receivers = np.asarray(senders, np.int32), np.asarray(receivers, np.int32)
    n_pairs = senders.shape[0]
    padded_pairs = max(n_pairs, capacity)
    chunk = max(1, min(chunk_size, padded_pairs))
    n_pad = -(-padded_pairs // chunk) * chunk - n_pairs
    senders, receivers = np.pad(senders, (0, n_pad)), np.pad(receivers, (0, n_pad))
    parts = [
        np.asarray(_pair_distances_chunk(vectors, senders[i : i + chunk], receivers[i : i + chunk], metric))
        for i in range(0, n_pairs + n_pad, chunk)
    ]
    return np.concatenate(parts)[:n_pairs] if parts else np.zeros(0, np.float32)
