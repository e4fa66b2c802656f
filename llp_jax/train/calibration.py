"""Recalibrating logits on bag counts alone: no instance label is used.

An encoder trained on large bags ranks instances well but squeezes its logits towards the prior
(EasyLLP on adult at bag 512: logit standard deviation 0.1, where the labels call for about 1.3).
Used as a BP unary, such logits carry almost no weight. `fit_to_counts` finds the affine map
l -> scale * l + shift under which the bag counts are most likely, treating the members as independent
Bernoulli(sigmoid(scale * l_i + shift)); the count of bag b is then approximately Gaussian with mean
sum_i p_i and variance sum_i p_i (1 - p_i), plus 1/12 for the rounding of a continuous count to an integer.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from llp_jax.data.bags import Bags

ROUNDING_VARIANCE = 1.0 / 12.0
# Scales searched, as log(scale) in units of the logits' standard deviation: 1e-3 to 1e3.
LOG_SCALE_RANGE = (-3 * np.log(10.0), 3 * np.log(10.0))
GRID_POINTS = 61
GOLDEN = (np.sqrt(5.0) - 1) / 2
GOLDEN_STEPS = 40
NEWTON_STEPS = 20


class Calibration(NamedTuple):
    """logit -> scale * logit + shift; nll: the mean Gaussian negative log-likelihood per bag at the fit."""

    scale: float
    shift: float
    nll: float

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return self.scale * logits + self.shift


def count_nll(log_scale: jax.Array, shift: jax.Array, logits: jax.Array, mask: jax.Array, counts: jax.Array):
    """Mean over bags of the Gaussian negative log-likelihood of the counts (constant dropped).

    logits: float32[n_bags, width] laid out like the bags; mask: bool[n_bags, width]; counts:
    float32[n_bags]. Returns a scalar.
    """
    p = jnp.where(mask, jax.nn.sigmoid(jnp.exp(log_scale) * logits + shift), 0.0)
    mean = p.sum(axis=1)
    variance = (p * (1.0 - p)).sum(axis=1) + ROUNDING_VARIANCE
    return jnp.mean(0.5 * (counts - mean) ** 2 / variance + 0.5 * jnp.log(variance))


def _best_shift(log_scale: jax.Array, logits: jax.Array, mask: jax.Array, counts: jax.Array) -> jax.Array:
    """The shift minimising count_nll at this log_scale: Newton steps, at most 1 long, from the prior."""
    rate = jnp.clip(counts.sum() / mask.sum(), 1e-4, 1 - 1e-4)

    def objective(shift):
        return count_nll(log_scale, shift, logits, mask, counts)

    def step(shift, _):
        gradient, curvature = jax.grad(objective)(shift), jax.grad(jax.grad(objective))(shift)
        newton = jnp.where(curvature > 0, -gradient / jnp.maximum(curvature, 1e-12), -jnp.sign(gradient))
        return shift + jnp.clip(newton, -1.0, 1.0), None

    shift, _ = jax.lax.scan(step, jnp.log(rate / (1 - rate)), length=NEWTON_STEPS)
    return shift


@jax.jit
def _fit(logits: jax.Array, mask: jax.Array, counts: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(log_scale, shift, nll) for standardised logits: the profile likelihood over log_scale on a grid,
    then a golden-section search between the grid neighbours of the best point."""

    def profile(log_scale):
        shift = _best_shift(log_scale, logits, mask, counts)
        return count_nll(log_scale, shift, logits, mask, counts), shift

    grid = jnp.linspace(*LOG_SCALE_RANGE, GRID_POINTS)
    best = jnp.argmin(jax.vmap(profile)(grid)[0])
    low, high = grid[jnp.maximum(best - 1, 0)], grid[jnp.minimum(best + 1, GRID_POINTS - 1)]

    def golden(bounds, _):
        low, high = bounds
        a, b = high - GOLDEN * (high - low), low + GOLDEN * (high - low)
        left_is_lower = profile(a)[0] < profile(b)[0]
        return (jnp.where(left_is_lower, low, a), jnp.where(left_is_lower, b, high)), None

    (low, high), _ = jax.lax.scan(golden, (low, high), length=GOLDEN_STEPS)
    log_scale = 0.5 * (low + high)
    nll, shift = profile(log_scale)
    return log_scale, shift, nll


def fit_to_counts(logits: np.ndarray, bags: Bags) -> Calibration:
    """The scale and shift of logits: float32[n] (indexed like the bags' members) that make the bag
    counts most likely. The scale is kept positive: the encoder's ranking is taken as it is."""
    logits = np.asarray(logits, np.float32)
    if not np.all(np.isfinite(logits)):
        raise ValueError("calibration: the logits contain NaN or inf; the encoder before BP has diverged")
    members = logits[bags.members[bags.mask]]
    center, spread = float(members.mean()), float(max(members.std(), 1e-6))
    # Fit on standardised logits, where scale and shift are nearly uncorrelated, then map back.
    laid_out = np.where(bags.mask, (logits[bags.members] - center) / spread, 0.0)
    log_scale, shift, nll = _fit(
        jnp.asarray(laid_out), jnp.asarray(bags.mask), jnp.asarray(bags.counts, jnp.float32)
    )
    scale = float(jnp.exp(log_scale)) / spread
    return Calibration(scale=scale, shift=float(shift) - scale * center, nll=float(nll))
