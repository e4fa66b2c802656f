"""Losses over batches of whole bags.

Every loss takes logits laid out like the bags: float32[n_bags, max_size] (K classes: float32[n_bags,
max_size, K]), with mask bool[n_bags, max_size] marking the real members; padding slots never contribute.
The K-class bag losses are in llp_jax.train.class_counts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PROBABILITY_EPS = 1e-7


def instance_bce(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean binary cross-entropy of the members against instance targets in [0, 1] (hard or soft).

    logits, targets: float32[n_bags, max_size]; mask: bool[n_bags, max_size]. Returns a scalar.
    """
    per_instance = targets * jax.nn.softplus(-logits) + (1.0 - targets) * jax.nn.softplus(logits)
    return jnp.sum(jnp.where(mask, per_instance, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def instance_cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean K-class cross-entropy -sum_c t_c log softmax(l)_c of the members against instance targets,
    class distributions (one-hot labels or soft pseudo-labels); for K = 2 it equals `instance_bce` of the
    log-odds l_1 - l_0 against t_1.

    logits, targets: float32[n_bags, max_size, K]; mask: bool[n_bags, max_size]. Returns a scalar.
    """
    per_instance = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return jnp.sum(jnp.where(mask, per_instance, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def instance_loss(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """`instance_bce` for binary logits float32[b, m], `instance_cross_entropy` for K-class ones
    float32[b, m, K] (targets shaped alike). Returns a scalar."""
    if logits.ndim == 3:
        return instance_cross_entropy(logits, targets, mask)
    return instance_bce(logits, targets, mask)


def bag_mean_probability(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """float32[n_bags]: the mean predicted probability of each bag's members."""
    probabilities = jnp.where(mask, jax.nn.sigmoid(logits), 0.0)
    return jnp.sum(probabilities, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1)


def proportion_bce_per_bag(logits: jax.Array, mask: jax.Array, proportions: jax.Array) -> jax.Array:
    """float32[n_bags]: BCE(alpha_b, mean_{i in b} sigmoid(logit_i)) of each bag.
    proportions: float32[n_bags] in [0, 1]."""
    predicted = jnp.clip(bag_mean_probability(logits, mask), PROBABILITY_EPS, 1.0 - PROBABILITY_EPS)
    return -(proportions * jnp.log(predicted) + (1.0 - proportions) * jnp.log1p(-predicted))


def bag_proportion_bce(logits: jax.Array, mask: jax.Array, proportions: jax.Array) -> jax.Array:
    """DLLP loss (Ardehaly & Culotta 2017): the mean over bags of `proportion_bce_per_bag`. Also a
    validation criterion (train.select_on=val_bags). Returns a scalar."""
    return jnp.mean(proportion_bce_per_bag(logits, mask, proportions))


def easyllp_targets(proportions: jax.Array, sizes: jax.Array, prior: float) -> jax.Array:
    """EasyLLP debiased soft labels (Busa-Fekete et al., NeurIPS 2023): k (alpha_b - p) + p per bag.

    proportions: float32[n_bags]; sizes: int32[n_bags] (k, the bag size); prior: p, the overall positive
    rate of the training bags. Returns float32[n_bags]; values may lie outside [0, 1] by design.
    """
    return sizes * (proportions - prior) + prior


def easyllp_loss(
    logits: jax.Array, mask: jax.Array, proportions: jax.Array, sizes: jax.Array, prior: float
) -> jax.Array:
    """EasyLLP instance loss: BCE of every member against its bag's debiased soft label. Returns a scalar."""
    targets = easyllp_targets(proportions, sizes, prior)[:, None]
    return instance_bce(logits, jnp.broadcast_to(targets, logits.shape), mask)
