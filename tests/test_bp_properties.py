"""Properties of llp_jax.bp on random small problems drawn by hypothesis: the marginals are probabilities
whatever the bag factor and the scale; sum-product BP is exact on trees (against brute-force enumeration);
a hard count on a lone bag holds exactly. Every problem has N nodes and few distinct shapes, so that BP
compiles a few times per property rather than once per example."""

from __future__ import annotations

import hypothesis
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

# The enumeration oracle and the input builders of the example-based tests (tests/ is on the path).
from test_bp import bags_of, brute_marginals, graph_of

from llp_jax.bp import BAG_FACTORS, BPSettings, run_bp
from llp_jax.data.bags import Bags

pytestmark = pytest.mark.filterwarnings("ignore::llp_jax.bp.CountGapWarning")  # far from counts on purpose

N = 8  # nodes of every problem: 256 labelings to enumerate
# 40 BP runs per property, the same every run (derandomize); no deadline: the first example of each shape
# compiles (~1 s).
PROPERTY = hypothesis.settings(max_examples=40, deadline=None, derandomize=True)


def weights(size, low):
    return arrays(np.float64, size, elements=st.floats(low, 1.0))


def unaries(bound):
    return arrays(np.float64, N, elements=st.floats(-bound, bound))


def two_bags(order, sizes, counts):
    """Bags of the first sizes[0] of order[:4] and the first sizes[1] of order[4:], always 4 slots wide."""
    members = np.asarray(order, np.int32).reshape(2, 4)
    mask = np.arange(4)[None, :] < np.asarray(sizes)[:, None]
    return Bags(members, mask, mask.sum(axis=1).astype(np.int32), np.asarray(counts, np.float32))


@st.composite
def loopy_problems(draw):
    """A graph of N nodes with 10 distinct weighted edges, two disjoint bags of 1 to 4 members, a unary, and
    BP settings of any bag factor with what it supports, lambdas from 0.1 to 1e4."""
    pairs = [(i, j) for i in range(N) for j in range(i + 1, N)]
    senders, receivers = np.array(
        draw(st.lists(st.sampled_from(pairs), min_size=10, max_size=10, unique=True))
    ).T
    sizes = [draw(st.integers(1, 4)) for _ in range(2)]
    bags = two_bags(draw(st.permutations(range(N))), sizes, [draw(st.integers(0, size)) for size in sizes])
    name = draw(st.sampled_from(list(BAG_FACTORS)))
    factor, scale = BAG_FACTORS[name], st.sampled_from([0.1, 1.0, 10.0, 1e4])
    temperatures = [0.5, 1.0, 2.0] + ([0.0] if factor.no_max_product is None else [])
    bp = BPSettings(
        lambda_s=draw(scale),
        lambda_b=draw(scale),
        bag_factor=name,
        hard_counts=factor.no_hard_counts is None and draw(st.booleans()),
        temperature=draw(st.sampled_from(temperatures)),
        max_iters=30,
    )
    return graph_of(N, senders, receivers, draw(weights(10, 0.01))), bags, draw(unaries(5.0)), bp


@pytest.mark.slow
@PROPERTY
@given(loopy_problems())
def test_marginals_are_probabilities(problem):
    graph, bags, unary, bp = problem
    result = run_bp(graph, bags, bp, unary=unary)
    marginals = np.asarray(result.marginals)
    assert np.all((marginals >= 0.0) & (marginals <= 1.0))  # False for NaN too
    assert np.all(np.isfinite(np.asarray(result.log_odds))) and np.isfinite(float(result.count_gap))


@st.composite
def tree_problems(draw):
    """A tree factor graph on N nodes: no bag, or one bag of 2 to 4 members joining a forest in which each
    tree holds one member (in a random order, the members come first and every later node hangs from a
    random node before it); soft or hard counts at temperature 1 or 0.5."""
    size = draw(st.sampled_from([0, 2, 3, 4]))
    order = np.array(draw(st.permutations(range(N))))
    roots = max(size, 1)
    parents = [draw(st.integers(0, p - 1)) for p in range(roots, N)]
    child, parent = order[roots:], order[parents]
    edges = (np.minimum(child, parent), np.maximum(child, parent), draw(weights(N - roots, 0.05)))
    bags = [(order[:size], draw(st.integers(0, size)))] if size else []
    lambdas = st.floats(0.1, 2.0)
    bp = dict(lambda_s=draw(lambdas), lambda_b=draw(lambdas), hard_counts=draw(st.booleans()))
    return edges, bags, draw(unaries(2.0)), bp, draw(st.sampled_from([1.0, 0.5]))


@PROPERTY
@given(tree_problems())
def test_sum_product_is_exact_on_trees(problem):
    edges, bags, unary, bp, temperature = problem
    bag_tuple = bags_of([m for m, _ in bags], [k for _, k in bags]) if bags else None
    settings = BPSettings(**bp, temperature=temperature, max_iters=60, damping=0.3, early_stop=False)
    result = run_bp(graph_of(N, *edges), bag_tuple, settings, unary=unary)
    expected = brute_marginals(
        N, edges, bags, bp["lambda_s"], bp["lambda_b"], bp["hard_counts"], unary, temperature
    )
    np.testing.assert_allclose(np.asarray(result.marginals), expected, atol=1e-4)


@PROPERTY
@given(
    arrays(bool, N).filter(np.any),
    st.floats(0.0, 1.0),
    unaries(30.0),
    st.sampled_from([0.5, 1.0, 2.0]),
)
def test_a_hard_count_on_a_lone_bag_holds(mask, share, unary, temperature):
    """No edges: the bag's factor graph is a star, BP is exact, and the expected count is k_b."""
    count = round(share * mask.sum())
    bags = Bags(np.arange(N, dtype=np.int32)[None], mask[None], [mask.sum()], [float(count)])
    no_edges = graph_of(N, np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0))
    result = run_bp(no_edges, bags, BPSettings(hard_counts=True, temperature=temperature), unary=unary)
    assert bool(result.converged)
    assert np.asarray(result.marginals)[mask].sum() == pytest.approx(count, abs=1e-3)
