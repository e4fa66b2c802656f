"""Tests of the exact count log-likelihood and its gradient against brute-force enumeration of all 2^n
labelings, an independent float64 dynamic program and autodiff through the count tree, and of CountLoss end
to end."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import float32_sum_error

from llp_jax.bp import factors
from llp_jax.config import compose
from llp_jax.experiment import run_experiment
from llp_jax.train import count_likelihood
from llp_jax.train.count_likelihood import count_log_likelihood

# ----------------------------------------------------------------------------------------------------
# Oracles


def brute_log_p(logits, count):
    """log P(sum y = count) by summing the probability of every labelling: float64."""
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    labelings = np.array(list(itertools.product([0.0, 1.0], repeat=len(p))))
    prob = np.prod(np.where(labelings == 1.0, p, 1.0 - p), axis=1)
    return np.log(prob[labelings.sum(axis=1) == count].sum())


def brute_gradient(logits, count):
    """float64[n]: d log P(sum y = count) / d logit_i by enumeration, P(y_i = 1 | S = k) - p_i taken as
    p_i q_i (P(S_-i = k - 1) - P(S_-i = k)) / P(S = k) (q_i = 1 - p_i computed as sigmoid(-logit_i)), which
    keeps its relative precision at confident members where 1 - p_i in float64 does not; interpolated
    between floor and ceil of a fractional count like the value."""
    logits = np.asarray(logits, np.float64)
    p, q = 1.0 / (1.0 + np.exp(-logits)), 1.0 / (1.0 + np.exp(logits))
    others = np.array(list(itertools.product([0.0, 1.0], repeat=len(p) - 1)))

    def at(k):
        out = []
        for i in range(len(p)):
            prob = np.prod(np.where(others == 1.0, np.delete(p, i), np.delete(q, i)), axis=1)
            below, at_k = prob[others.sum(axis=1) == k - 1].sum(), prob[others.sum(axis=1) == k].sum()
            out.append(p[i] * q[i] * (below - at_k) / (p[i] * below + q[i] * at_k))
        return np.array(out)

    weight = count - np.floor(count)
    return (1.0 - weight) * at(np.floor(count)) + weight * at(np.ceil(count))


def dp_log_p(logits):
    """float64[n + 1]: log P(sum y = s) for s = 0..n, by adding one member at a time in the log domain."""
    logits = np.asarray(logits, np.float64)
    log_one, log_zero = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
    out = np.array([0.0])
    for lz, lo in zip(log_zero, log_one, strict=True):
        out = np.logaddexp(np.append(out + lz, -np.inf), np.insert(out + lo, 0, -np.inf))
    return out


def _batch(bags, counts, width):
    """Padded float32 logits, mask and counts of bags (lists of logits) in rows of `width`."""
    logits = np.zeros((len(bags), width), np.float32)
    mask = np.zeros((len(bags), width), bool)
    for row, bag in enumerate(bags):
        logits[row, : len(bag)], mask[row, : len(bag)] = bag, True
    return jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(counts, jnp.float32)


# ----------------------------------------------------------------------------------------------------
# Exactness


def test_small_bags_of_unequal_sizes_match_enumeration():
    rng = np.random.default_rng(0)
    bags, counts = [], []
    for n in range(1, 13):
        logits = rng.normal(scale=3.0, size=n)
        for count in sorted({0, 1, n // 2, n - 1, n}):
            bags.append(logits)
            counts.append(count)
    # Bags of 1..12 members padded to one width of 13 (not a power of two) in one batch.
    got = np.asarray(count_log_likelihood(*_batch(bags, counts, width=13)))
    want = np.array([brute_log_p(bag, count) for bag, count in zip(bags, counts, strict=True)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_width_that_is_a_power_of_two_and_a_bag_of_one():
    logits, mask, counts = _batch([[2.0], [0.5, -1.0, 3.0, 0.0]], [1, 2], width=4)
    got = np.asarray(count_log_likelihood(logits, mask, counts))
    np.testing.assert_allclose(got, [brute_log_p([2.0], 1), brute_log_p([0.5, -1.0, 3.0, 0.0], 2)], rtol=1e-5)


LARGE = 4096
# Tolerances of log P at 4,096 members, from the float32 sums that make it (count_likelihood.py):
# log P = log_root + log_scale + untilt, where untilt sums 4,096 members' terms (each -KL <= 0) and
# log_scale the logs of 4,095 tree nodes' scales (each <= 0): neither sum cancels, so the absolute values
# of their terms add to about |log P| wherever |log P| is large (the extreme counts: thousands of nats).
# - RTOL: the order of those sums (a GPU's tree reduction, not the CPU's) moves them by up to
#   float32_sum_error(4096, |log P|, typical=True) = sqrt(4096) eps32 = 7.6e-6 relative; each member's
#   term is itself a difference of softplus values whose magnitudes add to at most 7.2 times the term
#   (measured at count 4,096 of the spread bag), a few ulps each: ~30 eps32 more, under a second
#   sqrt(n) eps32. Hence 2 sqrt(n) eps32 = 1.5e-5. Measured: 4.8e-7 relative on an H200 (counts 0 and
#   4,096 of the spread bag, -8,573 and -8,688), 1.4e-7 on the CPU: 30 times below. The worst case,
#   (n - 1) eps32 = 4.9e-4 relative (4.2 nats at -8,688), would hide an off-by-one count in the tails.
# - ATOL: near the mode |log P| is a few nats, but the softplus values of untilt's terms still add to
#   ~900 (count 2,083: 919) and lose a few ulps each (4 u 919 = 2.2e-4), and log_root is the log of 12
#   levels of convolutions of positive terms (sums of at most 3, 5, ..., 308 terms, the windows: at most
#   1,000 u = 6e-5 relative all told, whatever their order); measured at most 1.3e-4 (count 1,207 of the
#   confident bag).
ATOL, RTOL = 1e-3, 2 * float32_sum_error(LARGE, 1.0, typical=True)


def _large_cases():
    """(logits float64[4096], counts) of the large-bag oracle tests."""
    rng = np.random.default_rng(1)
    spread = rng.uniform(-8.0, 8.0, LARGE)
    mean = int((1.0 / (1.0 + np.exp(-spread))).sum())
    confident = np.where(rng.random(LARGE) < 0.3, 30.0, -30.0)
    positives = int((confident > 0).sum())
    return [
        (spread, [0, 10, mean, mean + 50, 3000, LARGE]),  # 10 and 3000: far in the tails
        (confident, [positives, positives + 1, positives - 3, 0, LARGE]),
    ]


@pytest.mark.slow
def test_bags_of_4096_match_a_float64_dynamic_program():
    for logits, counts in _large_cases():
        want = dp_log_p(logits)[counts]
        rows = jnp.asarray(np.tile(logits, (len(counts), 1)), jnp.float32)
        got = np.asarray(
            count_log_likelihood(rows, jnp.ones(rows.shape, bool), jnp.asarray(counts, jnp.float32))
        )
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_the_accelerators_summation_matches_the_oracles_on_the_cpu(monkeypatch):
    """factors.FORCE_HANKEL: the Hankel reduction that accelerators run, here on the CPU, in a function traced
    afresh (the switch is read when a function is traced)."""
    monkeypatch.setattr(factors, "FORCE_HANKEL", True)
    hankel = jax.jit(lambda *args: count_log_likelihood.__wrapped__(*args))
    rng = np.random.default_rng(4)
    bags = [rng.normal(scale=3.0, size=n) for n in (1, 5, 12)]
    got = np.asarray(hankel(*_batch(bags, [1, 2, 7], width=12)))
    want = [brute_log_p(bag, count) for bag, count in zip(bags, [1, 2, 7], strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for logits, counts in _large_cases():
        rows = jnp.asarray(np.tile(logits, (len(counts), 1)), jnp.float32)
        got = np.asarray(hankel(rows, jnp.ones(rows.shape, bool), jnp.asarray(counts, jnp.float32)))
        np.testing.assert_allclose(got, dp_log_p(logits)[counts], rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_a_confident_bag_at_its_count_has_probability_one_and_finite_gradients():
    logits = np.where(np.arange(LARGE) % 3 == 0, 30.0, -30.0).astype(np.float32)[None]
    mask, count = jnp.ones(logits.shape, bool), jnp.asarray([(logits > 0).sum()], jnp.float32)
    value, grad = jax.value_and_grad(lambda x: count_log_likelihood(x, mask, count)[0])(jnp.asarray(logits))
    assert abs(float(value)) < ATOL
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_fractional_counts_interpolate_log_p_linearly():
    logits = np.random.default_rng(2).normal(scale=2.0, size=9)
    counts = [3.0, 3.25, 3.5, 4.0, 8.9, 9.0, 0.1]
    got = np.asarray(count_log_likelihood(*_batch([logits] * len(counts), counts, width=9)))
    exact = dp_log_p(logits)
    want = [
        (1 - (k - np.floor(k))) * exact[int(np.floor(k))] + (k - np.floor(k)) * exact[int(np.ceil(k))]
        for k in counts
    ]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_count_outside_zero_to_the_bag_size_gets_the_clipped_counts_likelihood():
    """A count rebuilt as proportion * size can pass |b| by a float32 step, or fall below 0: it gets the
    log-likelihood of the count clipped to [0, |b|], each bag at its own size (a bag of 3 in a row of 5
    clips at 3), finite (unclipped, the interpolation reaches log P(|b| + 1) or log P(-1) = -inf); oracle:
    the float64 dynamic program at the clipped count."""
    rng = np.random.default_rng(8)
    five, three = rng.normal(scale=2.0, size=5), rng.normal(scale=2.0, size=3)
    up = np.nextafter(np.float32(5.0), np.float32(6.0)), np.nextafter(np.float32(3.0), np.float32(4.0))
    bags = [five, three, five, three, five]
    counts = [up[0], up[1], 5.5, -1e-6, -0.25]
    clipped = [5, 3, 5, 0, 0]
    got = np.asarray(count_log_likelihood(*_batch(bags, counts, width=5)))
    assert np.all(np.isfinite(got))
    want = [dp_log_p(bag)[k] for bag, k in zip(bags, clipped, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("count", [0, 4, 10])
def test_the_gradient_matches_finite_differences_of_the_float64_oracle(count):
    logits = np.random.default_rng(3).normal(scale=3.0, size=10)
    logits[0] = 12.0  # a confident member too
    rows, mask, counts = _batch([logits], [count], width=10)
    grad = np.asarray(jax.grad(lambda x: count_log_likelihood(x, mask, counts)[0])(rows))[0]
    step = 1e-5
    numeric = [
        (dp_log_p(logits + step * np.eye(10)[i])[count] - dp_log_p(logits - step * np.eye(10)[i])[count])
        / (2 * step)
        for i in range(10)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_gradient_matches_enumeration_to_relative_precision():
    """Bags of 1..12 with confident members (+-30, whose gradient is ~1e-13: 1 - sigmoid(30) rounds to 0 in
    float32) and forced ones (counts 0 and |b|), integer and fractional counts, padded to a width of 13."""
    rng = np.random.default_rng(5)
    bags, counts = [], []
    for n in range(1, 13):
        logits = rng.normal(scale=3.0, size=n)
        logits[rng.random(n) < 0.3] = 30.0 * rng.choice([-1.0, 1.0])
        for count in sorted({0.0, 1.0, n / 2, n - 1.0, float(n), n * rng.uniform()}):
            bags.append(logits)
            counts.append(count)
    rows, mask, counts_in = _batch(bags, counts, width=13)
    grad = np.asarray(jax.grad(lambda x: jnp.sum(count_log_likelihood(x, mask, counts_in)))(rows))
    assert np.all(grad[~np.asarray(mask)] == 0.0)
    for row, (bag, count) in enumerate(zip(bags, counts, strict=True)):
        # measured: at most 6e-6 relative, against 1.0 (zeros) for sigmoid(l + m) - sigmoid(l)
        np.testing.assert_allclose(grad[row, : len(bag)], brute_gradient(bag, count), rtol=1e-4, atol=0.0)


@pytest.mark.slow  # 27 s of CPU, most of it compiling the autodiff the custom VJP avoids
def test_the_gradient_matches_autodiff_through_the_tree():
    """The custom VJP against jax.grad of the same value computed through the tilted upward pass (exact to
    float32 rounding), on bags of 1..64 members in rows of 64 (whose root keeps a window of 60 counts) with
    integer, fractional and extreme counts; and the counts' gradient strictly between 0 and |b| (at the
    ends the clip splits a tie)."""
    rng = np.random.default_rng(6)
    width, n_bags = 64, 24
    sizes = rng.integers(1, width + 1, n_bags)
    logits = jnp.asarray(rng.normal(scale=3.0, size=(n_bags, width)), jnp.float32)
    mask = jnp.asarray(np.arange(width)[None] < sizes[:, None])
    counts = rng.uniform(0.0, 1.0, n_bags) * sizes
    counts[:6] = np.round(counts[:6])
    counts[6], counts[7] = 0.0, sizes[7]
    counts = jnp.asarray(counts, jnp.float32)

    def total(function):
        return jax.jit(jax.grad(lambda x, k: jnp.sum(function(x, mask, k)), argnums=(0, 1)))(logits, counts)

    got, want = total(count_log_likelihood), total(count_likelihood._log_likelihood.fun)
    # measured: 3.6e-7 at most, the gradients up to 1
    np.testing.assert_allclose(got[0], want[0], rtol=0.0, atol=1e-5)
    inside = np.asarray((counts > 0.0) & (counts < sizes))
    np.testing.assert_allclose(np.asarray(got[1])[inside], np.asarray(want[1])[inside], rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# CountLoss


@pytest.mark.slow
def test_countloss_learns_on_synthetic_data(tmp_path):
    # debug=fast's 2 epochs at the default rate leave DLLP and CountLoss alike near AUC 0.56; 20 epochs at
    # 1e-2 reach 0.77 with both (a few seconds).
    cfg = compose(
        "debug=fast", "model.widths=[16,8]", "method=countloss", "train.epochs=20", "train.learning_rate=1e-2"
    )
    summary = run_experiment(cfg, tmp_path)
    assert summary["method"] == "countloss" and np.isfinite(summary["test_auc"]) and summary["test_auc"] > 0.6
