"""Tests of llp_jax.bp against brute-force enumeration of all 2^n labelings (written independently of the
engine: plain numpy over the Gibbs distribution), and against a float64 dynamic program for the bag
messages of larger bags."""

from __future__ import annotations

import itertools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import float32_sum_error

from llp_jax.bp import (
    BAG_FACTORS,
    COUNT_GAP_WARNING,
    BagFactorName,
    BPSettings,
    CountGapWarning,
    bag_count_messages,
    bag_gaussian_messages,
    build_problem,
    check_settings,
    factors,
    loop,
    run_bp,
    solve,
)
from llp_jax.data.bags import Bags
from llp_jax.graph import GraphSettings, SimilarityGraph, build_graph

# Most problems here are small or far from their counts on purpose; the tests of the warning record it.
pytestmark = pytest.mark.filterwarnings("ignore::llp_jax.bp.CountGapWarning")

# ----------------------------------------------------------------------------------------------------
# Oracles


def log_gibbs(labelings, edges, bags, lambda_s, lambda_b, hard, unary):
    """log p(y) + const for every row of labelings: float[2^n, n]."""
    senders, receivers, weights = edges
    log_p = labelings @ unary
    log_p -= lambda_s * ((labelings[:, senders] - labelings[:, receivers]) ** 2 * weights).sum(axis=1)
    for members, count in bags:
        total = labelings[:, members].sum(axis=1)
        log_p += np.where(total == count, 0.0, -np.inf) if hard else -lambda_b * (total - count) ** 2
    return log_p


def all_labelings(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def brute_marginals(n, edges, bags, lambda_s, lambda_b, hard, unary, temperature=1.0):
    """P(y_i = 1) under p(y)^(1/T), by enumeration."""
    labelings = all_labelings(n)
    log_p = log_gibbs(labelings, edges, bags, lambda_s, lambda_b, hard, unary) / temperature
    p = np.exp(log_p - log_p.max())
    return p @ labelings / p.sum()


def brute_map(n, edges, bags, lambda_s, lambda_b, hard, unary):
    """The most likely labelling and its margin over the runner-up."""
    labelings = all_labelings(n)
    log_p = log_gibbs(labelings, edges, bags, lambda_s, lambda_b, hard, unary)
    order = np.argsort(log_p)
    return labelings[order[-1]], log_p[order[-1]] - log_p[order[-2]]


def enumerated_bag_message(cavity, count, lambda_b, hard):
    """mu_{b->i} for every member by enumerating the other members' labelings (small bags)."""
    cavity = np.asarray(cavity, np.float64)
    size = len(cavity)
    out = np.zeros(size)
    for i in range(size):
        others = np.delete(cavity, i)
        labelings = all_labelings(size - 1)
        weight = np.exp(labelings @ others - np.logaddexp(0.0, others).sum())
        total = labelings.sum(axis=1)
        f = (lambda s: (s == count) * 1.0) if hard else (lambda s: np.exp(-lambda_b * (s - count) ** 2))
        with np.errstate(divide="ignore"):
            out[i] = np.log(weight @ f(total + 1)) - np.log(weight @ f(total))
    return out


def dp_bag_message(cavity, count, lambda_b, hard):
    """mu_{b->i} for every member from the leave-one-out count distributions, computed in float64 in the
    log domain by a sequential dynamic program (O(|b|^3) in all: for moderate bags)."""
    c = np.asarray(cavity, np.float64)
    size = len(c)
    log_p1, log_p0 = -np.logaddexp(0.0, -c), -np.logaddexp(0.0, c)
    q = np.full((size, size + 1), -np.inf)  # q[i, s] = log P(sum of the others = s)
    q[:, 0] = 0.0
    for j in range(size):
        shifted = np.concatenate([np.full((size, 1), -np.inf), q[:, :-1]], axis=1)
        updated = np.logaddexp(q + log_p0[j], shifted + log_p1[j])
        q = np.where((np.arange(size) == j)[:, None], q, updated)
    s = np.arange(size + 2)
    with np.errstate(divide="ignore"):
        log_f = np.log((s == count) * 1.0) if hard else -lambda_b * (s - count) ** 2

    def logsumexp(a):
        top = a.max(axis=1, keepdims=True)
        if not np.all(np.isfinite(top)):  # f vanishes on the whole support: log 0
            return np.where(np.isfinite(top[:, 0]), logsumexp(np.where(np.isfinite(top), a, 0.0)), -np.inf)
        return (top + np.log(np.exp(a - top).sum(axis=1, keepdims=True)))[:, 0]

    return logsumexp(q + log_f[None, 1:]) - logsumexp(q + log_f[None, :-1])


def quadratic_dp_bag_message(cavity, count, lambda_b, hard):
    """mu_{b->i} for every member, in float64 in the log domain, in O(|b|^2): from the count distributions
    of the members before i (one stored row per i) and, swept backwards, h(t) = log sum_u f(t + u)
    P(members after i = u), which adding member j turns into logaddexp(log(1 - p_j) + h(t), log p_j +
    h(t + 1)). mu_i = log sum_t P(before i = t) exp h(t + 1) - log sum_t P(before i = t) exp h(t). For bags
    of thousands."""
    c = np.asarray(cavity, np.float64)
    size = len(c)
    log_p1, log_p0 = -np.logaddexp(0.0, -c), -np.logaddexp(0.0, c)
    before = np.full((size + 1, size + 1), -np.inf)
    before[0, 0] = 0.0
    for j in range(size):
        before[j + 1] = np.logaddexp(
            before[j] + log_p0[j], np.concatenate([[-np.inf], before[j, :-1] + log_p1[j]])
        )
    s = np.arange(size + 2, dtype=np.float64)
    with np.errstate(divide="ignore"):
        h = np.log((s == count) * 1.0) if hard else -lambda_b * (s - count) ** 2
    out = np.empty(size)
    for i in reversed(range(size)):
        terms = [before[i] + h[y : y + size + 1] for y in (0, 1)]
        top = [t.max() for t in terms]
        with np.errstate(invalid="ignore"):
            sums = [
                m + np.log(np.exp(t - m).sum()) if np.isfinite(m) else -np.inf
                for t, m in zip(terms, top, strict=True)
            ]
        out[i] = sums[1] - sums[0]
        h = np.logaddexp(h[:-1] + log_p0[i], h[1:] + log_p1[i])
        h = np.append(h, -np.inf)
    return out


# ----------------------------------------------------------------------------------------------------
# Problem generators


def random_tree_factor_graph(rng, n, bag_sizes, n_edges):
    """Similarity edges and bags whose factor graph is a forest: every new factor joins variables that
    are still in distinct components (union-find). Returns (senders, receivers, weights), [(members, k)]."""
    parent = list(range(n))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    def join(nodes):
        roots = {root(i) for i in nodes}
        if len(roots) < len(nodes):
            return False
        first, *rest = roots
        for r in rest:
            parent[r] = first
        return True

    free = list(rng.permutation(n))
    bags = []
    for size in bag_sizes:
        members = [free.pop() for _ in range(size)]
        assert join(members)
        bags.append((np.array(members), int(rng.integers(0, size + 1))))
    assert n_edges <= n - sum(bag_sizes) + len(bag_sizes) - 1, "more edges than a forest can hold"
    edges = []
    while len(edges) < n_edges:
        i, j = sorted(rng.choice(n, size=2, replace=False))
        if join([i, j]):
            edges.append((i, j))
    senders, receivers = (
        (np.array(v, dtype=np.int32) for v in zip(*edges, strict=True)) if edges else ([], [])
    )
    weights = rng.uniform(0.1, 1.0, len(edges))
    return (np.asarray(senders, np.int32), np.asarray(receivers, np.int32), weights), bags


def graph_of(n, senders, receivers, weights):
    """A SimilarityGraph built by hand (arrays kept as given: float64 weights stay float64)."""
    return SimilarityGraph(n, np.asarray(senders), np.asarray(receivers), np.asarray(weights))


def bags_of(members_lists, counts):
    """Bags from a list of member lists and their counts k_b, padded to the largest bag."""
    width = max(len(m) for m in members_lists)
    members = np.zeros((len(members_lists), width), np.int32)
    mask = np.zeros((len(members_lists), width), bool)
    for b, m in enumerate(members_lists):
        members[b, : len(m)], mask[b, : len(m)] = m, True
    return Bags(members, mask, mask.sum(axis=1).astype(np.int32), np.asarray(counts, np.float32))


def run(n, edges, bags, settings, unary):
    """run_bp on edges (senders, receivers, weights) and bags [(members, k)] (empty: no bags)."""
    bag_tuple = bags_of([m for m, _ in bags], [k for _, k in bags]) if bags else None
    return run_bp(graph_of(n, *edges), bag_tuple, settings, unary=unary)


EXACT = dict(max_iters=60, damping=0.3, early_stop=False)

# ----------------------------------------------------------------------------------------------------
# Exactness on trees


TREES = [
    dict(name="chain", n=12, bag_sizes=[], chain=True),
    dict(name="similarity tree", n=13, bag_sizes=[], n_edges=12),
    dict(name="single bag", n=7, bag_sizes=[7], n_edges=0),
    dict(name="bag on disjoint trees", n=13, bag_sizes=[4], n_edges=9),
    dict(name="several bags", n=14, bag_sizes=[2, 3, 5], n_edges=6),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, hard",
    [(case, False) for case in TREES] + [(case, True) for case in TREES if case["bag_sizes"]],
    ids=lambda v: v["name"] if isinstance(v, dict) else ("hard" if v else "soft"),
)
def test_tree_marginals_are_exact(case, hard):
    rng = np.random.default_rng(len(case["name"]) + 10 * hard)
    n = case["n"]
    if case.get("chain"):
        edges = (
            np.arange(n - 1, dtype=np.int32),
            np.arange(1, n, dtype=np.int32),
            rng.uniform(0.1, 1, n - 1),
        )
        bags = []
    else:
        edges, bags = random_tree_factor_graph(rng, n, case["bag_sizes"], case["n_edges"])
    unary = rng.normal(0.0, 1.0, n)
    settings = BPSettings(lambda_s=0.8, lambda_b=0.6, hard_counts=hard, **EXACT)
    result = run(n, edges, bags, settings, unary)
    expected = brute_marginals(n, edges, bags, 0.8, 0.6, hard, unary)
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=1e-5)
    assert result.deltas.shape == (settings.max_iters,)
    assert float(result.deltas[-1]) < 1e-4


def tempered_tree(bag_sizes):
    """A tempered case on a random tree with bags of `bag_sizes`, where BP is exact: (hard, temperature) ->
    n, edges, bags, unary and the marginals of p^(1/T) by enumeration."""

    def case(hard, temperature):
        rng = np.random.default_rng(3)
        edges, bags = random_tree_factor_graph(rng, 12, bag_sizes, 6)
        unary = rng.normal(0.0, 1.0, 12)
        return 12, edges, bags, unary, brute_marginals(12, edges, bags, 0.8, 0.6, hard, unary, temperature)

    return case


def tempered_lone_bag(hard, temperature):
    """A tempered case of one bag of 200 members without edges, where BP is exact given the bag's messages:
    n, edges, bags, unary and the marginals of p^(1/T), log-odds u / T plus the float64 message of
    f^(1/T) to cavities u / T."""
    unary = np.random.default_rng(18).uniform(-1.4, 1.4, 200)
    exact = dp_bag_message(unary / temperature, 80, 0.6 / temperature, hard)
    no_edges = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    return 200, no_edges, [(np.arange(200), 80)], unary, 1.0 / (1.0 + np.exp(-unary / temperature - exact))


# Per bag factor: its tempered case and the tolerance on the marginals. The Gaussian approximation is
# within 9e-4 of the exact marginals on its case (cavity count ~103 +- 6.5, k = 80), ignoring T moves them
# by over 0.045; count and clique are exact on trees (clique with bags of two, a single pairwise factor).
TEMPERED = {
    "count": (tempered_tree([3, 4]), 1e-5),
    "gaussian": (tempered_lone_bag, 2e-3),
    "clique": (tempered_tree([2, 2, 2]), 1e-5),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "bag_factor, hard",
    [
        (name, hard)
        for name in TEMPERED
        for hard in (False, True)
        if not (hard and BAG_FACTORS[name].no_hard_counts)
    ],
)
@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_every_bag_factor_applies_the_temperature(bag_factor, hard, temperature):
    assert set(TEMPERED) == set(BAG_FACTORS)  # a new bag factor brings its tempered case
    case, atol = TEMPERED[bag_factor]
    n, edges, bags, unary, expected = case(hard, temperature)
    # T matters, so that the test means something
    assert np.abs(expected - case(hard, 1.0)[-1]).max() > 10 * atol
    settings = BPSettings(
        lambda_s=0.8, lambda_b=0.6, bag_factor=bag_factor, hard_counts=hard, temperature=temperature, **EXACT
    )
    result = run(n, edges, bags, settings, unary)
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=atol)
    np.testing.assert_allclose(
        np.asarray(jax.nn.sigmoid(result.log_odds / temperature)), np.asarray(result.marginals), atol=1e-6
    )


@pytest.mark.parametrize("temperature", [0.0, 0.05])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_max_product_picks_the_map_labelling_on_a_tree(temperature, hard):
    rng = np.random.default_rng(7)
    edges, bags = random_tree_factor_graph(rng, 12, [3, 4], 6)
    unary = rng.normal(0.0, 2.0, 12)
    best, margin = brute_map(12, edges, bags, 1.0, 1.0, hard, unary)
    assert margin > 0.1  # a unique MAP labelling, so that the test means something
    settings = BPSettings(lambda_s=1.0, lambda_b=1.0, hard_counts=hard, temperature=temperature, **EXACT)
    result = run(12, edges, bags, settings, unary)
    np.testing.assert_array_equal(np.asarray(result.log_odds) > 0, best > 0)
    np.testing.assert_array_equal(np.asarray(result.marginals) > 0.5, best > 0)


def test_count_and_clique_agree_on_bags_of_two():
    rng = np.random.default_rng(11)
    edges, bags = random_tree_factor_graph(rng, 12, [2, 2, 2], 5)
    unary = rng.normal(0.0, 1.0, 12)
    expected = brute_marginals(12, edges, bags, 0.8, 0.6, False, unary)
    for bag_factor in ("count", "clique"):
        settings = BPSettings(lambda_s=0.8, lambda_b=0.6, bag_factor=bag_factor, **EXACT)
        result = run(12, edges, bags, settings, unary)
        np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=1e-5, err_msg=bag_factor)


# ----------------------------------------------------------------------------------------------------
# Loops, schedules, jit


def test_loopy_graph_converges_close_to_brute_force():
    rng = np.random.default_rng(5)
    n = 12
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.25])
    edges = (pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32), rng.uniform(0.1, 1.0, len(pairs)))
    bags = [(np.arange(0, 6), 2), (np.arange(6, 12), 4)]
    unary = rng.normal(0.0, 1.0, n)
    settings = BPSettings(lambda_s=0.3, lambda_b=0.3, max_iters=200, tol=1e-5, marginal_tol=0.0)
    result = run(n, edges, bags, settings, unary)
    assert bool(result.converged) and int(result.n_iters) < settings.max_iters
    deltas = np.asarray(result.deltas)[: int(result.n_iters)]
    assert deltas[-1] < 1e-5 < deltas[0]
    assert np.all(np.isnan(np.asarray(result.deltas)[int(result.n_iters) :]))
    expected = brute_marginals(n, edges, bags, 0.3, 0.3, False, unary)
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=0.03)


@pytest.mark.slow
@pytest.mark.parametrize("early_stop", [True, False])
def test_jit_and_no_jit_agree(early_stop):
    rng = np.random.default_rng(2)
    edges, bags = random_tree_factor_graph(rng, 9, [3, 4], 3)
    unary = rng.normal(0.0, 1.0, 9)
    settings = BPSettings(lambda_s=0.8, lambda_b=0.6, max_iters=4, early_stop=early_stop)
    jitted = run(9, edges, bags, settings, unary)
    with jax.disable_jit():
        eager = run(9, edges, bags, settings, unary)
    for a, b in zip(jitted, eager, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("early_stop", [True, False])
def test_progress_chunks_give_the_same_result(early_stop):
    rng = np.random.default_rng(4)
    edges, bags = random_tree_factor_graph(rng, 10, [4], 5)
    bag_tuple = bags_of([m for m, _ in bags], [k for _, k in bags])
    settings = BPSettings(max_iters=30, early_stop=early_stop, marginal_tol=1e-3)
    problem = build_problem(graph_of(10, *edges), bag_tuple, settings)
    plain = solve(problem, settings)
    chunked = solve(problem, settings, progress=True)
    assert int(plain.n_iters) < 30 if early_stop else int(plain.n_iters) == 30
    # the same sums, chunked: bitwise on the CPU; a GPU's scatter-adds need not repeat their order
    assert_same_but_for_the_order_of_sums(chunked, plain, problem, settings)


# ----------------------------------------------------------------------------------------------------
# Edge padding and compilation; the convergence test on the marginals


def loopy_case(rng, n, n_edges):
    """n nodes, n_edges distinct random edges (senders < receivers), bags of 4 with random counts."""
    pairs = np.array([(i, j) for i in range(n) for j in range(i + 1, n)])
    pairs = pairs[np.sort(rng.choice(len(pairs), n_edges, replace=False))]
    graph = graph_of(
        n, pairs[:, 0].astype(np.int32), pairs[:, 1].astype(np.int32), rng.uniform(0.1, 1, n_edges)
    )
    members = rng.permutation(n).reshape(-1, 4)
    return graph, bags_of(members, rng.integers(0, 5, len(members)))


def reordering_bound(problem, settings, n_iters):
    """float: how far the log-odds of two BP runs on `problem` may differ when the float32 sums of each
    iteration take different orders (a GPU's scatter-adds sum in no fixed order; the CPU's in slot order).

    Each iteration every belief B_i is a sum of its field, its incoming pairwise messages (|m_j->i| <=
    |J_ji|: softplus is 1-Lipschitz) and its bag's message (soft: |m| <= lambda_b (2 |b| - 1), the bound
    that loop.py's CountGapWarning and bag_gaussian_messages state; hard: up to the loop's cap, max
    reach + 1e3 max(1, T)), the latter itself a sum over the |b| members:
    float32_sum_error(1 + in-degree + |b|, |field| + sum |J| + |bag message|) at worst.
    Messages are 1-Lipschitz in their cavities (the count factor's derivatives in the other members'
    cavities add up to 1 in absolute value) and these runs settle (their largest message change falls
    5- to 2e7-fold over their iterations), so an error does not grow once made: those of the n_iters
    iterations at most add up.
    Marginals move by at most a quarter of it (sigmoid' <= 1/4), message deltas by twice it."""
    field = np.abs(np.asarray(problem.field, np.float64))
    receivers = np.asarray(problem.receivers).ravel()
    couplings = np.abs(np.asarray(problem.couplings, np.float64)).ravel()
    n = len(field)
    degree = np.bincount(receivers, couplings != 0.0, n)  # padding slots (J = 0) add exact zeros
    total = field + np.bincount(receivers, couplings, n)
    terms = 1 + degree
    if BAG_FACTORS[settings.bag_factor].messages is not None:
        sizes = np.asarray(problem.bag_mask).sum(axis=1)
        member_of = np.asarray(problem.bag_members)[np.asarray(problem.bag_mask)]
        size = np.repeat(sizes, sizes)  # bags' members in row order, as member_of lists them
        terms[member_of] += size
        if settings.hard_counts:
            total[member_of] += float(np.max(problem.reach)) + 1e3 * max(1.0, settings.temperature)
        else:
            total[member_of] += settings.lambda_b * (2 * size - 1)
    return n_iters * max(float32_sum_error(k, s) for k, s in zip(terms, total, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("bag_factor", list(BAG_FACTORS))
def test_padding_edges_change_no_result(bag_factor):
    """The same problem with its edges padded to a bucket, padded for 1,000 edges, and cut back to the
    graph's own edges (no padding): the same marginals, beliefs and deltas. Bitwise on the CPU: a padding
    edge (J = 0) sends messages of exactly 0, which its scatter-add adds to node 0 after the real edges'
    (x + 0 = x). Elsewhere the sums of each iteration take an order of the backend's (measured on an H200:
    up to 2.2e-5 apart in the marginals, count factor), so within `reordering_bound` (count factor:
    log-odds 2.3e-4, marginals 5.8e-5 at its 17 iterations)."""
    graph, bags = loopy_case(np.random.default_rng(19), 24, 37)
    settings = BPSettings(lambda_s=0.7, lambda_b=0.5, bag_factor=bag_factor, max_iters=40, marginal_tol=1e-4)
    bucket = build_problem(graph, bags, settings)
    wide = build_problem(graph, bags, settings, edge_capacity=1000)
    slots = 37 + (6 * len(bags.counts) if bag_factor == "clique" else 0)  # the clique's 6 pairs per bag
    edges = ("senders", "receivers", "couplings")
    cut = bucket._replace(**{name: getattr(bucket, name)[:, :slots] for name in edges})
    assert slots < bucket.senders.shape[1] < 1000 <= wide.senders.shape[1]
    for padded in (bucket, wide):
        for name in edges:
            np.testing.assert_array_equal(np.asarray(getattr(padded, name))[:, slots:], 0, err_msg=name)
    expected = solve(cut, settings)
    assert int(expected.n_iters) > 1
    # the last marginal delta is 13% below marginal_tol: the stop does not hang on rounding
    assert float(expected.marginal_deltas[int(expected.n_iters) - 1]) < 0.9 * settings.marginal_tol
    for padded in (bucket, wide):
        assert_same_but_for_the_order_of_sums(solve(padded, settings), expected, cut, settings)


def assert_same_but_for_the_order_of_sums(result, expected, problem, settings):
    """Two BPResults of `problem`: bitwise equal on the CPU (each sum in one fixed order, whatever the
    padding or the chunking), elsewhere within `reordering_bound` of the expected run's iterations:
    marginals a quarter of it, message deltas twice it, marginal deltas half of it, count_gap the
    marginals' bound times the members over max(sum_b k_b, 1); the iteration count and convergence
    exactly (a test whose stop hung on rounding would need another case)."""
    if jax.default_backend() == "cpu":
        for name, a, b in zip(expected._fields, result, expected, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
        return
    bound = reordering_bound(problem, settings, int(expected.n_iters))
    members = int(np.asarray(problem.bag_mask).sum())
    total = max(float(np.asarray(problem.bag_counts).sum()), 1.0)
    atol = dict(marginals=bound / 4, log_odds=bound, deltas=2 * bound, marginal_deltas=bound / 2)
    atol.update(n_iters=0, converged=0, count_gap=members * bound / 4 / total)
    for name, a, b in zip(expected._fields, result, expected, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol[name], err_msg=name)


@pytest.mark.slow
def test_graphs_of_one_bucket_share_the_compiled_loop():
    """Two graphs of 70 and 90 edges (LLP-BP's rounds: kNN graphs of different edge counts) compile the loop
    once when padded for 120 edges (n k for kNN graphs of n = 24, k = 5), twice on their own buckets."""
    rng = np.random.default_rng(20)
    graphs = [loopy_case(rng, 24, n_edges) for n_edges in (70, 90)]

    def compiles(edge_capacity, max_iters):  # max_iters: a loop that no other test compiled
        before = loop._advance._cache_size()
        for graph, bags in graphs:
            run_bp(graph, bags, BPSettings(max_iters=max_iters), edge_capacity=edge_capacity)
        return loop._advance._cache_size() - before

    assert compiles(edge_capacity=0, max_iters=23) == 2  # buckets of 72 and 96 edges
    assert compiles(edge_capacity=24 * 5, max_iters=24) == 1


def test_saturated_marginals_do_not_stop_bp_while_its_messages_still_move():
    """At lambda_s = 1e4 and bags of 4,096 the first iteration changed messages by 8.5e4 and no marginal
    (all at 0): the marginals' rule alone declared BP converged at count_gap -1."""
    numbers = loop._Numbers(*(jnp.float32(0.0),) * len(loop._Numbers._fields))._replace(
        tol=jnp.float32(1e-4), marginal_tol=jnp.float32(1e-5)
    )
    moving = dict(last_delta=jnp.float32(8.5e4), last_marginal_delta=jnp.float32(0.0))
    settled = dict(last_delta=jnp.float32(0.5), last_marginal_delta=jnp.float32(0.0))
    assert not bool(loop._stopped(_Last(**moving), numbers))
    assert bool(loop._stopped(_Last(**settled), numbers))
    messages_only = dict(last_delta=jnp.float32(5e-5), last_marginal_delta=jnp.float32(1.0))
    assert bool(loop._stopped(_Last(**messages_only), numbers))


class _Last(NamedTuple):
    last_delta: jax.Array
    last_marginal_delta: jax.Array


def test_marginal_tol_stops_early_with_the_exact_marginals_on_a_tree():
    """On a tree BP stops on marginal_tol (after 14 iterations; 18 on tol alone, both at 1e-7) with the
    marginals of enumeration."""
    rng = np.random.default_rng(21)
    n = 14
    edges, bags = random_tree_factor_graph(rng, n, [2, 3, 5], 6)
    unary = rng.normal(0.0, 1.0, n)
    expected = brute_marginals(n, edges, bags, 0.8, 0.6, False, unary)
    settings = BPSettings(lambda_s=0.8, lambda_b=0.6, max_iters=200, damping=0.3, tol=1e-7, marginal_tol=1e-7)
    result = run(n, edges, bags, settings, unary)
    n_iters = int(result.n_iters)
    assert bool(result.converged) and n_iters < settings.max_iters
    assert float(result.marginal_deltas[n_iters - 1]) < 1e-7 <= float(result.deltas[n_iters - 1])
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=1e-6)
    on_messages = run(n, edges, bags, settings._replace(marginal_tol=0.0), unary)
    assert (
        int(on_messages.n_iters) > n_iters and float(on_messages.deltas[int(on_messages.n_iters) - 1]) < 1e-7
    )


def test_nodes_outside_bags_and_graph_keep_their_unary():
    unary = np.array([0.3, -1.0, 2.0, 0.5], np.float32)
    result = run_bp(
        graph_of(4, [0], [1], [1.0]), bags_of([[2]], [1.0]), BPSettings(lambda_s=0.0), unary=unary
    )
    np.testing.assert_allclose(np.asarray(result.log_odds)[[0, 1, 3]], unary[[0, 1, 3]], atol=1e-6)


@pytest.mark.parametrize("iterations", [1, 3])
def test_damping_keeps_its_share_of_the_old_message(iterations):
    """Where a message's inputs never change (a bag of nodes without edges; an edge between two nodes
    outside bags), t damped updates from 0 give (1 - damping^t) m*, m* the exact message, and the change
    of update j is damping^(j - 1) (1 - damping) |m*|. Damping 0.8: swapping it with 1 - damping gives
    (1 - 0.2^t) m*, 0.8 m* instead of 0.2 m* at t = 1."""
    rng = np.random.default_rng(17)
    unary = rng.normal(0.0, 1.0, 7)
    edges = (np.array([5], np.int32), np.array([6], np.int32), np.array([0.7]))
    bags = [(np.arange(5), 2)]
    settings = BPSettings(lambda_s=1.5, lambda_b=0.8, damping=0.8, max_iters=iterations, early_stop=False)
    result = run(7, edges, bags, settings, unary)
    exact = brute_marginals(7, edges, bags, 1.5, 0.8, False, unary)
    # Before any message a belief is its field: the unary, minus lambda_s w at the edge's ends (DESIGN.md
    # section 3); every node gets one message, so the exact one is the exact log-odds minus the field.
    field = unary - 1.5 * 0.7 * (np.arange(7) >= 5)
    message = np.log(exact / (1.0 - exact)) - field
    np.testing.assert_allclose(
        np.asarray(result.log_odds), field + (1.0 - 0.8**iterations) * message, atol=1e-5
    )
    steps = 0.8 ** np.arange(iterations) * 0.2 * np.abs(message).max()
    np.testing.assert_allclose(np.asarray(result.deltas), steps, rtol=1e-4)


# ----------------------------------------------------------------------------------------------------
# Scale: the cap of the bag messages, the count check


def clustered_knn_graph(rng, n, n_clusters):
    """The kNN graph (llp_jax.graph, k = 5) of n points in well separated clusters of R^4 (centres 30 apart
    on average, unit spread), and labels int32[n] by cluster, about 30% of the clusters positive."""
    centres = rng.normal(0.0, 30.0, (n_clusters, 4))
    cluster = rng.integers(0, n_clusters, n)
    points = (centres[cluster] + rng.normal(size=(n, 4))).astype(np.float32)
    positive = rng.random(n_clusters) < 0.3
    return build_graph(points, GraphSettings()), positive[cluster].astype(np.int32)


@pytest.mark.slow
@pytest.mark.parametrize(
    "seed, hard, warning",
    [(2, False, None), (2, True, None), (3, False, "outweighs the strongest such pull")],
    ids=["soft", "hard", "soft-warns"],
)
def test_a_large_lambda_s_honours_the_counts_or_says_why(seed, hard, warning):
    """lambda_s = 1e4 and one bag of 4,096: the similarity field of a member reaches 1e4 times its weighted
    degree (median 2.2). With bag messages capped at a fixed 1e3 the counts could pull no member positive:
    BP marked every member negative (count_gap -1.0 in all three cases). Now the messages do not converge
    (a frozen, frustrated problem; the largest change is still 5 to 3,800 after 100 iterations) but the
    marginals settle, and BP stops on marginal_tol after 31 to 66 iterations: at seed 2 on the counts
    (-0.010 soft, -0.001 hard), at seed 3 soft at -0.28 (-0.27 after 100 iterations), which run_bp reports
    with its cause: the similarity field outweighs the bag's pull."""
    rng = np.random.default_rng(seed)
    graph, labels = clustered_knn_graph(rng, 4096, 8)
    settings = BPSettings(lambda_s=1e4, hard_counts=hard)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_bp(graph, bags_of([np.arange(4096)], [labels.sum()]), settings)
    gap = float(result.count_gap)
    np.testing.assert_allclose(gap, np.asarray(result.marginals).sum() / labels.sum() - 1.0, atol=1e-5)
    warned = [str(w.message) for w in caught if w.category is CountGapWarning]
    if warning is None:
        assert abs(gap) <= COUNT_GAP_WARNING and not warned
    else:
        assert -0.5 < gap < -COUNT_GAP_WARNING and len(warned) == 1 and warning in warned[0]


@pytest.mark.slow
def test_soft_counts_that_the_similarity_field_outweighs_are_reported():
    """Soft counts (lambda_b = 10) in bags of 128 against lambda_s = 1e4: a bag pulls a member towards 1 by
    at most lambda_b (2 k_b - 1) < 2,550, while its similarity field holds it near -1e4 times its weighted
    degree (median 2.2). BP converges with every member negative, and run_bp says why."""
    rng = np.random.default_rng(3)
    graph, labels = clustered_knn_graph(rng, 1024, 8)
    members = rng.permutation(1024).reshape(8, 128)
    bags = bags_of(members, labels[members].sum(axis=1))
    with pytest.warns(CountGapWarning, match="outweighs the strongest such pull.*lower lambda_s"):
        result = run_bp(graph, bags, BPSettings(lambda_s=1e4))
    assert bool(result.converged) and float(result.count_gap) == pytest.approx(-1.0, abs=1e-3)


# ----------------------------------------------------------------------------------------------------
# Bag messages directly


_count_messages = jax.jit(bag_count_messages, static_argnums=(5, 6, 7))


@pytest.fixture(params=["default", "hankel"])
def summation(request, monkeypatch):
    """bag_count_messages jitted as `count_messages` takes it: with the backend's own summation, or with the
    accelerators' (factors.FORCE_HANKEL) forced on the CPU. The switch is read when a function is traced,
    so that one is a new function, traced afresh."""
    if request.param == "default":
        return _count_messages
    monkeypatch.setattr(factors, "FORCE_HANKEL", True)
    return jax.jit(lambda *args: bag_count_messages(*args), static_argnums=(5, 6, 7))


def count_messages(
    cavity,
    mask,
    counts,
    lambda_b,
    hard,
    temperature=1.0,
    max_product=False,
    chunk=None,
    traced=_count_messages,
):
    """bag_count_messages (jitted: `traced`) on the rows padded with masked slots to a power of two (as the
    count factor's preparation does), cut back to their width."""
    width = np.shape(cavity)[1]
    pad = ((0, 0), (0, max(2, 1 << (width - 1).bit_length()) - width))
    out = traced(
        jnp.asarray(np.pad(cavity, pad), jnp.float32),
        jnp.asarray(np.pad(mask, pad)),
        jnp.asarray(counts, jnp.float32),
        jnp.float32(lambda_b),
        jnp.float32(temperature),
        hard,
        max_product,
        chunk,
    )
    assert np.all(np.asarray(out)[:, width:] == 0.0)  # padding slots get no message
    return np.asarray(out)[:, :width]


def padded(rows):
    width = max(len(r) for r in rows)
    cavity = np.zeros((len(rows), width))
    mask = np.zeros((len(rows), width), bool)
    for b, r in enumerate(rows):
        cavity[b, : len(r)], mask[b, : len(r)] = r, True
    return cavity, mask


@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_count_messages_of_padded_bags_match_enumeration(hard, summation):
    rng = np.random.default_rng(8)
    sizes = [1, 2, 3, 5, 8, 11]
    rows = [rng.normal(0.0, 2.0, s) for s in sizes]
    counts = [float(rng.integers(0, s + 1)) for s in sizes]
    cavity, mask = padded(rows)
    out = count_messages(cavity, mask, counts, 0.7, hard, traced=summation)
    for b, (row, k) in enumerate(zip(rows, counts, strict=True)):
        expected = enumerated_bag_message(row, k, 0.7, hard)  # -inf or +inf where a hard count forces
        np.testing.assert_allclose(out[b, : len(row)], expected, atol=1e-4, err_msg=f"bag {b}")
        assert np.all(out[b, len(row) :] == 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("lambda_b", [0.1, 10.0, 1e4])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_count_messages_match_float64_dp_on_larger_bags(lambda_b, hard, summation):
    rng = np.random.default_rng(9)
    rows = [rng.normal(0.0, 3.0, 200), rng.normal(1.0, 1.0, 57)]
    counts = [70.0, 57.0 if hard else 30.0]
    cavity, mask = padded(rows)
    out = count_messages(cavity, mask, counts, lambda_b, hard, traced=summation)
    for b, (row, k) in enumerate(zip(rows, counts, strict=True)):
        # messages beyond float32's reach come out infinite: both sides clipped as the loop would, to 1e3
        expected = np.clip(dp_bag_message(row, k, lambda_b, hard), -1e3, 1e3)
        scale = np.maximum(1.0, np.abs(expected))
        np.testing.assert_array_less(np.abs(np.clip(out[b, : len(row)], -1e3, 1e3) - expected) / scale, 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("lambda_b", [0.1, 10.0, 1e4])
def test_count_messages_are_defined_for_bags_up_to_4096(lambda_b):
    """No NaN; infinite only where a hard count forces the member or, at lambda_b = 1e4 and k = 0 or |b|,
    where the exact message (~ -+4e7) lies beyond float32's reach; then with the right sign."""
    rng = np.random.default_rng(10)
    size = 4096
    cavity = np.stack([rng.normal(0.0, 5.0, size), rng.normal(3.0, 1.0, size), np.full(size, -30.0)])
    for hard in (False, True):
        counts = [0.0, 2048.0, float(size)]
        out = count_messages(cavity, np.ones_like(cavity, bool), counts, lambda_b, hard)
        assert not np.any(np.isnan(out)) and np.all(np.isfinite(out[1])), (lambda_b, hard)
        assert np.all(out[0] < 0) and np.all(out[2] > 0)
        if hard or lambda_b > 1e3:  # forced by k = 0 or k = |b|, or beyond float32's reach
            assert np.all(out[0] == -np.inf) and np.all(out[2] == np.inf)
        else:
            assert np.all(np.isfinite(out))
    mask = np.zeros((3, size), bool)
    mask[:, :1500] = True  # a partly padded row of the same batch
    out = count_messages(cavity, mask, [0.0, 700.0, 1500.0], lambda_b, True)
    assert not np.any(np.isnan(out)) and np.all(np.isfinite(out[1]))


@pytest.mark.slow
def test_hard_count_messages_of_confident_bags_of_4096_match_a_float64_dp():
    """Every member confident and k_b their positives: float32 rounds the tilted mean count to k_b over a
    wide stretch of tilts. At +-60 the upper end of the stretch (theta = +43.4) put the messages to the
    y = 0 members (-52.9) beyond float32's range, where they came out at the cap; at +-(50..70) they
    were 0.8% off."""
    rng = np.random.default_rng(16)
    small = rng.normal(0.0, 3.0, 9)  # the oracle itself, against enumeration
    np.testing.assert_allclose(
        quadratic_dp_bag_message(small, 4, 0.0, True), enumerated_bag_message(small, 4, 0.0, True)
    )
    size = 4096
    sign = np.where(rng.random(size) < 0.3, 1.0, -1.0)
    rows = np.stack([60.0 * sign, rng.uniform(50.0, 70.0, size) * sign])
    count = float((sign > 0).sum())
    out = count_messages(rows, np.ones(rows.shape, bool), [count, count], 1.0, True)
    for row, got in zip(rows, out, strict=True):
        expected = quadratic_dp_bag_message(row, count, 0.0, True)
        assert np.abs(expected).min() > 40.0  # far from 0 on both sides, so that the test means something
        np.testing.assert_array_less(np.abs(got - expected) / np.abs(expected), 1e-5)


def test_the_quadratic_oracle_matches_enumeration():
    rng = np.random.default_rng(19)
    row = rng.normal(0.0, 3.0, 9)
    for lambda_b, hard in [(0.3, False), (4.0, False), (0.0, True)]:
        for count in (0.0, 4.0, 9.0):
            np.testing.assert_allclose(
                quadratic_dp_bag_message(row, count, lambda_b, hard),
                enumerated_bag_message(row, count, lambda_b, hard),
                atol=1e-9,
            )


def windowed_case(name):
    """(cavity rows float64[n_rows, 4096], mask, counts) of a bag of 4,096 slots whose windows matter:
    'half' every member near 1/2 (the widest counts, Hoeffding's worst case), at the mean and 4 sd out;
    'spread' logits N(0, 3); 'confident' +-(50..70) with k their positives and one off; 'padded' 3,000
    members near 1/2 in 4,096 slots."""
    rng = np.random.default_rng(20)
    size = 4096
    if name == "confident":
        sign = np.where(rng.random(size) < 0.3, 1.0, -1.0)
        row, counts = rng.uniform(50.0, 70.0, size) * sign, [float((sign > 0).sum())] * 2
        counts[1] += 1.0
    else:
        members = 3000 if name == "padded" else size
        row = rng.normal(0.0, 3.0, members) if name == "spread" else rng.uniform(-0.1, 0.1, members)
        p = 1.0 / (1.0 + np.exp(-row))
        mean, sd = p.sum(), np.sqrt((p * (1.0 - p)).sum())
        counts = [float(round(mean)), float(round(mean + 4.0 * sd))]
    cavity, mask = padded([row, row])
    return (
        np.pad(cavity, ((0, 0), (0, size - len(row)))),
        np.pad(mask, ((0, 0), (0, size - len(row)))),
        counts,
    )


def assert_windowed_messages_match_the_dp(name, lambda_b, hard):
    """Relative error (scale max(1, |mu|)) below 2e-6: measured at most 4e-7 on these cases, the same as
    the exact tree's (FULL_WINDOWS)."""
    cavity, mask, counts = windowed_case(name)
    out = count_messages(cavity, mask, counts, lambda_b, hard)
    members = int(mask[0].sum())
    for got, k in zip(out, counts, strict=True):
        expected = quadratic_dp_bag_message(cavity[0, :members], k, lambda_b, hard)
        assert np.all(np.isfinite(expected))  # no forced member, so that every entry is compared
        np.testing.assert_array_less(
            np.abs(got[:members] - expected) / np.maximum(1.0, np.abs(expected)), 2e-6
        )


@pytest.mark.slow
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_windowed_count_messages_of_members_near_one_half_match_a_float64_dp(hard):
    assert_windowed_messages_match_the_dp("half", 0.1, hard)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, lambda_b, hard",
    [
        ("spread", 10.0, False),
        ("spread", 0.0, True),
        ("confident", 1e4, False),
        ("confident", 0.0, True),
        ("padded", 10.0, False),
        ("padded", 0.0, True),
    ],
)
def test_windowed_count_messages_of_bags_of_4096_match_a_float64_dp(name, lambda_b, hard):
    assert_windowed_messages_match_the_dp(name, lambda_b, hard)


def test_each_window_neglects_less_than_its_tail_bound():
    """A window keeps every count within h - _WINDOW_MARGIN of its subtree's mean (window_length); beyond
    it lies less than _WINDOW_TAIL of any count of that many members, the worst case being Binomial(m,
    1/2) (Hoeffding's inequality is tight for it): its mass there, in float64, for every size up to 8,192."""
    for members in (2**j for j in range(1, 14)):
        length = factors.window_length(members)
        if length == members + 1:
            continue
        reach = (length - 2) // 2 - factors._WINDOW_MARGIN  # every count within it of the mean is kept
        counts = np.arange(members + 1)
        log_pmf = np.array(
            [math.lgamma(members + 1) - math.lgamma(s + 1) - math.lgamma(members - s + 1) for s in counts]
        )
        log_pmf -= members * math.log(2.0)
        outside = np.exp(log_pmf[np.abs(counts - members / 2) > reach]).sum()
        assert outside < factors._WINDOW_TAIL, (members, outside)
    # about 2 log2 |b| windows (ancestors and siblings) touch a message: together below float32's resolution
    assert 2 * 13 * factors._WINDOW_TAIL < np.finfo(np.float32).eps / 4
    assert factors.window_length(2048) < 2049 / 6  # the windows do cut the work at the bags of issue 13


@pytest.mark.slow  # 30 s; the default set checks the windows against the float64 DP at 4,096
def test_windows_agree_with_the_exact_tree(monkeypatch):
    """The windowed tree against the whole supports (FULL_WINDOWS, traced afresh), both float32, on bags
    of 1,024 with a padded row, soft and hard: equal to float32 rounding."""
    rng = np.random.default_rng(21)
    cavity, mask = padded([rng.normal(0.0, 2.0, 1024), rng.uniform(-0.5, 0.5, 700)])
    counts = [300.0, 350.0]
    windowed = [count_messages(cavity, mask, counts, 2.0, hard) for hard in (False, True)]
    monkeypatch.setattr(factors, "FULL_WINDOWS", True)
    exact = jax.jit(lambda *args: bag_count_messages(*args), static_argnums=(5, 6, 7))
    for hard, got in zip((False, True), windowed, strict=True):
        np.testing.assert_allclose(
            got, count_messages(cavity, mask, counts, 2.0, hard, traced=exact), atol=2e-6
        )


def float64_tilt(logits, count, lam, hard):
    """The tilt of `factors.tilt` by bisection in float64 (kept in the same bracket). The tilted mean count
    minus k is summed as #{z >= 0} - k + sum over z < 0 of sigmoid(z) - sum over z >= 0 of sigmoid(-z):
    float64 too would lose members' distances from their labels (e^-60) against k."""
    logits = np.asarray(logits, np.float64)
    size = len(logits)
    lo = -logits.max() + np.log(0.5 / (size - 0.5))
    hi = -logits.min() + np.log((size - 0.5) / 0.5)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        z = logits + mid
        near = 1.0 / (1.0 + np.exp(np.abs(z)))
        surplus = (z >= 0).sum() - count + near[z < 0].sum() - near[z >= 0].sum()
        lo, hi = (lo, mid) if (surplus if hard else mid + 2.0 * lam * surplus) > 0.0 else (mid, hi)
    return 0.5 * (lo + hi)


def test_the_tilts_newton_steps_find_the_float64_root():
    """Spread, confident (+-60: the root where the tiny terms balance), near one half; counts at the mean,
    in the tails, 0 and |b| (the tilt kept at an end of its bracket); soft lambda from 0.1 to 1e4."""
    rng = np.random.default_rng(22)
    sign = np.where(rng.random(512) < 0.3, 1.0, -1.0)
    rows = {
        "spread": rng.normal(-2.0, 3.0, 512),
        "confident": 60.0 * sign,
        "half": rng.uniform(-0.1, 0.1, 512),
    }
    tilt = jax.jit(factors.tilt, static_argnums=4)
    for name, row in rows.items():
        p = 1.0 / (1.0 + np.exp(-row))
        counts = [0.0, 3.0, float(round(p.sum())), float((sign > 0).sum()), 500.0, 512.0]
        for lam, hard in [(0.0, True), (0.1, False), (10.0, False), (1e4, False)]:
            batch = np.tile(row, (len(counts), 1))
            got = np.asarray(
                tilt(
                    jnp.asarray(batch, jnp.float32),
                    jnp.ones(batch.shape, bool),
                    jnp.asarray(counts, jnp.float32),
                    jnp.float32(lam),
                    hard,
                )
            )
            want = np.array([float64_tilt(row, k, lam, hard) for k in counts])
            np.testing.assert_allclose(got, want, atol=2e-3, err_msg=f"{name} {lam} {hard}")
    # +-60 at k their positives: the root balances n_neg e^(theta - 60) against n_pos e^(-theta - 60)
    positives = float((sign > 0).sum())
    at_k = tilt(jnp.full((1, 512), 60.0) * sign, jnp.ones((1, 512), bool), jnp.array([positives]), 0.0, True)
    np.testing.assert_allclose(float(at_k[0]), 0.5 * np.log(positives / (512 - positives)), atol=1e-3)


@pytest.mark.slow
def test_run_bp_on_a_bag_of_4096_stays_finite():
    rng = np.random.default_rng(12)
    n = 8192
    senders = rng.integers(0, n - 1, 20000)
    receivers = np.minimum(senders + rng.integers(1, 50, 20000), n - 1)
    keep = senders < receivers
    members = np.arange(n, dtype=np.int32).reshape(2, 4096)
    for settings in (
        BPSettings(lambda_b=1e4, hard_counts=True, max_iters=5, marginal_tol=0.0),
        BPSettings(lambda_b=0.1, max_iters=5, marginal_tol=0.0),
        BPSettings(lambda_b=1e4, max_iters=5, temperature=0.0, marginal_tol=0.0),
    ):
        graph = graph_of(n, senders[keep], receivers[keep], rng.uniform(0.1, 1.0, keep.sum()))
        result = run_bp(graph, bags_of(members, [0.0, 4096.0]), settings)
        assert np.all(np.isfinite(np.asarray(result.log_odds))) and np.all(
            np.isfinite(np.asarray(result.deltas))
        )
        marginals = np.asarray(result.marginals)
        if settings.hard_counts:
            assert np.all(marginals[:4096] == 0.0) and np.all(marginals[4096:] == 1.0)


def test_count_messages_refuse_rows_that_are_not_a_power_of_two_wide():
    with pytest.raises(ValueError, match="3 slots wide; expected a power of two"):
        bag_count_messages(
            jnp.zeros((1, 3)), jnp.ones((1, 3), bool), jnp.ones(1), jnp.float32(1.0), jnp.float32(1.0),
            False, False,
        )  # fmt: skip


def test_chunked_bags_match_unchunked():
    rng = np.random.default_rng(13)
    cavity = rng.normal(0.0, 2.0, (7, 16))
    mask = rng.random((7, 16)) < 0.8
    mask[:, 0] = True
    counts = [float(rng.integers(0, m.sum() + 1)) for m in mask]
    whole = count_messages(cavity, mask, counts, 2.0, False)
    chunked = count_messages(cavity, mask, counts, 2.0, False, chunk=3)
    if jax.default_backend() == "cpu":  # the same sums, in the same order, bag by bag
        np.testing.assert_array_equal(chunked, whole)
        return
    # Elsewhere a reduction's order may follow the batch's shape. A message is log g1 - log g0 + theta,
    # each g a product of the tree's 4 levels up and 4 down over 16 slots, each level a sum of positive
    # terms (no cancellation), at most a window's: 2, 4, 8, 16 more terms than one (window_length 3, 5,
    # 9, 17), so two orders move each log g by at most 2 x 30 eps32 (float32_sum_error relative to the
    # sum), the message by twice that: 120 eps32 = 1.4e-5.
    relative = sum(float32_sum_error(factors.window_length(2**level), 1.0) for level in range(1, 5))
    np.testing.assert_allclose(chunked, whole, atol=2 * 2 * relative)


def test_max_product_count_messages_match_enumeration():
    rng = np.random.default_rng(14)
    row = rng.normal(0.0, 2.0, 6)
    labelings = all_labelings(5)
    for hard in (False, True):
        out = count_messages(
            row[None], np.ones((1, 6), bool), [2.0], 0.7, hard, temperature=0.0, max_product=True
        )
        for i in range(6):
            score = labelings @ np.delete(row, i)
            total = labelings.sum(axis=1)
            with np.errstate(divide="ignore"):
                log_f = (lambda s: np.log((s == 2.0) * 1.0)) if hard else (lambda s: -0.7 * (s - 2.0) ** 2)
                expected = np.max(score + log_f(total + 1)) - np.max(score + log_f(total))
            np.testing.assert_allclose(out[0, i], expected, atol=1e-5)


@pytest.mark.slow
def test_gaussian_messages_approximate_the_exact_count_messages():
    """On a bag of 200 members with cavity probabilities in [0.2, 0.8] (cavity count mean ~103, sd ~6.5),
    the Gaussian message is within 0.02 log-odds of the exact one (messages up to 0.65) for counts up to
    4 sd from the mean, soft and hard; within 2e-4 at the mean."""
    rng = np.random.default_rng(15)
    cavity = rng.uniform(-1.4, 1.4, (1, 200))
    mask = np.ones((1, 200), bool)
    gaussian = jax.jit(bag_gaussian_messages, static_argnums=5)
    for lambda_b, hard in [(0.1, False), (1.0, False), (10.0, False), (1.0, True)]:
        for count, tolerance in [(80.0, 0.02), (100.0, 2e-4), (130.0, 0.02)]:
            exact = count_messages(cavity, mask, [count], lambda_b, hard)
            approx = gaussian(
                jnp.asarray(cavity, jnp.float32), jnp.asarray(mask), jnp.array([count], jnp.float32),
                jnp.float32(lambda_b), jnp.float32(1.0), hard,
            )  # fmt: skip
            np.testing.assert_allclose(
                np.asarray(approx), exact, atol=tolerance, err_msg=f"{lambda_b} {hard} {count}"
            )


# ----------------------------------------------------------------------------------------------------
# Settings, the bag factor registry, input checks


def test_bag_factor_setting_is_a_str_enum_of_the_registry():
    assert [name.value for name in BagFactorName] == list(BAG_FACTORS)
    default = BPSettings().bag_factor
    assert default is BagFactorName("count") and default == "count" and isinstance(default, str)
    assert BPSettings._field_defaults["bag_factor"] is default
    checked = check_settings(BPSettings(bag_factor="clique"))
    assert checked.bag_factor is BagFactorName("clique") and checked.bag_factor == "clique"
    assert check_settings(checked) == checked


def test_each_bag_factor_lays_out_its_bags():
    """count pads the rows to a power of two, gaussian keeps them, clique adds them as pairwise factors."""
    graph = graph_of(8, [0, 5], [1, 6], [1.0, 0.5])
    bags = bags_of([[0, 1, 2], [3, 4]], [1.0, 2.0])
    count = build_problem(graph, bags, BPSettings(bag_factor="count"))
    assert count.bag_members.shape == count.bag_mask.shape == (2, 4)
    np.testing.assert_array_equal(np.asarray(count.bag_mask)[:, 3], False)
    gaussian = build_problem(graph, bags, BPSettings(bag_factor="gaussian"))
    assert gaussian.bag_members.shape == (2, 3)
    clique = build_problem(graph, bags, BPSettings(bag_factor="clique"))
    assert clique.bag_members.shape == (2, 3)  # kept for BPResult.count_gap; they send no messages
    # 2 similarity edges and 3 + 1 bag pairs, padded to the bucket of 8 edges
    assert clique.senders.shape == clique.receivers.shape == clique.couplings.shape == (2, 8)
    np.testing.assert_array_equal(np.asarray(clique.couplings)[:, 2:6], -2.0 * 10.0)
    np.testing.assert_array_equal(np.asarray(clique.receivers)[:, :6], np.asarray(clique.senders)[::-1, :6])
    np.testing.assert_array_equal(np.asarray(count.field), np.asarray(gaussian.field))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(senders=[0, 3]), "senders\\[1\\]=3 >= receivers\\[1\\]=3"),
        (dict(receivers=[1, 9]), "receivers\\[1\\]=9 is outside"),
        (dict(weights=[1.0, np.nan]), "weights\\[1\\] is not finite"),
        (dict(weights=[1.0]), "same length"),
        (dict(counts=[4.0]), "bags.counts\\[0\\]=4.0 is outside \\[0, size=3\\]"),
        (dict(members=[[0, 1, 1]]), "node 1 is in more than one bag"),
        (dict(members=[[0, 1, 7]]), "bags.members holds node 7"),
        (dict(mask=None), "bags.mask is None"),
        (dict(n=0), "graph.n_nodes=0"),
        (dict(counts=[1.5], settings=BPSettings(hard_counts=True)), "integer counts"),
        (dict(unary=np.zeros(3)), "unary has shape"),
        (dict(settings=BPSettings(bag_factor="star")), "bag_factor='star'"),
        (dict(settings=BPSettings(damping=1.0)), "damping=1.0"),
        (dict(settings=BPSettings(temperature=-1.0)), "temperature=-1.0"),
        (dict(settings=BPSettings(max_iters=0)), "max_iters=0"),
        (
            dict(settings=BPSettings(bag_factor="clique", hard_counts=True)),
            "hard_counts=True with bag_factor='clique'",
        ),
        (
            dict(settings=BPSettings(bag_factor="gaussian", temperature=0.0)),
            "max-product.*bag_factor='count'",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    args = dict(
        n=5, senders=[0, 2], receivers=[1, 3], weights=[1.0, 0.5], members=[[0, 1, 4]],
        mask=[[True, True, True]], counts=[1.0], settings=BPSettings(), unary=None,
    )  # fmt: skip
    args.update(change)
    graph = graph_of(args["n"], args["senders"], args["receivers"], args["weights"])
    bags = Bags(args["members"], args["mask"], [3], args["counts"])  # built by hand: may be malformed
    with pytest.raises(ValueError, match=message):
        run_bp(graph, bags, args["settings"], unary=args["unary"])
