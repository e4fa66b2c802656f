"""Tests of the K-class count likelihood (a composite of binary count likelihoods) against brute-force
enumeration of all K^B labelings in float64, its gradient against autodiff of that oracle and finite
differences, DLLP's K-class cross-entropy against numpy, both against their binary forms at K = 2, and the
host check of count vectors (issue 26, DESIGN.md section 8)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import EPS32, float32_sum_error

from llp_jax.train.class_counts import (
    bag_proportion_cross_entropy,
    bag_proportion_cross_entropy_per_bag,
    check_class_counts,
    class_count_log_likelihood,
)
from llp_jax.train.count_likelihood import count_log_likelihood
from llp_jax.train.losses import PROBABILITY_EPS, proportion_bce_per_bag

# ----------------------------------------------------------------------------------------------------
# Oracles (float64, members of one bag only: no padding)


def _labelings(size: int, n_classes: int) -> np.ndarray:
    """int[K^size, size]: every labelling of `size` members."""
    return np.array(list(itertools.product(range(n_classes), repeat=size)))


def brute_class_terms(logits, counts) -> np.ndarray:
    """float64[K-1]: log P(#{i : y_i = c} = k_c) for c < K-1 by summing the probability of every labelling.
    logits: float[size, K]; counts: int[K]."""
    logits = np.asarray(logits, np.float64)
    size, n_classes = logits.shape
    log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    labelings = _labelings(size, n_classes)
    prob = np.exp(log_p[np.arange(size), labelings].sum(axis=1))
    return np.array(
        [np.log(prob[(labelings == c).sum(axis=1) == counts[c]].sum()) for c in range(n_classes - 1)]
    )


def jnp_composite(logits, counts):
    """The same composite in jnp, for jax.grad under jax.enable_x64 (logsumexp over labelings rather than
    a sum of probabilities: another route to the same number). logits: float64[size, K]; counts: int[K]
    (an array: one compilation per bag size)."""
    size, n_classes = logits.shape
    labelings = _labelings(size, n_classes)
    log_p = jax.nn.log_softmax(logits, axis=-1)
    log_prob = jnp.sum(log_p[jnp.arange(size), labelings], axis=1)
    total = 0.0
    for c in range(n_classes - 1):
        hits = (labelings == c).sum(axis=1) == counts[c]
        total += jax.nn.logsumexp(jnp.where(hits, log_prob, -jnp.inf))
    return total


ORACLE_GRADIENT = jax.jit(jax.grad(jnp_composite))


def likelihood_tolerance(logits, counts) -> float:
    """How far the float32 composite can lie from the exact one for one bag (logits float[size, K]).
    Each class term is the binary likelihood, a float32 value made of about 2 size + 2 rounded terms (the
    size members' untilt terms, the size - 1 tree scales, the root's log and the one-vs-rest log-odds),
    whose magnitudes add to at most |T_c| + sum_i (|o_ic| + max_a |l_ia| + 1): each member's untilt term is
    a difference of softplus values no larger than |o_ic| + 1, and its log-odds, l_c - logsumexp, is
    rounded relative to |l| (log P moves by at most 1 per unit of log-odds). The K - 1 terms then add."""
    logits = np.asarray(logits, np.float64)
    size, n_classes = logits.shape
    terms = brute_class_terms(logits, counts)
    log_odds = np.stack(
        [logits[:, c] - np.logaddexp.reduce(np.delete(logits, c, axis=1), axis=1) for c in range(n_classes)],
        axis=1,
    )
    scale = np.abs(logits).max(axis=1)
    per_class = [
        float32_sum_error(2 * size + 2, abs(terms[c]) + np.sum(np.abs(log_odds[:, c]) + scale + 1.0))
        for c in range(n_classes - 1)
    ]
    return sum(per_class) + float32_sum_error(n_classes - 1, np.abs(terms).sum())


def _batch(bags, counts, width, padding=0.0):
    """Padded float32 logits [n_bags, width, K], mask and counts [n_bags, K] of bags (float[size, K])."""
    n_classes = bags[0].shape[1]
    logits = np.full((len(bags), width, n_classes), padding, np.float32)
    mask = np.zeros((len(bags), width), bool)
    for row, bag in enumerate(bags):
        logits[row, : len(bag)], mask[row, : len(bag)] = bag, True
    return logits, mask, np.asarray(counts, np.float32)


def _cases(n_classes, sizes, seed):
    """Bags (float32-representable float64 logits [size, K]) and count vectors: one drawn from the model's
    labelings, plus the extremes (all in class 0, none in class 0, all in the last class); one member of
    each bag confident (+12 on a class)."""
    rng = np.random.default_rng(seed)
    bags, counts = [], []
    for size in sizes:
        logits = rng.normal(scale=2.5, size=(size, n_classes)).astype(np.float32).astype(np.float64)
        logits[0, rng.integers(n_classes)] = 12.0
        drawn = np.bincount(rng.integers(0, n_classes, size), minlength=n_classes)
        extremes = np.zeros((3, n_classes), int)
        extremes[0, 0], extremes[1, 1], extremes[2, -1] = size, size, size
        for count in [drawn, *extremes]:
            bags.append(logits)
            counts.append(count)
    return bags, counts


# ----------------------------------------------------------------------------------------------------
# The count likelihood


LIKELIHOOD_CASES = [(3, [1, 2, 3, 4, 5], 5), (4, [1, 3, 5, 2], 6)]  # (K, bag sizes, width)


@jax.jit
def _value_and_gradient(logits, mask, counts):
    """The composite of each bag, float32[n_bags], and the gradient of their sum, float32[n_bags, width, K]
    (one compilation serves the value and the gradient tests)."""

    def total(x):
        values = class_count_log_likelihood(x, mask, counts)
        return jnp.sum(values), values

    (_, values), gradient = jax.value_and_grad(total, has_aux=True)(logits)
    return values, gradient


def _likelihood_case(n_classes, sizes, width):
    """bags, counts and _value_and_gradient's value and gradient on them, padded to `width` with NaN (it
    must reach neither)."""
    bags, counts = _cases(n_classes, sizes, seed=n_classes)
    logits, mask, counts_in = _batch(bags, counts, width, padding=np.nan)
    values, gradient = _value_and_gradient(jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(counts_in))
    return bags, counts, mask, np.asarray(values), np.asarray(gradient)


@pytest.mark.parametrize("n_classes, sizes, width", LIKELIHOOD_CASES)
def test_the_composite_likelihood_matches_enumeration(n_classes, sizes, width):
    """Bags of unequal sizes padded to one width, with count vectors drawn and extreme."""
    bags, counts, _, got, _ = _likelihood_case(n_classes, sizes, width)
    want = np.array([brute_class_terms(bag, k).sum() for bag, k in zip(bags, counts, strict=True)])
    tolerance = np.array([likelihood_tolerance(bag, k) for bag, k in zip(bags, counts, strict=True)])
    # measured: at most 4.7e-6, 0.045 of the tolerance (1.8e-5 to 3.1e-4); moving one member's count
    # from class 0 to the last moves log P by 0.4 or more here
    assert np.all(np.abs(got - want) <= tolerance), np.abs(got - want) / tolerance


def test_two_classes_give_the_binary_likelihood_of_either_class():
    """K = 2: the class-0 indicators' binary likelihood at logit l_0 - l_1 (the exact count-vector
    likelihood), and the same number from class 1's (logit l_1 - l_0, count k_1) within rounding."""
    rng = np.random.default_rng(7)
    sizes, width = [1, 4, 7, 9], 9
    bags = [rng.normal(scale=3.0, size=(size, 2)).astype(np.float32).astype(np.float64) for size in sizes]
    first = [rng.integers(0, size + 1) for size in sizes]
    counts = [[k, size - k] for k, size in zip(first, sizes, strict=True)]
    logits, mask, counts_in = _batch(bags, counts, width)
    got = np.asarray(
        class_count_log_likelihood(jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(counts_in))
    )
    difference = jnp.asarray(logits[..., 0] - logits[..., 1])
    class_0 = np.asarray(count_log_likelihood(difference, jnp.asarray(mask), jnp.asarray(counts_in[:, 0])))
    class_1 = np.asarray(count_log_likelihood(-difference, jnp.asarray(mask), jnp.asarray(counts_in[:, 1])))
    tolerance = np.array([likelihood_tolerance(bag, k) for bag, k in zip(bags, counts, strict=True)])
    # The same float32 inputs (the one-vs-rest log-odds of K = 2 is l_0 - l_1 exactly): measured identical;
    # class 1's within 4.8e-7.
    np.testing.assert_allclose(got, class_0, rtol=4 * EPS32, atol=0.0)
    assert np.all(np.abs(got - class_1) <= 2 * tolerance)


@pytest.mark.parametrize("n_classes, sizes, width", LIKELIHOOD_CASES)
def test_the_gradient_matches_autodiff_of_the_oracle_and_finite_differences(n_classes, sizes, width):
    """d/d logits of the float32 composite against jax.grad of the float64 enumeration (jnp) and central
    differences of the numpy one; padding slots (NaN) get exactly 0.
    Tolerance: each class term's gradient is P(y_i = c | s_c = k_c) - p_ic = sigmoid(o_ic + m_i) -
    sigmoid(o_ic), whose message m_i is a difference of two log-probabilities of the bag's other members,
    as accurate as the value (likelihood_tolerance, twice), taken through sigmoid's slope (<= 1/4) and the
    chain rule to the logits (|d o_c / d l_a| <= 1): likelihood_tolerance per entry, with room to spare."""
    bags, counts, mask, _, grad = _likelihood_case(n_classes, sizes, width)
    assert np.all(grad[~mask] == 0.0)
    step = 1e-6
    for row, (bag, count) in enumerate(zip(bags, counts, strict=True)):
        with jax.enable_x64(True):
            autodiff = np.asarray(ORACLE_GRADIENT(jnp.asarray(bag, jnp.float64), jnp.asarray(count)))
        shifts = step * np.eye(bag.size).reshape(bag.size, *bag.shape)
        numeric = np.array(
            [
                (brute_class_terms(bag + shift, count).sum() - brute_class_terms(bag - shift, count).sum())
                / (2 * step)
                for shift in shifts
            ]
        ).reshape(bag.shape)
        tolerance = likelihood_tolerance(bag, count)
        # measured: at most 2.7e-7 (the gradients up to 2), the tolerances 1.8e-5 or more
        np.testing.assert_allclose(grad[row, : len(bag)], autodiff, rtol=0.0, atol=tolerance)
        np.testing.assert_allclose(grad[row, : len(bag)], numeric, rtol=0.0, atol=tolerance)


# ----------------------------------------------------------------------------------------------------
# DLLP's K-class cross-entropy


def numpy_cross_entropy(logits, mask, proportions) -> np.ndarray:
    """float64[n_bags]: -sum_c alpha_c log(clip(mean softmax_c)), the mean over real members only."""
    logits = np.asarray(logits, np.float64)
    softmax = np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))
    mean = np.array([softmax[b][mask[b]].mean(axis=0) for b in range(len(mask))])
    return -np.sum(proportions * np.log(np.clip(mean, PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)), axis=1)


def _proportion_batch(n_classes, width, seed):
    """float32 logits [5, width, K] (junk in the padding, a saturated bag), mask, proportions [5, K]."""
    rng = np.random.default_rng(seed)
    sizes = np.array([1, 2, width - 1, width, 3])
    logits = rng.normal(scale=2.0, size=(5, width, n_classes)).astype(np.float32)
    logits[4, :, 0] = 40.0  # all but certainly class 0, against a proportion of 1/3 elsewhere: the clip
    mask = np.arange(width)[None] < sizes[:, None]
    logits[~mask] = 1e4
    counts = np.array([np.bincount(rng.integers(0, n_classes, s), minlength=n_classes) for s in sizes])
    counts[4] = [1, *([0] * (n_classes - 2)), 2]
    return logits, mask, (counts / sizes[:, None]).astype(np.float32)


def cross_entropy_tolerance(logits, mask, proportions) -> np.ndarray:
    """float64[n_bags]: each mean probability m_c is a float32 sum of at most `width` positive softmax
    values (a few ulps each) over a count, within (width + 4) eps32 relative, so that log m_c is within as
    much absolute; the K terms alpha_c log m_c then add."""
    width, n_classes = logits.shape[1:]
    loss = numpy_cross_entropy(logits, mask, proportions)
    return (width + 4) * EPS32 * proportions.sum(axis=1) + np.array(
        [float32_sum_error(n_classes, abs(value)) for value in loss]
    )


@pytest.mark.parametrize("n_classes", [3, 4])
def test_the_cross_entropy_matches_numpy(n_classes):
    logits, mask, proportions = _proportion_batch(n_classes, width=6, seed=n_classes)
    args = jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(proportions)
    got = np.asarray(bag_proportion_cross_entropy_per_bag(*args))
    want = numpy_cross_entropy(logits, mask, proportions)
    assert want[4] > 10.0  # the saturated bag reaches the clip: 2/3 of -log(1e-7)
    assert np.all(np.abs(got - want) <= cross_entropy_tolerance(logits, mask, proportions))
    assert float(bag_proportion_cross_entropy(*args)) == pytest.approx(np.mean(got), rel=4 * EPS32)


def test_two_classes_give_the_binary_proportion_bce():
    """Logits [0, l]: softmax class 1 = sigmoid(l), so the cross-entropy at proportions [1 - alpha, alpha]
    is proportion_bce_per_bag(l, alpha). The binary takes log1p(-m_1), whose argument 1 - m_1 keeps only
    the absolute precision of m_1: within (width + 5) eps32 (1 + m_1 / m_0) relative, hence the tolerance."""
    rng = np.random.default_rng(3)
    width, sizes = 7, np.array([1, 3, 7, 5])
    margin = rng.uniform(-4.0, 4.0, size=(4, width)).astype(np.float32)
    mask = np.arange(width)[None] < sizes[:, None]
    alpha = (rng.integers(0, sizes + 1) / sizes).astype(np.float32)
    logits = np.stack([np.zeros_like(margin), margin], axis=-1)
    proportions = np.stack([1.0 - alpha, alpha], axis=-1).astype(np.float32)
    got = np.asarray(
        bag_proportion_cross_entropy_per_bag(jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(proportions))
    )
    want = np.asarray(proportion_bce_per_bag(jnp.asarray(margin), jnp.asarray(mask), jnp.asarray(alpha)))
    m_1 = np.array([(1.0 / (1.0 + np.exp(-margin[b][mask[b]].astype(np.float64)))).mean() for b in range(4)])
    tolerance = (width + 5) * EPS32 * (2.0 + m_1 / (1.0 - m_1))
    assert np.all(np.abs(got - want) <= tolerance)


@pytest.mark.slow
def test_the_cross_entropys_gradient_matches_finite_differences():
    """Tolerance: d/d l_ia = -(1/n) sum_c alpha_c / m_c p_ic ([a = c] - p_ia), each of its terms (at most
    2 alpha_c / m_c in size) within (width + K + 8) eps32 relative (m_c's sum, softmax, products)."""
    n_classes, width = 3, 6
    logits, mask, proportions = _proportion_batch(n_classes, width, seed=9)
    logits, mask, proportions = logits[:4], mask[:4], proportions[:4]  # not the clipped bag: no gradient
    grad = np.asarray(
        jax.grad(lambda x: jnp.sum(bag_proportion_cross_entropy_per_bag(x, jnp.asarray(mask), proportions)))(
            jnp.asarray(logits)
        )
    )
    assert np.all(grad[~mask] == 0.0)
    base, step = logits.astype(np.float64), 1e-6
    numeric = np.zeros_like(base)
    for index in zip(*np.nonzero(np.broadcast_to(mask[..., None], base.shape)), strict=True):
        shift = np.zeros_like(base)
        shift[index] = step
        up = numpy_cross_entropy(base + shift, mask, proportions).sum()
        numeric[index] = (up - numpy_cross_entropy(base - shift, mask, proportions).sum()) / (2 * step)
    softmax = np.exp(base - np.logaddexp.reduce(base, axis=-1, keepdims=True))
    means = np.array([softmax[b][mask[b]].mean(axis=0) for b in range(len(mask))])
    scale = 2.0 * np.sum(proportions / means, axis=1)[:, None, None]
    assert np.all(np.abs(grad - numeric) <= (width + n_classes + 8) * EPS32 * scale + 1e-8)


# ----------------------------------------------------------------------------------------------------
# check_class_counts


def test_good_counts_come_back_as_float64():
    counts = np.array([[1, 2, 0], [0, 0, 4]], np.int32)
    got = check_class_counts(counts, np.array([3, 4]), n_classes=3)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, counts)


@pytest.mark.parametrize(
    "counts, sizes, match",
    [
        ([1.0, 2.0, 0.0], [3], r"2-D \[n_bags, K\]; got shape \(3,\)"),
        ([[1.0, 2.0]], [3], "2 columns but there are K = 3 classes"),
        ([[1.0, 2.0, 0.0]], [3, 4], "1 bags of class counts but 2 bag sizes"),
        ([[1.0, 2.0, 0.0], [2.0, -1.0, 3.0]], [3, 4], "bag 1 has count -1.0 for class 1"),
        ([[1.0, np.nan, 2.0]], [3], "bag 0 has count nan for class 1"),
        ([[1.0, 2.0, np.inf]], [3], "bag 0 has count inf for class 2"),
        (
            [[1.0, 2.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 1.0]],
            [3, 3, 6],
            "bag 2's class counts sum to 5 but its size is 6",
        ),
    ],
)
def test_bad_counts_name_the_bag_and_the_value(counts, sizes, match):
    with pytest.raises(ValueError, match=match):
        check_class_counts(np.array(counts), np.array(sizes), n_classes=3)
