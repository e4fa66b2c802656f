import numpy as np
import pytest
from scipy.optimize import minimize

from llp_jax.data.bags import random_bags
from llp_jax.train.calibration import ROUNDING_VARIANCE, fit_to_counts


def _problem(n, bag_size, scale, shift, spread=1.0, seed=0):
    rng = np.random.default_rng(seed)
    logits = (spread * rng.standard_normal(n)).astype(np.float32)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(scale * logits + shift)))).astype(np.int32)
    return logits, random_bags(n, bag_size, labels, seed=seed + 1)


def _numpy_nll(params, logits, bags):
    """The same objective written independently, in float64 over the flat list of members (bag ids and
    np.bincount, not the padded bags): Gaussian likelihood of each bag's count."""
    scale, shift = params
    bag_of, member = np.nonzero(bags.mask)
    p = 1 / (1 + np.exp(-(scale * logits[bags.members[bag_of, member]].astype(np.float64) + shift)))
    n_bags = len(bags.counts)
    mean = np.bincount(bag_of, weights=p, minlength=n_bags)
    variance = np.bincount(bag_of, weights=p * (1 - p), minlength=n_bags) + ROUNDING_VARIANCE
    return np.mean(0.5 * (bags.counts - mean) ** 2 / variance + 0.5 * np.log(variance))


@pytest.mark.slow
@pytest.mark.parametrize(("bag_size", "spread"), [(8, 1.0), (64, 1.0), (512, 0.1)])
def test_fit_matches_an_independent_optimiser_and_recovers_the_truth(bag_size, spread):
    logits, bags = _problem(60_000, bag_size, scale=2.0 / spread, shift=-1.0, spread=spread)
    fit = fit_to_counts(logits, bags)
    reference = minimize(
        _numpy_nll,
        [1.0 / spread, 0.0],
        args=(logits, bags),
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-10, "maxiter": 4000},
    )
    assert fit.scale == pytest.approx(reference.x[0], rel=2e-3)
    assert fit.shift == pytest.approx(reference.x[1], abs=2e-3 * max(1.0, abs(reference.x[1])))
    assert fit.nll == pytest.approx(reference.fun, abs=1e-4)
    # The maximum-likelihood fit is near the scale and shift that generated the labels.
    assert fit.scale * spread == pytest.approx(2.0, rel=0.25)
    assert fit.shift == pytest.approx(-1.0, abs=0.25)


def test_calibrated_logits_do_not_depend_on_an_affine_change_of_the_input():
    logits, bags = _problem(20_000, 32, scale=1.5, shift=-0.5)
    reference = fit_to_counts(logits, bags).apply(logits)
    squeezed = 0.05 * logits - 3.0
    assert np.allclose(fit_to_counts(squeezed, bags).apply(squeezed), reference, atol=2e-2)


def test_non_finite_logits_are_refused():
    logits, bags = _problem(1_000, 8, scale=1.0, shift=0.0)
    logits[3] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_to_counts(logits, bags)
