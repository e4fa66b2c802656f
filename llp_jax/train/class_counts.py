"""K-class label proportions (issue 26): a bag releases its count vector k_b in N^K (sum = |b|).

The count likelihood and DLLP's cross-entropy of K-class bags, and the host-side check of the counts
(DESIGN.md section 8), and the losses that take either kind of logits (`proportion_loss`, `count_loss`).
Logits are laid out like the bags with the classes last: float32[n_bags, width, K],
with mask bool[n_bags, width] marking the real members; padding slots never contribute.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from llp_jax.train.count_likelihood import count_log_likelihood
from llp_jax.train.losses import PROBABILITY_EPS, bag_proportion_bce


def one_vs_rest_log_odds(logits: jax.Array) -> jax.Array:
    """log p_c - log(1 - p_c) of every class, p = softmax(logits): float32[..., K] -> float32[..., K].

    With log p_c = l_c - logsumexp(l) and log(1 - p_c) = logsumexp_{a != c}(l_a) - logsumexp(l), the two
    normalisers cancel: l_c - logsumexp_{a != c}(l_a), no 1 - p_c rounded to 0 at a confident member, and
    for K = 2 exactly the binary log-odds l_0 - l_1 of class 0.
    """
    n_classes = logits.shape[-1]
    others = jnp.where(jnp.eye(n_classes, dtype=bool), -jnp.inf, 0.0).astype(logits.dtype)
    return logits - jax.nn.logsumexp(logits[..., None, :] + others, axis=-1)


@jax.jit
def class_count_log_likelihood(logits: jax.Array, mask: jax.Array, counts: jax.Array) -> jax.Array:
    """sum_{c < K-1} log P(sum_{i in b} [y_i = c] = k_{b,c}) for independent y_i ~ Categorical(softmax(l_i)).

    Each term is the exact binary `count_log_likelihood` of the class-c indicators, fed with the
    one-vs-rest log-odds of class c (`one_vs_rest_log_odds`); the last class's count follows from the bag
    size. For K = 2 this is the exact likelihood of the count vector (the binary likelihood of the class-0
    indicators). For K >= 3 it is a composite likelihood: the K - 1 marginals of the classes' counts
    multiplied as if independent, which they are not (a member counted in class c is in no other), so it
    is not log P(s_b = k_b). Fractional counts are interpolated and clipped to [0, |b|] as the binary
    function does. Gradients flow through the binary's custom VJP; padding slots get 0.

    logits: float32[n_bags, width, K], K >= 2; mask: bool[n_bags, width] True at real members (at least
    one a bag); counts: float32[n_bags, K], each row summing to its bag's size (`check_class_counts`).
    Returns float32[n_bags].
    """
    n_bags, width, n_classes = logits.shape
    if n_classes < 2:
        raise ValueError(f"class_count_log_likelihood needs K >= 2 classes on the last axis; got {n_classes}")
    if counts.shape != (n_bags, n_classes):
        raise ValueError(f"counts must be [n_bags, K] = {(n_bags, n_classes)}; got {counts.shape}")
    logits = jnp.where(mask[..., None], logits, 0.0)  # a NaN in a padding slot would reach the gradient
    log_odds = one_vs_rest_log_odds(logits)[..., :-1]  # [n_bags, width, K-1]
    # One batch of n_bags (K-1) binary bags, class-major: row c n_bags + b is class c of bag b.
    rows = jnp.moveaxis(log_odds, -1, 0).reshape(-1, width)
    per_class = count_log_likelihood(rows, jnp.tile(mask, (n_classes - 1, 1)), counts[:, :-1].T.reshape(-1))
    return jnp.sum(per_class.reshape(n_classes - 1, n_bags), axis=0)


def bag_mean_class_probability(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """float32[n_bags, K]: the mean softmax of each bag's members. logits: float32[n_bags, width, K]."""
    probabilities = jnp.where(mask[..., None], jax.nn.softmax(logits, axis=-1), 0.0)
    return jnp.sum(probabilities, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1)[:, None]


def bag_proportion_cross_entropy_per_bag(
    logits: jax.Array, mask: jax.Array, proportions: jax.Array
) -> jax.Array:
    """float32[n_bags]: -sum_c alpha_{b,c} log(mean_{i in b} softmax(l_i)_c) of each bag, the mean
    probability clipped to [PROBABILITY_EPS, 1 - PROBABILITY_EPS] as in losses.proportion_bce_per_bag
    (which it equals for K = 2, class 1 the positive one).
    logits: float32[n_bags, width, K]; mask: bool[n_bags, width]; proportions: float32[n_bags, K], rows
    k_b / |b| (summing to 1)."""
    predicted = jnp.clip(bag_mean_class_probability(logits, mask), PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    return -jnp.sum(proportions * jnp.log(predicted), axis=-1)


def bag_proportion_cross_entropy(logits: jax.Array, mask: jax.Array, proportions: jax.Array) -> jax.Array:
    """DLLP's K-class loss: the mean over bags of `bag_proportion_cross_entropy_per_bag`. Returns a scalar."""
    return jnp.mean(bag_proportion_cross_entropy_per_bag(logits, mask, proportions))


def proportion_loss(logits: jax.Array, mask: jax.Array, proportions: jax.Array) -> jax.Array:
    """DLLP's loss for either kind of logits: losses.bag_proportion_bce for binary ones float32[b, m]
    (proportions float32[b]), `bag_proportion_cross_entropy` for K-class ones float32[b, m, K]
    (proportions float32[b, K]). Returns a scalar."""
    if logits.ndim == 3:
        return bag_proportion_cross_entropy(logits, mask, proportions)
    return bag_proportion_bce(logits, mask, proportions)


def count_loss(logits: jax.Array, mask: jax.Array, counts: jax.Array) -> jax.Array:
    """CountLoss for either kind of logits: minus the mean over bags of the exact count log-likelihood
    (binary logits float32[b, m], counts float32[b]) or of `class_count_log_likelihood` (K-class logits
    float32[b, m, K], counts float32[b, K]). Returns a scalar."""
    if logits.ndim == 3:
        return -jnp.mean(class_count_log_likelihood(logits, mask, counts))
    return -jnp.mean(count_log_likelihood(logits, mask, counts))


def check_class_counts(counts: np.ndarray, sizes: np.ndarray, n_classes: int) -> np.ndarray:
    """Host-side check of bags' count vectors: counts float[n_bags, n_classes], finite, >= 0, each row
    summing to its bag's size (to 1e-6 relative: counts rebuilt from float32 proportions); sizes
    int[n_bags]. Returns the counts as float64[n_bags, n_classes]; raises ValueError naming the bad value."""
    counts = np.asarray(counts, dtype=np.float64)
    sizes = np.asarray(sizes).reshape(-1)
    if counts.ndim != 2:
        raise ValueError(f"class counts must be 2-D [n_bags, K]; got shape {counts.shape}")
    if counts.shape[1] != n_classes:
        raise ValueError(
            f"class counts have {counts.shape[1]} columns but there are K = {n_classes} classes; "
            "give one count per class (the last class too)"
        )
    if counts.shape[0] != sizes.size:
        raise ValueError(
            f"{counts.shape[0]} bags of class counts but {sizes.size} bag sizes; they must match"
        )
    bad = ~np.isfinite(counts) | (counts < 0.0)
    if bad.any():
        bag, column = np.argwhere(bad)[0]
        raise ValueError(
            f"bag {bag} has count {counts[bag, column]} for class {column}; counts must be finite and >= 0"
        )
    sums = counts.sum(axis=1)
    off = np.abs(sums - sizes) > 1e-6 * np.maximum(sizes, 1)
    if off.any():
        bag = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"bag {bag}'s class counts sum to {sums[bag]:g} but its size is {sizes[bag]}; each bag's "
            "counts must add up to its size (every member in exactly one class)"
        )
    return counts
