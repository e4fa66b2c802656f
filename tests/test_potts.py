"""Tests of the K-state engine (llp_jax.bp.run_potts_bp) against brute-force enumeration of all K^n
labelings (plain numpy over the Gibbs distribution, written independently of the engine), and against the
binary engine at K = 2."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_bp import graph_of, random_tree_factor_graph

from llp_jax.bp import BPSettings, run_bp, run_potts_bp
from llp_jax.bp.potts_factors import (
    class_indicator_cavities,
    joint_count_messages,
    joint_layout,
    potts_pairwise_messages,
)
from llp_jax.data.bags import Bags

pytestmark = pytest.mark.filterwarnings("ignore::llp_jax.bp.CountGapWarning")

EXACT = dict(max_iters=80, damping=0.3, early_stop=False)

# ----------------------------------------------------------------------------------------------------
# Oracles


def log_gibbs(labelings, edges, bags, unary, lambda_s, lambda_b, hard):
    """log p(y) + const for every row of labelings int[K^n, n]: the Potts similarity term, and per bag
    the hard count vector or the soft penalty -lambda_b sum_{c >= 1} (s_c - k_c)^2 (the per-class soft
    factors' model)."""
    senders, receivers, weights = edges
    log_p = unary[np.arange(labelings.shape[1]), labelings].sum(axis=1)
    log_p -= lambda_s * ((labelings[:, senders] != labelings[:, receivers]) * weights).sum(axis=1)
    k = unary.shape[1]
    for members, counts in bags:
        s = np.stack([(labelings[:, members] == c).sum(axis=1) for c in range(k)], axis=1)
        if hard:
            log_p += np.where(np.all(s == counts, axis=1), 0.0, -np.inf)
        else:
            log_p -= lambda_b * ((s[:, 1:] - counts[1:]) ** 2).sum(axis=1)
    return log_p


def brute_marginals(n, k, edges, bags, unary, lambda_s, lambda_b, hard, temperature=1.0):
    """P(y_i = a) under p(y)^(1/T): float[n, K]."""
    labelings = np.array(list(itertools.product(range(k), repeat=n)))
    log_p = log_gibbs(labelings, edges, bags, unary, lambda_s, lambda_b, hard) / temperature
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    return np.stack([np.bincount(labelings[:, i], p, minlength=k) for i in range(n)])


def class_bags(bags, n_classes):
    """Bags with count vectors from [(members, counts float[K])], padded to the largest bag."""
    width = max(len(m) for m, _ in bags)
    members = np.zeros((len(bags), width), np.int32)
    mask = np.zeros((len(bags), width), bool)
    for b, (m, _) in enumerate(bags):
        members[b, : len(m)], mask[b, : len(m)] = m, True
    counts = np.array([c for _, c in bags], np.float32).reshape(len(bags), n_classes)
    return Bags(members, mask, mask.sum(axis=1).astype(np.int32), counts)


def random_count_vector(rng, size, k):
    """A count vector of `size` members over k classes."""
    return np.bincount(rng.integers(0, k, size), minlength=k).astype(np.float64)


def tree_case(seed, n, k, bag_sizes, n_edges):
    """A random similarity forest with bags whose factor graph (one factor a bag) is a forest, a unary
    and count vectors: n, edges, bags [(members, counts)], unary float[n, K]."""
    rng = np.random.default_rng(seed)
    edges, bags = random_tree_factor_graph(rng, n, bag_sizes, n_edges)
    bags = [(m, random_count_vector(rng, len(m), k)) for m, _ in bags]
    return n, edges, bags, rng.normal(0.0, 1.0, (n, k))


def potts(n, k, edges, bags, settings, unary):
    bag_tuple = class_bags(bags, k) if bags else None
    return run_potts_bp(graph_of(n, *edges), bag_tuple, settings, unary=unary, n_classes=k)


# ----------------------------------------------------------------------------------------------------
# Exactness where BP is exact


@pytest.mark.parametrize("k", [3, 4])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_potts_marginals_on_a_tree_are_exact(k, temperature):
    n, edges, _, unary = tree_case(k, 8, k, [], 7)
    settings = BPSettings(lambda_s=0.9, temperature=temperature, **EXACT)
    result = potts(n, k, edges, [], settings, unary)
    expected = brute_marginals(n, k, edges, [], unary, 0.9, 0.0, False, temperature)
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=1e-5)
    assert float(result.deltas[-1]) < 1e-5
    assert np.abs(expected - expected.mean(axis=1, keepdims=True)).max() > 0.1  # the graph matters


def test_max_product_picks_the_map_labelling_on_a_tree():
    n, k = 7, 3
    n, edges, _, unary = tree_case(11, n, k, [], 6)
    result = potts(n, k, edges, [], BPSettings(lambda_s=0.9, temperature=0.0, **EXACT), unary)
    labelings = np.array(list(itertools.product(range(k), repeat=n)))
    best = labelings[np.argmax(log_gibbs(labelings, edges, [], unary, 0.9, 0.0, False))]
    np.testing.assert_array_equal(np.argmax(np.asarray(result.marginals), axis=1), best)


@pytest.mark.parametrize("k", [3, 4])
def test_joint_count_factor_on_a_tree_is_exact(k):
    """Bags on disjoint similarity trees: with the joint factor the factor graph is a tree."""
    n, edges, bags, unary = tree_case(20 + k, 8 if k == 3 else 7, k, [3, 2], 3)
    settings = BPSettings(lambda_s=0.7, hard_counts=True, joint_counts=True, **EXACT)
    result = potts(n, k, edges, bags, settings, unary)
    expected = brute_marginals(n, k, edges, bags, unary, 0.7, 0.0, True)
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(result.count_gap), 0.0, atol=1e-5)


def enumerated_joint_messages(cavity, counts):
    """float64 messages of the hard count-vector factor by enumeration of the other members' labels,
    relative to each member's largest entry (-inf where impossible)."""
    width, k = cavity.shape
    prob = np.exp(cavity - cavity.max(axis=1, keepdims=True))
    prob /= prob.sum(axis=1, keepdims=True)
    out = np.full((width, k), -np.inf)
    for i in range(width):
        others = [j for j in range(width) if j != i]
        total = np.zeros(k)
        for labels in itertools.product(range(k), repeat=len(others)):
            s = np.bincount(labels, minlength=k)
            for a in range(k):
                if np.array_equal(s + np.eye(k, dtype=int)[a], counts):
                    total[a] += np.prod(prob[others, labels])
        with np.errstate(divide="ignore"):
            out[i] = np.log(total) - np.log(total.max())
    return out


@pytest.mark.parametrize(
    "k, sizes",
    [
        (3, [6, 4, 1]),
        pytest.param(4, [5, 3], marks=pytest.mark.slow),
        pytest.param(10, [5, 2], marks=pytest.mark.slow),
    ],
)
def test_joint_count_messages_match_enumeration(k, sizes):
    rng = np.random.default_rng(k)
    width = max(sizes)
    cavity = rng.normal(0.0, 2.0, (len(sizes), width, k))
    mask = np.arange(width) < np.array(sizes)[:, None]
    counts = np.stack([random_count_vector(rng, s, k) for s in sizes]).astype(np.int64)
    got = np.asarray(joint_count_messages(cavity.astype(np.float32), mask, joint_layout(counts), 1.0))
    for b, size in enumerate(sizes):
        expected = enumerated_joint_messages(cavity[b, :size], counts[b])
        np.testing.assert_array_equal(np.isinf(got[b, :size]), np.isinf(expected))
        finite = np.isfinite(expected)
        # float32 products of up to 2 width probabilities, then one log: a few ulps of each entry
        np.testing.assert_allclose(got[b, :size][finite], expected[finite], atol=2e-5)
        assert np.all(got[b, size:] == 0.0)
        assert size == 1 or np.ptp(expected[finite]) > 0.5  # the messages differ between classes


# ----------------------------------------------------------------------------------------------------
# K = 2 is the binary engine


def loopy_case(seed, n, density, bag_size):
    rng = np.random.default_rng(seed)
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < density])
    edges = (pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32), rng.uniform(0.1, 1.0, len(pairs)))
    starts = range(0, n, bag_size)
    positives = [int(rng.integers(0, min(bag_size, n - s) + 1)) for s in starts]
    members = [np.arange(s, min(s + bag_size, n)) for s in starts]
    return rng, edges, members, positives


@pytest.mark.parametrize(
    "bag_factor, hard",
    [("count", True), pytest.param("count", False, marks=pytest.mark.slow), ("gaussian", False)],
)
def test_two_states_agree_with_the_binary_engine(bag_factor, hard):
    rng, edges, members, positives = loopy_case(4, 60, 0.08, 12)
    n = 60
    logit = rng.normal(0.0, 1.0, n)
    settings = BPSettings(
        lambda_s=0.4, lambda_b=0.5, bag_factor=bag_factor, hard_counts=hard, max_iters=600, tol=1e-7,
        marginal_tol=0.0,
    )  # fmt: skip
    binary_bags = Bags(*class_bags([(m, [0.0]) for m in members], 1)[:3], np.float32(positives))
    binary = run_bp(graph_of(n, *edges), binary_bags, settings, unary=logit)
    two = [(m, [len(m) - p, p]) for m, p in zip(members, positives, strict=True)]
    result = potts(n, 2, edges, two, settings, np.stack([np.zeros(n), logit], axis=1))
    assert bool(binary.converged) and bool(result.converged)
    np.testing.assert_allclose(np.asarray(result.marginals)[:, 1], np.asarray(binary.marginals), atol=1e-5)
    np.testing.assert_allclose(np.asarray(result.marginals).sum(axis=1), 1.0, atol=1e-6)
    assert np.ptp(np.asarray(binary.marginals)) > 0.5


# ----------------------------------------------------------------------------------------------------
# Loops: per-class factors near brute force


def test_per_class_factors_on_a_loopy_graph_are_close_to_brute_force():
    k, n = 3, 8
    rng, edges, members, _ = loopy_case(7, n, 0.3, 4)
    bags = [(m, random_count_vector(rng, len(m), k)) for m in members]
    unary = rng.normal(0.0, 1.0, (n, k))
    settings = BPSettings(lambda_s=0.3, hard_counts=True, max_iters=300, tol=1e-6, marginal_tol=0.0)
    result = potts(n, k, edges, bags, settings, unary)
    assert bool(result.converged)
    expected = brute_marginals(n, k, edges, bags, unary, 0.3, 0.0, True)
    error = np.abs(np.asarray(result.marginals) - expected).max()
    assert error < 0.1, error  # loopy BP: approximate, but it must follow the counts and the graph
    np.testing.assert_allclose(np.asarray(result.count_gap), 0.0, atol=0.02)


# ----------------------------------------------------------------------------------------------------
# Message maths


def test_potts_pairwise_messages_match_a_float64_formula_even_at_extreme_cavities():
    rng = np.random.default_rng(0)
    k, n_edges = 5, 40
    beliefs = rng.normal(0.0, 30.0, (2 * n_edges, k))
    beliefs[:5, 2] += 200.0  # one class far above the others
    senders = np.stack([np.arange(n_edges), np.arange(n_edges, 2 * n_edges)])
    couplings = np.stack([rng.uniform(0.0, 20.0, n_edges)] * 2)
    couplings[:, :3] = 0.0
    messages = rng.normal(0.0, 1.0, (2, n_edges, k))
    got = np.asarray(
        potts_pairwise_messages(
            beliefs.astype(np.float32), messages.astype(np.float32), senders, couplings.astype(np.float32),
            np.float32(1.0), False,
        )
    )  # fmt: skip
    cavity = beliefs[senders] - messages[::-1]
    table = np.exp(-couplings[..., None, None] * (1.0 - np.eye(k)))  # [2, E, a(sender), b(receiver)]
    shift = cavity.max(axis=-1, keepdims=True)
    expected = np.log(np.einsum("rea,reab->reb", np.exp(cavity - shift), table))
    expected -= expected[..., :1]
    # |m| <= J <= 20: the float32 of cavities up to ~300 and of the result, a few ulps of each
    np.testing.assert_allclose(got, expected, atol=4e-4)
    assert np.all(np.isfinite(got)) and np.all(got[:, :3] == 0.0)


def test_class_indicator_cavities_match_a_float64_formula_without_overflow():
    rng = np.random.default_rng(1)
    k = 4
    beliefs = rng.normal(0.0, 3.0, (50, k))
    beliefs[:10] *= 100.0
    beliefs[10:13] = 0.0  # ties
    beliefs[:, 0] = 0.0
    bag = np.concatenate([np.zeros((50, 1)), rng.normal(0.0, 1.0, (50, k - 1))], axis=1)
    got = np.asarray(class_indicator_cavities(beliefs.astype(np.float32), bag.astype(np.float32), 1.0, False))
    expected = np.empty((50, k - 1))
    for c in range(1, k):
        rest = np.delete(beliefs, c, axis=1)
        top = rest.max(axis=1)
        expected[:, c - 1] = beliefs[:, c] - bag[:, c] - top - np.log(np.exp(rest - top[:, None]).sum(axis=1))
    # beliefs up to ~1e3: float32 rounding of each term, ~1e3 * 6e-8 * a few
    np.testing.assert_allclose(got, expected, atol=5e-4)
    maxed = np.asarray(
        class_indicator_cavities(beliefs.astype(np.float32), bag.astype(np.float32), 1.0, True)
    )
    expected_max = np.stack(
        [beliefs[:, c] - bag[:, c] - np.delete(beliefs, c, axis=1).max(axis=1) for c in range(1, k)], axis=1
    )
    np.testing.assert_allclose(maxed, expected_max, atol=5e-4)


# ----------------------------------------------------------------------------------------------------
# Bad input


def three_class_case():
    _, edges, members, _ = loopy_case(3, 12, 0.2, 6)
    return graph_of(12, *edges), members


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(counts=[[1, 2, 3], [2, 2]]), r"count vector|shape"),
        (dict(counts=[[1, 2, 2], [2, 2, 2]]), r"bag 0's count vector sums to 5 but the bag has 6 members"),
        (dict(counts=[[-1, 4, 3], [2, 2, 2]]), r"bags.counts\[0, 0\]=-1.0; counts must be finite and >= 0"),
        (dict(counts=[[1.5, 1.5, 3], [2, 2, 2]], hard=True), r"hard_counts=True needs integer counts"),
        (dict(unary=np.zeros((12, 4))), r"the number of classes disagrees"),
        (dict(settings=dict(bag_factor="clique")), r"bp.bag_factor='clique' has no K-class form"),
        (dict(settings=dict(joint_counts=True)), r"joint_counts=true is the exact factor of hard count"),
        (dict(weights=-1.0), r"weights\[0\]=-1.0 < 0"),
    ],
    ids=lambda v: None if isinstance(v, str) else "-".join(v),
)
def test_bad_input_is_refused_by_name(change, match):
    graph, members = three_class_case()
    counts = change.get("counts", [[1, 2, 3], [2, 2, 2]])
    if len(counts[0]) != len(counts[1]):
        bags = Bags(*class_bags([(m, [0.0, 0.0, 0.0]) for m in members], 3)[:3], np.array([3.0, 3.0]))
    else:
        bags = class_bags([(m, c) for m, c in zip(members, counts, strict=True)], 3)
    if "weights" in change:
        graph = graph._replace(weights=np.where(np.arange(graph.n_edges) == 0, -1.0, graph.weights))
    settings = BPSettings(hard_counts=change.get("hard", False), **change.get("settings", {}))
    with pytest.raises(ValueError, match=match):
        run_potts_bp(graph, bags, settings, unary=change.get("unary"))


def test_a_joint_factor_too_large_is_refused_naming_the_bag():
    graph = graph_of(60, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    bags = class_bags([(np.arange(12), [4, 4, 4]), (np.arange(12, 60), [16, 16, 16])], 3)
    with pytest.raises(ValueError, match=r"bag 1 has 4913 count vectors u <= k_b, more than the joint"):
        run_potts_bp(graph, bags, BPSettings(hard_counts=True, joint_counts=True))


def test_the_binary_engine_refuses_joint_counts():
    graph, members = three_class_case()
    bags = Bags(*class_bags([(m, [0.0]) for m in members], 1)[:3], np.float32([2, 3]))
    with pytest.raises(ValueError, match="joint_counts=true is for K-class count vectors"):
        run_bp(graph, bags, BPSettings(hard_counts=True, joint_counts=True))
