"""The exact log-likelihood of each bag's count under independent instance predictions (Poisson-binomial).

It shares the count factor's machinery (llp_jax/bp/factors.py, DESIGN.md section 3): the exponential tilt
of a bag and the upward pass over a binary tree of its slots, whose root is the bag's count distribution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from llp_jax.bp.factors import tilt, upward_pass, window_start


@jax.jit
def count_log_likelihood(logits: jax.Array, mask: jax.Array, counts: jax.Array) -> jax.Array:
    """log P(sum_{i in b} y_i = k_b) for independent y_i ~ Bernoulli(sigmoid(logit_i)), every bag at once.

    Exact up to float32 rounding, O(|b|^1.5) work per bag (the upward pass keeps each subtree's count on a
    window around its tilted mean, neglecting less than 2^-26 of the mass). A fractional count k (a
    proportion times a size) gets the linear interpolation of log P between floor(k) and ceil(k) (a
    geometric one of P): exact at integers and continuous in k, so unaffected by float32 rounding of
    alpha_b |b| near an integer.
    Padding slots (mask False) are members fixed at y = 0, which is exact, so bags of unequal sizes
    batch together.

    Stability: the bag is exponentially tilted, every logit shifted by theta so that the tilted mean count
    is k_b; the tilted count distribution P_theta, computed by the upward pass with every tree node
    rescaled by its max, is then largest near k_b, and
        log P(s) = log P_theta(s) - theta s + sum_i [softplus(l_i + theta) - softplus(l_i)]
    undoes the tilt exactly (P_theta(s) = P(s) e^(theta s) / prod_i (1 - p_i + p_i e^theta)).

    logits: float32[n_bags, width]; mask: bool[n_bags, width] True at real members (at least one a bag);
    counts: float32[n_bags] with 0 <= k_b <= |b|. Returns float32[n_bags].
    """
    # A count rebuilt as proportion * size can exceed |b| by a float32 step; past |b| there is no entry.
    counts = jnp.clip(counts, 0.0, jnp.sum(mask, axis=1).astype(counts.dtype))
    width = logits.shape[1]
    size = max(2, 1 << (width - 1).bit_length())  # the tree needs a power of two; shapes are static
    logits = jnp.pad(logits, ((0, 0), (0, size - width)))
    mask = jnp.pad(mask, ((0, 0), (0, size - width)))
    # The value does not depend on theta, so its gradient is not taken through the tilt's Newton steps.
    theta = jax.lax.stop_gradient(tilt(logits, mask, counts, 0.0, hard=True))
    tilted = logits + theta[:, None]
    p_one = jnp.where(mask, jax.nn.sigmoid(tilted), 0.0)
    p_zero = jnp.where(mask, jax.nn.sigmoid(-tilted), 1.0)
    levels, log_scale = upward_pass(jnp.stack([p_zero, p_one], axis=-1), max_plus=False, means=p_one)
    root = levels[-1]  # P_theta / exp(log_scale) on the counts from `start` on (a window around k)
    start = window_start(root.whole, size, root.values.shape[2])

    # sum_i [softplus(l_i + theta) - softplus(l_i)] - theta k, regrouped as sum_i (minus a KL divergence,
    # small where the tilted mean is k) + theta (sum_i q_i - k) (~ 0 by the tilt): no two O(|b|) sums that
    # cancel. Each member is taken with its logit's sign flipped to negative (the KL term is symmetric;
    # flipped, q_i becomes 1 - q_i), where softplus(l) < log 2 and q is small for a confident member, so
    # that a term loses eps |theta| to rounding rather than eps |l|, and sum_i q_i - k is the exact
    # integer #{l_i >= 0} - k plus small terms, not a float32 sum near k that drops them.
    flip = jnp.where(logits >= 0.0, -1.0, 1.0)
    low, shift = flip * logits, flip * theta[:, None]
    q_flipped = jax.nn.sigmoid(low + shift)
    member = jax.nn.softplus(low + shift) - jax.nn.softplus(low) - shift * q_flipped
    surplus = jnp.sum(jnp.where(mask, flip * q_flipped, 0.0), axis=1)
    surplus += jnp.sum(mask & (logits >= 0.0), axis=1) - counts
    untilt = jnp.sum(jnp.where(mask, member, 0.0), axis=1) + theta * surplus

    # The tilt's -theta s is linear in s, so its interpolation at k is -theta k, which untilt holds.
    below, above = jnp.floor(counts), jnp.ceil(counts)  # equal at an integer: no weight on log(0) beyond |b|

    def log_root(s):  # log P_theta(s) - log_scale; the log after the pick: no log(0) of other entries
        index = s.astype(jnp.int32)[:, None] - start
        picked = jnp.take_along_axis(root.values[:, 0], index, axis=1, mode="fill", fill_value=0.0)
        return jnp.log(picked[:, 0])  # a count outside the window (none: it is centred on k) has P 0

    weight = counts - below
    interpolated = (1.0 - weight) * log_root(below) + weight * log_root(above)
    return interpolated + log_scale + untilt
