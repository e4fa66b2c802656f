"""Numerics at the edges of the range (issue 12): BP for lambda_s, lambda_b from 1e-2 to 1e4, bags of 1 to
4,096 members, all-zero and all-one bags, duplicate points and constant features, and the float32 engine
against float64 oracles: brute-force enumeration (tests/test_bp.py) where BP is exact, a float64 dynamic
program for lone bags, a float64 numpy re-implementation of the same loopy schedule elsewhere, and
scikit-learn's NearestNeighbors for the graph."""

from __future__ import annotations

import jax
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

# The oracles and input builders of the example-based BP tests (tests/ is on the path).
from test_bp import (
    assert_same_but_for_the_order_of_sums,
    bags_of,
    brute_marginals,
    dp_bag_message,
    graph_of,
    quadratic_dp_bag_message,
    random_tree_factor_graph,
    run,
)

from llp_jax.bp import BAG_FACTORS, BPSettings, build_problem, run_bp, solve
from llp_jax.data.bags import random_bags
from llp_jax.data.dataset import Dataset, Split
from llp_jax.data.tabular import TabularEncoder
from llp_jax.graph import GraphSettings, build_graph, knn
from llp_jax.methods import METHODS
from llp_jax.methods.llp_bp import LLPBPSettings, ScheduleSettings
from llp_jax.models import MLPSettings
from llp_jax.train.loop import predict
from llp_jax.train.settings import TrainSettings

pytestmark = pytest.mark.filterwarnings("ignore::llp_jax.bp.CountGapWarning")  # far from counts on purpose

LAMBDAS = (1e-2, 1.0, 1e2, 1e4)
# Every bag factor of the registry with each count it supports: (name, hard).
FACTORS = [
    (name, hard)
    for name in BAG_FACTORS
    for hard in (False, True)
    if not (hard and BAG_FACTORS[name].no_hard_counts)
]
FACTOR_IDS = [f"{name}-{'hard' if hard else 'soft'}" for name, hard in FACTORS]
EPS32 = float(np.finfo(np.float32).eps)


def no_edges(n):
    return graph_of(n, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))


def assert_finite_probabilities(result, what=""):
    marginals = np.asarray(result.marginals)
    assert np.all((marginals >= 0.0) & (marginals <= 1.0)), what  # False for NaN too
    assert not np.any(np.isnan(np.asarray(result.log_odds))), what
    assert np.all(np.isfinite(np.asarray(result.deltas)[: int(result.n_iters)])), what
    assert np.isfinite(float(result.count_gap)), what


def clustered_points(rng, n, n_clusters=6, d=4):
    centres = rng.normal(0.0, 5.0, (n_clusters, d))
    return (centres[rng.integers(0, n_clusters, n)] + rng.normal(size=(n, d))).astype(np.float32)


# ----------------------------------------------------------------------------------------------------
# The lambda grid


@pytest.mark.slow
@pytest.mark.parametrize("bag_factor, hard", FACTORS, ids=FACTOR_IDS)
def test_bp_is_finite_over_the_lambda_grid(bag_factor, hard):
    """A kNN graph of 48 points and bags of 1 to 16 members, among them all-zero and all-one bags, for
    every (lambda_s, lambda_b) in LAMBDAS^2: probabilities, no NaN; a hard count of 0 or |b| decides its
    members whatever lambda_s (the messages' cap lies beyond the similarity field's reach)."""
    rng = np.random.default_rng(0)
    graph = build_graph(clustered_points(rng, 48), GraphSettings(k=5))
    sizes = [1, 1, 2, 3, 5, 8, 12, 16]
    members = np.split(rng.permutation(48), np.cumsum(sizes)[:-1])
    counts = [0, 1, 2, 0, 2, 8, 5, 16]  # k = 0 and k = |b| among them
    bags = bags_of(members, counts)
    unary = rng.normal(0.0, 3.0, 48)
    zero = np.concatenate([m for m, k in zip(members, counts, strict=True) if k == 0])
    full = np.concatenate([m for m, k in zip(members, counts, strict=True) if k == len(m)])
    for lambda_s in LAMBDAS:
        for lambda_b in LAMBDAS:
            settings = BPSettings(lambda_s, lambda_b, bag_factor=bag_factor, hard_counts=hard, max_iters=50)
            result = solve(build_problem(graph, bags, settings, unary), settings)
            assert_finite_probabilities(result, (lambda_s, lambda_b))
            if hard:
                marginals = np.asarray(result.marginals)
                assert np.all(marginals[zero] == 0.0) and np.all(marginals[full] == 1.0), (lambda_s, lambda_b)


def tree_tolerance(problem):
    """The float32 engine against float64 enumeration on a tree, per node: 1e-6 plus 64 float32 epsilons of
    the node's reach (BPProblem.reach: the size of the terms, ~lambda_s times its weighted degree, whose
    sum is its belief; they cancel to a belief of a few units, so their rounding is what is left).
    Measured (seeds 21 to 23, the lambda grid): at most 0.55 of it; at most 6e-4 in all at lambda_s = 1e4,
    4e-6 at 1e2, 7e-7 below; on the loopy graph of `test_float32_loopy_bp_matches_a_float64_reference`,
    at most 0.023 of it."""
    return 1e-6 + 64 * EPS32 * np.asarray(problem.reach, np.float64)


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_tree_marginals_match_enumeration_over_the_lambda_grid(hard):
    """The count factor on a tree (bags of 3 and 4, 6 similarity edges: BP is exact) for every (lambda_s,
    lambda_b) in LAMBDAS^2, against the float64 enumeration of all 2^12 labelings."""
    for seed in (21, 22):
        rng = np.random.default_rng(seed)
        edges, bags = random_tree_factor_graph(rng, 12, [3, 4], 6)
        unary = rng.normal(0.0, 2.0, 12)
        bag_tuple = bags_of([m for m, _ in bags], [k for _, k in bags])
        undecided = 0.0
        for lambda_s in LAMBDAS:
            for lambda_b in LAMBDAS:
                settings = BPSettings(
                    lambda_s, lambda_b, hard_counts=hard, max_iters=60, damping=0.3, early_stop=False
                )
                problem = build_problem(graph_of(12, *edges), bag_tuple, settings, unary)
                result = solve(problem, settings)
                expected = brute_marginals(12, edges, bags, lambda_s, lambda_b, hard, unary)
                if lambda_s == 1e4:
                    undecided = max(undecided, np.minimum(expected, 1.0 - expected).max())
                np.testing.assert_array_less(
                    np.abs(np.asarray(result.marginals) - expected),
                    tree_tolerance(problem),
                    err_msg=f"seed {seed}, lambda_s {lambda_s}, lambda_b {lambda_b}",
                )
        if not hard:  # at lambda_s = 1e4 some marginal is far from 0 and 1, so that the test means something
            assert undecided > 0.3


# ----------------------------------------------------------------------------------------------------
# Bag sizes; all-zero and all-one bags


@pytest.mark.parametrize("bag_factor, hard", FACTORS, ids=FACTOR_IDS)
def test_a_bag_of_one_is_decided_by_its_count(bag_factor, hard):
    """Eight bags of one member, counts 0 and 1, no edges: a hard count gives the member exactly 0 or 1; a
    soft one the exact message log f(1) - log f(0) = lambda_b (2 k - 1) on top of the unary (every factor
    is exact on a bag of one, the Gaussian too: its cavity count is the point 0)."""
    rng = np.random.default_rng(1)
    unary = rng.normal(0.0, 3.0, 8)
    counts = np.arange(8) % 2
    bags = bags_of([[i] for i in range(8)], counts)
    for lambda_b in LAMBDAS:
        # the message is the same every iteration: 40 damped ones leave 0.5^40 of it to go
        settings = BPSettings(
            lambda_b=lambda_b, bag_factor=bag_factor, hard_counts=hard, max_iters=40, early_stop=False
        )
        result = run_bp(no_edges(8), bags, settings, unary=unary)
        assert_finite_probabilities(result, lambda_b)
        marginals = np.asarray(result.marginals, np.float64)
        if hard:
            np.testing.assert_array_equal(marginals, counts)
        else:
            with np.errstate(over="ignore"):  # exp(1e4): the marginal 0
                expected = 1.0 / (1.0 + np.exp(-(unary + lambda_b * (2 * counts - 1))))
            np.testing.assert_allclose(marginals, expected, rtol=1e-5, atol=1e-7, err_msg=str(lambda_b))


def zero_and_one_bags(sizes, rng):
    """For each size, two bags: all-zero (k = 0) and all-one (k = |b|), each member pulled the wrong way
    by its unary (+-U(1, 5)) and chained to the next member of its bag (w = 1). Bags of all sizes batch
    together in one problem (padded to the largest), as the engine lays them out. Returns the graph, the
    bags, the unary and each bag's (members, count)."""
    bags, start, chain = [], 0, []
    for size in sizes:
        for count in (0, size):
            members = np.arange(start, start + size)
            bags.append((members, float(count)))
            chain.append(members[:-1])
            start += size
    chain = np.concatenate(chain).astype(np.int32)
    unary = np.concatenate([rng.uniform(1.0, 5.0, len(m)) * (1.0 if k == 0 else -1.0) for m, k in bags])
    graph = graph_of(start, chain, chain + 1, np.ones(len(chain)))
    return graph, bags_of([m for m, _ in bags], [k for _, k in bags]), unary, bags


# The clique factor (faithful reproduction at small bags only: |b|^2 / 2 edges a bag) has no large case:
# a bag of 4,096 would be 8.4 million edges.
ZERO_AND_ONE_CASES = [
    *(
        pytest.param((1, 2, 3, 17, 256), name, hard, id=f"up-to-256-{i}")
        for (name, hard), i in zip(FACTORS, FACTOR_IDS, strict=True)
    ),
    *(
        pytest.param((1000, 4096), name, hard, marks=pytest.mark.slow, id=f"1000-and-4096-{i}")
        for (name, hard), i in zip(FACTORS, FACTOR_IDS, strict=True)
        if name != "clique"
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("sizes, bag_factor, hard", ZERO_AND_ONE_CASES)
def test_all_zero_and_all_one_bags_hold_at_a_large_lambda_b(sizes, bag_factor, hard):
    """k = 0 and k = |b| at lambda_b = 1e4 (lambda_s = 1), bags of 1 to 256 (1,000 and 4,096: slow): every
    of an all-zero bag within 1e-6 of 0, of an all-one bag within 1e-6 of 1, against unaries of up to 5
    the other way. The soft message towards the count is at least lambda_b in size (a weighted mean of
    log f(s+1) - log f(s)); the Gaussian factor gave about -1 at k = 0 (11% of a bag of 1,000 positive)
    until held to those bounds."""
    if bag_factor == "clique":  # small bags only (ZERO_AND_ONE_CASES)
        sizes = tuple(size for size in sizes if size <= 17)
    graph, bag_tuple, unary, bags = zero_and_one_bags(sizes, np.random.default_rng(8))
    settings = BPSettings(lambda_s=1.0, lambda_b=1e4, bag_factor=bag_factor, hard_counts=hard)
    result = run_bp(graph, bag_tuple, settings, unary=unary)
    assert_finite_probabilities(result)
    marginals = np.asarray(result.marginals)
    for members, count in bags:
        target = 0.0 if count == 0 else 1.0
        assert np.abs(marginals[members] - target).max() < 1e-6, (len(members), count)


def lone_bag_oracle(unary, count, lambda_b, hard):
    """Marginals float64[|b|] of one bag without edges (a star: BP is exact): sigmoid(u_i + mu_i), mu the
    float64 message of the bag to its member (O(|b|^2))."""
    message = quadratic_dp_bag_message(unary, count, lambda_b, hard)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-(unary + message)))


@pytest.mark.slow
@pytest.mark.parametrize(
    "sizes, hard",
    [
        ((2, 3, 5, 64, 256), True),
        ((2, 3, 5, 64, 200), False),
        pytest.param((1000, 4096), True, marks=pytest.mark.slow),
    ],
    ids=["hard", "soft", "hard-1000-and-4096"],
)
def test_lone_bags_match_a_float64_dp_and_hold_a_hard_count(sizes, hard):
    """Bags of 2 to 256 members (1,000 and 4,096: slow), no edges, count factor, in one problem; unaries
    N(0, 4) with a tenth of them at +-30 (confident members), k = 30% of each bag; every lambda_b for soft
    counts: within 1e-5 of the float64 oracle (measured: 3e-7 at most), and the marginals of a
    bag with a hard count sum to k within 1e-4 |b|."""
    rng = np.random.default_rng(9)
    unaries = []
    for size in sizes:
        unary = rng.normal(0.0, 4.0, size)
        unary[rng.random(size) < 0.1] = 30.0 * rng.choice([-1.0, 1.0])
        unaries.append(unary)
    counts = [float(round(0.3 * size)) for size in sizes]
    members = np.split(np.arange(sum(sizes)), np.cumsum(sizes)[:-1])
    bags = bags_of(members, counts)
    for lambda_b in LAMBDAS if not hard else LAMBDAS[:1]:  # lambda_b plays no part in a hard count
        settings = BPSettings(lambda_b=lambda_b, hard_counts=hard, tol=1e-6, marginal_tol=0.0)  # to tol
        result = run_bp(no_edges(sum(sizes)), bags, settings, unary=np.concatenate(unaries))
        assert_finite_probabilities(result, lambda_b)
        marginals = np.asarray(result.marginals, np.float64)
        for bag, unary, count in zip(members, unaries, counts, strict=True):
            expected = lone_bag_oracle(unary, count, lambda_b, hard)
            np.testing.assert_allclose(marginals[bag], expected, atol=1e-5, err_msg=f"{len(bag)} {lambda_b}")
            if hard:
                assert abs(marginals[bag].sum() - count) <= 1e-4 * len(bag), len(bag)


# ----------------------------------------------------------------------------------------------------
# Duplicate points


def duplicated_points(rng):
    """float32[120, 4]: 50 distinct rows, 40 repeats of some of them, 12 copies of one row (more ties than
    k = 5 neighbours), 6 copies of another, and 12 all-zero rows."""
    distinct = rng.normal(size=(50, 4))
    rows = [distinct, distinct[rng.integers(0, 50, 40)], np.repeat(distinct[:1], 12, 0)]
    rows += [np.repeat(distinct[1:2], 6, 0), np.zeros((12, 4))]
    return np.concatenate(rows)[rng.permutation(120)].astype(np.float32)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_graph_of_duplicate_points_is_valid_and_bp_finite_on_it(metric):
    """Zero distances and ties: the neighbours are other rows, each once, at the distances scikit-learn's
    float64 brute force finds (whichever of the tied rows were picked); the graph has no self loops, each
    edge once, weights exp(-d) in (0, 1], 1 exactly between copies; BP at lambda 1e4 stays finite (on the
    cosine graph)."""
    z = duplicated_points(np.random.default_rng(2))
    n, k = len(z), 5
    result = knn(z, k, metric, progress=False)
    assert not np.any(result.indices == np.arange(n)[:, None])
    assert all(len(set(row)) == k for row in result.indices) and result.indices.max() < n
    expected, _ = (
        NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric).fit(z.astype(float)).kneighbors()
    )
    np.testing.assert_allclose(result.distances, expected, atol=1e-5)
    full = pairwise_distances(z.astype(np.float64), metric=metric)
    np.testing.assert_allclose(result.distances, np.take_along_axis(full, result.indices, 1), atol=1e-5)

    graph = build_graph(z, GraphSettings(k=k, metric=metric))  # weights on the euclidean distance
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    weights = np.asarray(graph.weights)
    assert np.all(senders < receivers) and len(set(zip(senders, receivers, strict=True))) == graph.n_edges
    assert np.all(np.isfinite(weights)) and np.all((weights > 0.0) & (weights <= 1.0))
    copies = np.all(z[senders] == z[receivers], axis=1)
    assert copies.sum() > 50  # many edges between copies, so that the test means something
    np.testing.assert_array_equal(weights[copies], 1.0)

    bags = random_bags(n, 8, (np.arange(n) % 3 == 0).astype(np.int32), seed=0)
    if metric == "cosine":  # each graph's edge count is a new compile of BP
        for hard in (False, True):
            assert_finite_probabilities(run_bp(graph, bags, BPSettings(1e4, 1e4, hard_counts=hard)), hard)


# ----------------------------------------------------------------------------------------------------
# Constant features


def constant_frame(rng, n):
    """Columns: varying, constant 0, constant 5, constant 1e12, 0.1 summed three ways (equal up to float64
    rounding), and a varying column of tiny spread."""
    tenth = np.where(np.arange(n) % 2 == 0, 0.1, 0.3 - 0.2)
    return pd.DataFrame(
        {
            "varying": rng.normal(size=n),
            "zero": np.zeros(n),
            "five": np.full(n, 5.0),
            "huge": np.full(n, 1e12),
            "tenth": tenth,
            "tiny": 1e-3 * rng.normal(size=n),
        }
    )


def test_standardisation_of_constant_columns_is_finite():
    """TabularEncoder (the loaders' standardisation): constant columns, at any magnitude and up to float64
    rounding, encode as 0 on the training rows and finitely elsewhere; the others get unit variance."""
    rng = np.random.default_rng(3)
    train = constant_frame(rng, 200)
    encoder = TabularEncoder.fit(train, list(train.columns))
    x = encoder.transform(train)
    assert np.all(np.isfinite(x)) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, 1:4], 0.0)
    np.testing.assert_allclose(x[:, 4], 0.0, atol=1e-9)
    np.testing.assert_allclose(x[:, [0, 5]].std(axis=0), 1.0, rtol=1e-5)
    other = constant_frame(rng, 50).assign(zero=1.0, five=-5.0, huge=1e12 + 1.0)  # not constant there
    assert np.all(np.isfinite(encoder.transform(other)))
    everything_constant = train[["zero", "five", "huge"]]
    x = TabularEncoder.fit(everything_constant, list(everything_constant.columns)).transform(
        everything_constant
    )
    np.testing.assert_array_equal(x, 0.0)


def constant_features(name, rng, n):
    """float32[n, 4]: one column constant, all columns constant, or every row zero."""
    if name == "one column":
        return np.c_[rng.normal(size=(n, 3)), np.full(n, 5.0)].astype(np.float32)
    return np.full((n, 4), 5.0 if name == "all columns" else 0.0, np.float32)


CONSTANT = ["one column", "all columns", "zero rows"]


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("name", CONSTANT)
def test_graph_and_bp_of_constant_features_are_finite(name, metric):
    """Constant columns, identical rows, zero rows (cosine distance 1 to everything): finite weights in
    (0, 1], no self loops; BP finite at lambda 1e4 on the cosine graph (the default metric) of identical
    rows, whose ties are broken by index, so that the first rows become hubs of degree ~n."""
    z = constant_features(name, np.random.default_rng(4), 96)
    graph = build_graph(z, GraphSettings(k=5, metric=metric))
    weights = np.asarray(graph.weights)
    assert np.all(np.asarray(graph.senders) < np.asarray(graph.receivers))
    assert np.all(np.isfinite(weights)) and np.all((weights > 0.0) & (weights <= 1.0))
    if name != "one column":  # identical rows: every distance 0 (cosine: zero rows are at 1 from all)
        expected = 1.0 if (name, metric) == ("zero rows", "cosine") else 0.0
        np.testing.assert_array_equal(np.asarray(graph.distances), 0.0)  # weights: euclidean distance
        np.testing.assert_array_equal(knn(z, 5, metric, progress=False).distances, expected)
    if (name, metric) == ("all columns", "cosine"):  # each graph's edge count is a new compile of BP
        bags = random_bags(96, 16, (np.arange(96) % 4 == 0).astype(np.int32), seed=0)
        for hard in (False, True):
            assert_finite_probabilities(run_bp(graph, bags, BPSettings(1e4, 1e4, hard_counts=hard)), hard)


def method_settings(method):
    """One epoch of a small MLP; LLP-BP with one round and no warm start (the graph on the raw features)."""
    train = TrainSettings(epochs=1, batch_size=64, progress=False)
    if method == "llp_bp":
        schedule = ScheduleSettings(rounds=1, warm_start="none")
        return LLPBPSettings(MLPSettings((8, 4)), train, bp=BPSettings(max_iters=20), schedule=schedule)
    return METHODS[method].settings(MLPSettings((8, 4)), train)


FAST = {("dllp", "all columns")}


@pytest.mark.parametrize(
    "method, name",
    [
        (method, name) if (method, name) in FAST else pytest.param(method, name, marks=pytest.mark.slow)
        for method in sorted(METHODS)
        for name in CONSTANT
    ],
)
def test_one_epoch_on_constant_features_stays_finite(method, name):
    """Every method trains one epoch on constant features (by default dllp on identical rows; the rest
    slow, llp_bp through its graph and BP): finite predictions and every number it logs finite."""
    rng = np.random.default_rng(5)
    n = 192
    y = (rng.random(n) < 0.3).astype(np.int32)
    split = Split(x=constant_features(name, rng, n), y=y)
    bags = random_bags(n, 16, y, seed=0)
    records = []
    result = METHODS[method].fit(
        Dataset("constant", split, split, split),
        bags,
        bags,
        method_settings(method),
        jax.random.key(0),
        records.append,
    )
    logits, embedding = predict(result.model, split.x)
    assert np.all(np.isfinite(logits)) and np.all(np.isfinite(embedding))
    numbers = [(key, value) for r in records for key, value in r.items() if isinstance(value, float)]
    assert numbers and all(np.isfinite(value) for _, value in numbers), [
        kv for kv in numbers if not np.isfinite(kv[1])
    ]


# ----------------------------------------------------------------------------------------------------
# float32 against float64


def float64_bp(n, edges, bags, lambda_s, lambda_b, hard, unary, iters, damping):
    """The engine's schedule (DESIGN.md section 3: parallel updates, damping, bag messages clipped at
    max reach + 1e3) re-implemented in float64 numpy, the bag messages by `dp_bag_message`. Marginals."""
    senders, receivers, weights = (np.asarray(a) for a in edges)
    field = unary - lambda_s * (np.bincount(senders, weights, n) + np.bincount(receivers, weights, n))
    coupling = 2.0 * lambda_s * weights
    # each pairwise message lies between 0 and its coupling (> 0 here): a belief without its bag message
    # lies between the field and the field plus every incoming coupling
    highest = field + np.bincount(receivers, coupling, n) + np.bincount(senders, coupling, n)
    cap = np.abs(np.r_[field, highest]).max() + 1e3
    forward, backward = np.zeros(len(senders)), np.zeros(len(senders))  # along s -> r, against r -> s
    bag_messages = [np.zeros(len(members)) for members, _ in bags]

    def beliefs():
        b = field + np.bincount(receivers, forward, n) + np.bincount(senders, backward, n)
        for (members, _), message in zip(bags, bag_messages, strict=True):
            b[members] += message
        return b

    for _ in range(iters):
        b = beliefs()
        out, into = b[senders] - backward, b[receivers] - forward  # cavities of s -> r and r -> s
        new_forward = np.logaddexp(0.0, coupling + out) - np.logaddexp(0.0, out)
        new_backward = np.logaddexp(0.0, coupling + into) - np.logaddexp(0.0, into)
        new_bags = [
            np.clip(dp_bag_message(b[members] - message, count, lambda_b, hard), -cap, cap)
            for (members, count), message in zip(bags, bag_messages, strict=True)
        ]
        forward = damping * forward + (1.0 - damping) * new_forward
        backward = damping * backward + (1.0 - damping) * new_backward
        bag_messages = [
            damping * old + (1.0 - damping) * new for old, new in zip(bag_messages, new_bags, strict=True)
        ]
    return 1.0 / (1.0 + np.exp(-beliefs()))


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
@pytest.mark.parametrize("lambda_s, lambda_b", [(0.3, 1.0), (1.0, 10.0), (1e2, 1e2)])
def test_float32_loopy_bp_matches_a_float64_reference(lambda_s, lambda_b, hard):
    """A kNN graph of 96 points (loops) and bags of 16, 60 damped iterations of the float32 engine against
    the same 60 in float64: the difference is float32 rounding alone, within `tree_tolerance` (measured:
    1.6e-7 at most where BP converges, 1.2e-5 at lambda = 1e2, where it does not but its marginals settle).
    At lambda_s = 1e4 on this graph the messages oscillate and the two runs end up apart (by up to 1):
    there rounding picks the outcome and no tolerance holds; both stay finite (the lambda grid test)."""
    rng = np.random.default_rng(6)
    n = 96
    graph = build_graph(clustered_points(rng, n), GraphSettings(k=5))
    members = rng.permutation(n).reshape(6, 16)
    counts = rng.integers(0, 17, 6).astype(float)
    unary = rng.normal(0.0, 1.0, n)
    settings = BPSettings(lambda_s, lambda_b, hard_counts=hard, max_iters=60, early_stop=False)
    problem = build_problem(graph, bags_of(members, counts), settings, unary)
    result = solve(problem, settings)
    edges = (np.asarray(graph.senders), np.asarray(graph.receivers), np.asarray(graph.weights, np.float64))
    expected = float64_bp(
        n, edges, list(zip(members, counts, strict=True)), lambda_s, lambda_b, hard, unary, 60, 0.5
    )
    assert (
        np.minimum(expected, 1.0 - expected).max() > 0.1
    )  # not all decided, so that the test means something
    np.testing.assert_array_less(np.abs(np.asarray(result.marginals) - expected), tree_tolerance(problem))


# max-product, where the dtype leaked, by default; sum-product slow
X64_FAST = {("count", False, 0.0), ("clique", False, 0.0)}


@pytest.mark.parametrize(
    "bag_factor, hard, temperature",
    [
        (name, hard, t)
        if (name, hard, t) in X64_FAST
        else pytest.param(name, hard, t, marks=pytest.mark.slow)
        for name, hard in FACTORS
        for t in (1.0, 0.0)
        if not (t == 0.0 and BAG_FACTORS[name].no_max_product)
    ],
)
def test_x64_mode_leaves_the_engine_in_float32(bag_factor, hard, temperature):
    """The engine computes in float32 by design (build_problem casts), so with jax_enable_x64 on it must
    give the same float32 result; max-product's padding constant and marginals came out float64 and the
    loop's carry types clashed (TypeError)."""
    rng = np.random.default_rng(7)
    edges, bags = random_tree_factor_graph(rng, 12, [3, 4], 6)
    unary = rng.normal(0.0, 1.0, 12)
    settings = BPSettings(0.8, 0.6, bag_factor=bag_factor, hard_counts=hard, temperature=temperature)
    default = run(12, edges, bags, settings, unary)
    with jax.enable_x64(True):
        wide = run(12, edges, bags, settings, unary)
    for name, a, b in zip(default._fields, default, wide, strict=True):
        assert np.asarray(b).dtype == np.asarray(a).dtype, name
    # The same float32 program: bitwise on the CPU; on a GPU two compilations' scatter-adds may sum in
    # other orders, within the float32 bound of test_bp.reordering_bound.
    bag_tuple = bags_of([m for m, _ in bags], [k for _, k in bags])
    problem = build_problem(graph_of(12, *edges), bag_tuple, settings, unary)
    assert_same_but_for_the_order_of_sums(wide, default, problem, settings)
