"""llp_jax.graph against scikit-learn's brute-force NearestNeighbors (float64) as the oracle."""

import json
import re
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import EPS32
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from llp_jax.compile_clock import compile_clock
from llp_jax.graph import (
    GraphSettings,
    HnswSettings,
    build_graph,
    edge_weights,
    graph_from_knn,
    knn,
    knn_faiss,
    pair_distances,
    symmetrise,
)
from llp_jax.graph.kernels import median_lengthscale
from llp_jax.graph.knn import select_top

METRICS = ["cosine", "euclidean"]
TOL = 1e-5


def graph_of(z, block_size=None, chunk_size=None, progress=False, **settings):
    """build_graph with GraphSettings(**settings), weight_distance defaulting to the metric."""
    settings = GraphSettings(**{"weight_distance": None, **settings})
    return build_graph(z, settings, block_size=block_size, chunk_size=chunk_size, progress=progress)


def random_points(n=203, d=7, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def points_with_duplicates(seed=0):
    """float32[200, 5]: 80 distinct rows, most repeated 2-3 times, shuffled, plus 3 zero rows."""
    rng = np.random.default_rng(seed)
    distinct = rng.normal(size=(80, 5))
    rows = np.concatenate([distinct, distinct[:70], distinct[:47], np.zeros((3, 5))])
    return rows[rng.permutation(len(rows))].astype(np.float32)


def sklearn_knn(z, k, metric):
    model = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(z.astype(np.float64))
    return model.kneighbors()  # (distances, indices), self excluded


def oracle_by_index(z, k, metric):
    """Exact float64 kNN with ties broken by index: int[n, k]."""
    dist = pairwise_distances(z.astype(np.float64), metric=metric)
    np.fill_diagonal(dist, np.inf)
    return np.stack([np.lexsort((np.arange(len(z)), row))[:k] for row in dist])


def assert_valid_neighbours(z, result, k, metric):
    """Same distances as scikit-learn and a neighbour set that is correct up to ties."""
    dist, _ = sklearn_knn(z, k, metric)
    n = len(z)
    full = pairwise_distances(z.astype(np.float64), metric=metric)
    assert result.indices.shape == (n, k) and result.indices.dtype == np.int32
    assert result.distances.shape == (n, k) and result.distances.dtype == np.float32
    assert not (result.indices == np.arange(n)[:, None]).any(), "a point is its own neighbour"
    assert all(len(set(row)) == k for row in result.indices), "repeated neighbour"
    np.testing.assert_allclose(result.distances, dist, atol=TOL)
    np.testing.assert_allclose(result.distances, np.take_along_axis(full, result.indices, 1), atol=TOL)


@pytest.mark.parametrize("metric", METRICS)
def test_knn_matches_sklearn_without_ties(metric):
    z = random_points()
    result = knn(z, 5, metric, progress=False)
    dist, ind = sklearn_knn(z, 5, metric)
    np.testing.assert_array_equal(result.indices, ind)
    np.testing.assert_allclose(result.distances, dist, atol=TOL)


@pytest.mark.parametrize("metric", METRICS)
def test_knn_with_duplicates_matches_sklearn_up_to_ties_and_breaks_ties_by_index(metric):
    z = points_with_duplicates()
    result = knn(z, 6, metric, block_size=16, chunk_size=50, progress=False)
    assert_valid_neighbours(z, result, 6, metric)
    np.testing.assert_array_equal(result.indices, oracle_by_index(z, 6, metric))


def test_euclidean_distances_accurate_with_large_offset():
    """Points far from the origin, where ||q||^2 + ||x||^2 - 2 q.x on raw float32 loses all digits."""
    z = random_points(n=150, d=4) * 0.01 + 300.0
    result = knn(z, 4, "euclidean", progress=False)
    dist, ind = sklearn_knn(z, 4, "euclidean")
    np.testing.assert_array_equal(result.indices, ind)
    np.testing.assert_allclose(result.distances, dist, atol=TOL)


def test_cosine_zero_vectors_are_at_distance_one():
    z = random_points(n=40, d=3)
    z[[3, 17, 29]] = 0.0
    result = knn(z, 3, "cosine", progress=False)
    assert np.isfinite(result.distances).all()
    np.testing.assert_allclose(result.distances[[3, 17, 29]], 1.0, atol=TOL)
    assert_valid_neighbours(z, result, 3, "cosine")


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize(
    ("block_size", "chunk_size", "max_block_bytes", "group_size"),
    [
        (7, 13, None, None),
        (64, 300, None, 7),
        (1, 999, None, 1),
        (None, 40, 4 * 40 * 10, None),
        (None, None, None, 2),
        (32, 160, None, 160),
    ],
)
def test_blocking_gives_the_single_block_result(metric, block_size, chunk_size, max_block_bytes, group_size):
    z = random_points(n=301, d=6, seed=1)  # 301: a multiple of no block, chunk or group size above
    single = knn(z, 5, metric, block_size=301, chunk_size=301, group_size=301, progress=False)
    options = {"max_block_bytes": max_block_bytes, "group_size": group_size}
    blocked = knn(z, 5, metric, block_size=block_size, chunk_size=chunk_size, progress=False, **options)
    np.testing.assert_array_equal(blocked.indices, single.indices)
    # The reported distances are recomputed from the vectors (knn.rerank), each a sum of d = 6 terms: in
    # any two orders within float32_sum_error(6, sum|terms|) = 5 eps32 sum|terms| = 6e-7 for cosine (unit
    # rows: sum |x_i y_i| <= 1) and, for euclidean, 5 eps32 D^2 on D^2, 2.5 eps32 D = 8.6e-7 on D <= 2.87
    # here (the largest of the 5-NN distances): 1e-6 holds for these sums in any order.
    np.testing.assert_allclose(blocked.distances, single.distances, atol=1e-6)


@pytest.mark.parametrize("group", [1, 4, 5, 40])
def test_select_top_is_a_stable_top_k(group):
    """Two-stage selection against numpy's stable sort, on scores with many ties (8 distinct values)."""
    import jax.numpy as jnp

    rng = np.random.default_rng(group)
    scores = rng.integers(0, 8, size=(6, 40)).astype(np.float32)
    scores[0, :] = 3.0  # one row all tied
    best_scores = np.sort(rng.integers(0, 8, size=(6, 5)).astype(np.float32), axis=1)[:, ::-1]
    best_ids = np.tile(np.arange(5, dtype=np.int32), (6, 1))  # ids below the chunk's (offset 100)
    top_scores, top_ids = select_top(
        (jnp.asarray(best_scores), jnp.asarray(best_ids)), jnp.asarray(scores), jnp.int32(100), group
    )
    all_scores = np.concatenate([best_scores, scores], axis=1)
    all_ids = np.concatenate([best_ids, np.tile(100 + np.arange(40, dtype=np.int32), (6, 1))], axis=1)
    order = np.argsort(-all_scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(top_ids, np.take_along_axis(all_ids, order, 1))
    np.testing.assert_array_equal(top_scores, np.take_along_axis(all_scores, order, 1))


def many_duplicates(seed=0):
    """float32[120, 4]: one point repeated 40 times (more than the search's 17 candidates) among others."""
    rng = np.random.default_rng(seed)
    rows = np.concatenate([np.repeat(rng.normal(size=(1, 4)), 40, axis=0), rng.normal(size=(80, 4))])
    return rows[rng.permutation(len(rows))].astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("backend", ["jax", "faiss"])
def test_more_duplicates_than_candidates(metric, backend):
    """The query itself need not survive the scoring stage. The jax search's top-k is stable, so it
    returns the k smallest-index duplicates; faiss's heaps keep any 17 of 40 equal scores."""
    if backend == "faiss":
        pytest.importorskip("faiss")
    z = many_duplicates()
    search = knn if backend == "jax" else knn_faiss
    result = search(z, 5, metric, progress=False)
    assert_valid_neighbours(z, result, 5, metric)
    if backend == "jax":
        np.testing.assert_array_equal(result.indices, oracle_by_index(z, 5, metric))


def test_knn_accepts_jax_arrays_and_small_n():
    import jax.numpy as jnp

    z = random_points(n=3, d=2)
    result = knn(jnp.asarray(z), 2, "euclidean", progress=False)
    dist, ind = sklearn_knn(z, 2, "euclidean")
    np.testing.assert_array_equal(result.indices, ind)
    np.testing.assert_allclose(result.distances, dist, atol=TOL)


def test_progress_bar_shown_and_silenced(capsys):
    z = random_points(n=50, d=2)
    knn(z, 2, block_size=10, progress=True)
    assert "kNN" in capsys.readouterr().err
    knn(z, 2, block_size=10, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("metric", METRICS)
def test_faiss_flat_matches_jax_and_sklearn(metric):
    pytest.importorskip("faiss")
    z = random_points(n=1500, d=12, seed=11)
    z[4] = 0.0  # a zero vector: cosine distance 1 to everything
    flat = knn_faiss(z, 7, metric, progress=False)
    device = knn(z, 7, metric, progress=False)
    dist, ind = sklearn_knn(z, 7, metric)
    assert flat.recall is None and flat.indices.dtype == np.int32 and flat.distances.dtype == np.float32
    untied = np.ones(len(z), bool)
    untied[4] = metric == "euclidean"  # under cosine the zero vector's neighbours all tie
    np.testing.assert_array_equal(flat.indices[untied], ind[untied])
    np.testing.assert_array_equal(flat.indices[untied], device.indices[untied])
    np.testing.assert_allclose(flat.distances, dist, atol=TOL)
    np.testing.assert_allclose(flat.distances, device.distances, atol=TOL)


@pytest.mark.parametrize("metric", METRICS)
def test_faiss_flat_breaks_ties_by_index(metric):
    pytest.importorskip("faiss")
    z = points_with_duplicates(seed=2)
    result = knn_faiss(z, 6, metric, progress=False)
    assert_valid_neighbours(z, result, 6, metric)
    np.testing.assert_array_equal(result.indices, oracle_by_index(z, 6, metric))


def clustered_points(n=3000, d=8, seed=12):
    """Easy data for HNSW: 30 well separated clusters of tight points."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, d)) * 10
    return (centres[rng.integers(0, 30, n)] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
def test_faiss_hnsw_recall_on_easy_data(metric):
    pytest.importorskip("faiss")
    z = clustered_points()
    result = knn_faiss(z, 5, metric, hnsw=HnswSettings(m=16, ef_search=32), progress=False)
    dist, ind = sklearn_knn(z, 5, metric)
    measured = np.mean([len(np.intersect1d(a, b)) for a, b in zip(result.indices, ind, strict=True)]) / 5
    assert measured > 0.95, f"HNSW recall@5 {measured} on clustered data"
    # The reported recall is measured on a sample of 1,000 of the 3,000 points.
    assert abs(result.recall - measured) < 0.03
    full = pairwise_distances(z.astype(np.float64), metric=metric)
    np.testing.assert_allclose(result.distances, np.take_along_axis(full, result.indices, 1), atol=TOL)
    assert not (result.indices == np.arange(len(z))[:, None]).any()


def test_faiss_hnsw_reports_a_low_recall():
    """A sparse HNSW graph (m=4) on 16-D gaussian data misses neighbours; the sample's recall says so."""
    pytest.importorskip("faiss")
    z = random_points(n=3000, d=16, seed=14)
    result = knn_faiss(z, 5, "euclidean", hnsw=HnswSettings(m=4, ef_search=1), progress=False)
    _, ind = sklearn_knn(z, 5, "euclidean")
    measured = np.mean([len(np.intersect1d(a, b)) for a, b in zip(result.indices, ind, strict=True)]) / 5
    assert 0.5 < measured < 0.95 and abs(result.recall - measured) < 0.03


def test_build_graph_with_each_backend():
    pytest.importorskip("faiss")
    z = random_points(seed=13)
    device = graph_of(z, k=5)
    flat = graph_of(z, k=5, backend="faiss")
    for field, expected in zip(flat[1:-1], device[1:-1], strict=True):  # n_nodes .. distances
        np.testing.assert_allclose(field, expected, atol=TOL)
    hnsw = graph_of(z, k=5, backend="faiss_hnsw", hnsw_ef_search=200)
    assert device.knn_recall is None and hnsw.knn_recall == 1.0
    np.testing.assert_array_equal(hnsw.senders, device.senders)


def test_faiss_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'llp_jax[faiss]'")):
        graph_of(random_points(), k=5, backend="faiss")


def test_importing_the_graph_package_leaves_faiss_unloaded():
    code = "import sys, llp_jax.graph; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def sklearn_symmetric_edges(z, k, metric):
    """Set of (i, j), i < j, of scikit-learn's kNN graph symmetrised."""
    model = NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(z.astype(np.float64))
    directed = model.kneighbors_graph()
    union = (directed + directed.T).tocoo()
    return {(i, j) for i, j in zip(union.row.tolist(), union.col.tolist(), strict=True) if i < j}


def assert_edge_list(graph, n):
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    assert senders.dtype == np.int32 and receivers.dtype == np.int32
    assert graph.weights.dtype == np.float32 and graph.distances.dtype == np.float32
    assert (senders < receivers).all() and senders.min() >= 0 and receivers.max() < n
    keys = senders.astype(np.int64) * n + receivers
    assert len(np.unique(keys)) == len(keys), "an undirected edge appears twice"
    assert (np.diff(keys) > 0).all(), "edges not sorted by (sender, receiver)"


@pytest.mark.parametrize("metric", METRICS)
def test_build_graph_is_sklearn_graph_symmetrised(metric):
    z = random_points()
    graph = graph_of(z, k=5, metric=metric, block_size=32, chunk_size=64)
    assert_edge_list(graph, len(z))
    edges = set(zip(np.asarray(graph.senders).tolist(), np.asarray(graph.receivers).tolist(), strict=True))
    assert edges == sklearn_symmetric_edges(z, 5, metric)
    full = pairwise_distances(z.astype(np.float64), metric=metric)
    np.testing.assert_allclose(graph.distances, full[graph.senders, graph.receivers], atol=TOL)
    np.testing.assert_allclose(graph.weights, np.exp(-full[graph.senders, graph.receivers]), atol=TOL)


def test_build_graph_with_duplicates_has_no_self_loops():
    z = points_with_duplicates(seed=3)
    graph = graph_of(z, k=4, metric="euclidean")
    assert_edge_list(graph, len(z))
    full = pairwise_distances(z.astype(np.float64))
    np.testing.assert_allclose(graph.distances, full[graph.senders, graph.receivers], atol=TOL)
    assert (np.asarray(graph.distances) == 0).any(), "duplicate points should be joined at distance 0"


def test_paper_option_cosine_neighbours_euclidean_weights():
    z = random_points(seed=4) + 0.5
    graph = graph_of(z, k=5, metric="cosine", weight_distance="euclidean", lengthscale=2.0)
    edges = set(zip(np.asarray(graph.senders).tolist(), np.asarray(graph.receivers).tolist(), strict=True))
    assert edges == sklearn_symmetric_edges(z, 5, "cosine")
    euclidean = np.linalg.norm(z[graph.senders].astype(np.float64) - z[graph.receivers], axis=1)
    np.testing.assert_allclose(graph.distances, euclidean, atol=TOL)
    np.testing.assert_allclose(graph.weights, np.exp(-euclidean / 2.0), atol=TOL)


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        ("matern12", lambda d, ls: np.exp(-d / ls)),
        ("rbf", lambda d, ls: np.exp(-(d**2) / (2 * ls**2))),
        ("cosine", lambda d, ls: 1.0 - d),
    ],
)
def test_weights_are_the_kernel_of_the_distances(kernel, expected):
    z = random_points(seed=5)
    graph = graph_of(z, k=4, kernel=kernel, lengthscale=0.3)
    distances = np.asarray(graph.distances, np.float64)
    np.testing.assert_allclose(graph.weights, expected(distances, 0.3), atol=TOL)
    if kernel == "cosine":
        similarity = 1.0 - pairwise_distances(z.astype(np.float64), metric="cosine")
        np.testing.assert_allclose(graph.weights, similarity[graph.senders, graph.receivers], atol=TOL)


def test_median_lengthscale_and_pruning():
    z = random_points(seed=6)
    plain = graph_of(z, k=5, metric="euclidean")
    median = float(np.median(plain.distances))
    graph = graph_of(z, k=5, metric="euclidean", lengthscale="median")
    np.testing.assert_allclose(graph.weights, np.exp(-np.asarray(graph.distances) / median), rtol=1e-6)
    pruned = graph_of(z, k=5, metric="euclidean", lengthscale="median", prune_distance=median)
    keep = np.asarray(plain.distances) <= median
    np.testing.assert_array_equal(pruned.senders, np.asarray(plain.senders)[keep])
    np.testing.assert_array_equal(pruned.receivers, np.asarray(plain.receivers)[keep])
    np.testing.assert_allclose(pruned.weights, np.asarray(graph.weights)[keep])


@pytest.mark.slow
@pytest.mark.parametrize("size", [*range(1, 40), 1000, 1001])
def test_the_median_lengthscale_is_jnps_median(size):
    """Found on the host (no program per edge count), it must be the value jnp.median gives (the oracle;
    odd and even counts, ties)."""
    distances = np.random.default_rng(size).gamma(2.0, size=size).astype(np.float32)
    distances[: size // 3] = distances[-1]  # ties across the middle
    assert median_lengthscale(distances) == float(jnp.median(jnp.asarray(distances)))


@pytest.mark.parametrize(("kernel", "weight_distance"), [("matern12", None), ("rbf", "euclidean")])
def test_edge_work_padded_to_n_k_gives_the_unpadded_weights_and_compiles_once(kernel, weight_distance):
    """Distances and kernel weights are computed over n * k padded edges, so that graphs of other edge
    counts (each round's, each seed's) reuse one program; the weights are those of the unpadded
    computation to 1 ulp (XLA's CPU exp can differ by 1 ulp between vector lanes and the loop's tail),
    and another graph of the same n, k and d compiles nothing."""
    settings = {"k": 6, "kernel": kernel, "weight_distance": weight_distance, "lengthscale": "median"}
    graphs = []
    with compile_clock() as clock:
        for seed in (40, 41, 42):
            compiled = clock.seconds()["total"]
            graphs.append(graph_of(random_points(n=311, d=9, seed=seed), **settings))
            compiled = clock.seconds()["total"] - compiled
    assert len({graph.n_edges for graph in graphs}) == 3  # three edge counts
    assert compiled == 0.0  # the third graph: nothing compiled
    for seed, graph in zip((40, 41, 42), graphs, strict=True):
        if weight_distance is not None:
            points, senders, receivers = random_points(n=311, d=9, seed=seed), graph.senders, graph.receivers
            unpadded = pair_distances(points, np.asarray(senders), np.asarray(receivers), weight_distance)
            np.testing.assert_array_equal(graph.distances, unpadded)
        lengthscale = float(jnp.median(jnp.asarray(graph.distances)))
        expected = np.asarray(edge_weights(jnp.asarray(graph.distances), kernel, lengthscale))
        np.testing.assert_allclose(graph.weights, expected, rtol=EPS32, atol=0)


def test_graph_from_knn_reuses_a_search():
    z = random_points(seed=7)
    neighbours = knn(z, 5, "cosine", progress=False)
    reused = graph_from_knn(z, neighbours, GraphSettings(kernel="rbf", weight_distance=None))
    built = graph_of(z, k=5, kernel="rbf")
    for field, expected in zip(reused, built, strict=True):
        np.testing.assert_array_equal(field, expected)
    with pytest.raises(ValueError, match="z has 202 rows but the kNN result has 203"):
        graph_from_knn(z[:-1], neighbours)


def test_symmetrise_unions_both_directions_once():
    indices = np.array([[1, 2], [0, 2], [3, 0], [2, 1]])
    distances = np.array([[1.0, 2.0], [1.0, 3.0], [4.0, 2.0], [4.0, 3.0]], np.float32)
    senders, receivers, edge_distances = symmetrise(indices, distances)
    np.testing.assert_array_equal(senders, [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(receivers, [1, 2, 2, 3, 3])
    np.testing.assert_array_equal(edge_distances, [1.0, 2.0, 3.0, 3.0, 4.0])
    senders, receivers, _ = symmetrise(np.array([[0, 1], [1, 0]]), np.zeros((2, 2), np.float32))
    assert senders.tolist() == [0] and receivers.tolist() == [1], "self loops must be dropped"


@pytest.mark.parametrize("metric", METRICS)
def test_pair_distances_match_sklearn(metric):
    z = random_points(n=60, d=5, seed=8)
    z[7] = 0.0
    rng = np.random.default_rng(0)
    senders, receivers = rng.integers(0, 60, 500), rng.integers(0, 60, 500)
    senders, receivers = senders[senders != receivers], receivers[senders != receivers]
    expected = pairwise_distances(z.astype(np.float64), metric=metric)[senders, receivers]
    got = pair_distances(z, senders, receivers, metric, chunk_size=64)
    np.testing.assert_allclose(got, expected, atol=TOL)


@pytest.mark.parametrize(
    ("z", "kwargs", "message"),
    [
        (np.zeros(10, np.float32), {}, "2-D"),
        (np.zeros((10, 0), np.float32), {}, "no features"),
        (np.zeros((10, 2), np.complex64), {}, "real numbers"),
        (np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]), {"k": 1}, "row 1"),
        (np.array([[0.0, 1.0], [1e300, 0.0], [1.0, 1.0]]), {"k": 1}, "float32"),
        (np.array([[0.0, 1e19], [1.0, 0.0], [1.0, 1.0]]), {"k": 1}, "overflow"),
        (random_points(n=5), {"k": 5}, "k=5"),
        (random_points(n=5), {"k": 0}, "k=0"),
        (random_points(n=5), {"k": 2.0}, "k=2.0"),
        (random_points(n=5), {"metric": "manhattan"}, "metric='manhattan'"),
        (random_points(n=5), {"weight_distance": "dot"}, "weight_distance='dot'"),
        (random_points(n=5), {"kernel": "laplace"}, "kernel='laplace'"),
        (
            random_points(n=5),
            {"kernel": "cosine", "weight_distance": "euclidean"},
            "weight_distance='cosine'",
        ),
        (random_points(n=5), {"lengthscale": 0.0}, "lengthscale=0.0"),
        (random_points(n=5), {"lengthscale": "mean"}, "lengthscale='mean'"),
        (random_points(n=5), {"prune_distance": -1.0}, "prune_distance=-1.0"),
        (random_points(n=5), {"block_size": 0}, "block_size=0"),
        (random_points(n=5), {"max_block_bytes": -3}, "max_block_bytes=-3"),
        (random_points(n=5), {"backend": "annoy"}, "graph.backend='annoy'"),
        (random_points(n=5), {"backend": "faiss_hnsw", "hnsw_m": 1}, "graph.hnsw_m=1"),
        (random_points(n=5), {"backend": "faiss_hnsw", "hnsw_ef_search": 0}, "graph.hnsw_ef_search=0"),
    ],
)
def test_bad_input_raises_a_clear_error(z, kwargs, message):
    kwargs = {"k": 2, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        graph_of(z, **kwargs)


def test_median_lengthscale_of_duplicates_raises():
    z = np.repeat(random_points(n=4, d=2), 5, axis=0)
    with pytest.raises(ValueError, match="median kNN distance is 0"):
        graph_of(z, k=3, metric="euclidean", lengthscale="median")


def test_edge_weights_unknown_kernel():
    with pytest.raises(ValueError, match="kernel='gauss'"):
        edge_weights(np.ones(3, np.float32), "gauss")


@pytest.mark.slow
def test_bench_script_prints_json(tmp_path):
    pytest.importorskip("faiss")
    points = tmp_path / "embeddings.npy"
    np.save(points, random_points(n=400, d=4, seed=4))
    script = Path(__file__).parents[1] / "scripts" / "bench_knn.py"
    args = ["--points", str(points), "--k", "3", "--recall-queries", "50", "--sklearn", "--floor"]
    args += ["--backend", "jax", "faiss", "faiss_hnsw"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True)
    jax_report, flat, hnsw, sklearn = map(json.loads, out.stdout.splitlines())
    assert [r["backend"] for r in (jax_report, flat, hnsw)] == ["jax", "faiss", "faiss_hnsw"]
    for report in (jax_report, flat):
        assert report["recall"] == 1.0 and (report["n"], report["d"], report["k"]) == (400, 4, 3)
        assert report["max_distance_error"] < TOL and report["reported_recall"] is None
    assert jax_report["device"] == "cpu" and flat["device"].startswith("cpu (faiss")
    assert 0 < hnsw["reported_recall"] <= 1 and hnsw["hnsw_m"] == 32
    assert sklearn["sklearn_s"] > 0
    # --floor: the matrix products alone, on the jax backend only
    assert jax_report["floor_s"] > 0 and jax_report["floor_mac_per_s"] > 0
    fraction = jax_report["floor_s"] / jax_report["knn_s"]
    assert jax_report["floor_fraction"] == pytest.approx(fraction, rel=0.01)
    assert "floor_s" not in flat


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
def test_knn_large_matches_sklearn_up_to_float32_ties(metric):
    """n = 20000: a handful of rows swap neighbours whose float64 distances differ by ~1e-7."""
    z = random_points(n=20000, d=32, seed=9)
    result = knn(z, 10, metric, chunk_size=6000, progress=False)
    dist, ind = sklearn_knn(z, 10, metric)
    np.testing.assert_allclose(result.distances, dist, atol=TOL)
    rows = np.flatnonzero((result.indices != ind).any(axis=1))
    assert len(rows) <= 10
    for row in rows:
        ours = pairwise_distances(z[[row]].astype(np.float64), z[result.indices[row]], metric=metric)[0]
        np.testing.assert_allclose(ours, dist[row], atol=TOL)
