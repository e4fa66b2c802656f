"""From BP's marginals to what a round's encoder trains on: soft, threshold or top-k pseudo-labels, the
marginals held to the bag counts, and the warning for a round whose positives contradict the counts."""

from __future__ import annotations

import logging
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from llp_jax.bp.factors import tilt
from llp_jax.data.bags import Bags
from llp_jax.methods.llp_bp.settings import PseudoLabels, ScheduleSettings

_CLIP = 1e-12  # marginals of exactly 0 or 1 (float32 BP) as finite log-odds, +-27.6
logger = logging.getLogger("llp_jax")


def pseudo_labels(marginals: np.ndarray, bags: Bags, schedule: ScheduleSettings) -> np.ndarray:
    """What the round's encoder trains on, float32[n] from the BP marginals float32[n]: the marginals
    themselves (soft), marginal > tau (threshold) or the top round(k_b) of each bag (topk). K classes,
    marginals float32[n, K]: the marginals (soft) or the one-hot argmax class (threshold), float32[n, K]."""
    if schedule.labels == PseudoLabels.soft:
        return marginals.astype(np.float32)
    if marginals.ndim == 2:  # topk is refused for K classes (multiclass_obstacle)
        return np.eye(marginals.shape[1], dtype=np.float32)[marginals.argmax(axis=1)]
    if schedule.labels == PseudoLabels.threshold:
        return (marginals > schedule.threshold).astype(np.float32)
    return top_k_labels(marginals, bags)


# jitted once: called eagerly, tilt's while_loop (a closure per call) compiled again at every round
_hard_tilt = jax.jit(partial(tilt, hard=True))


def counts_held(marginals: np.ndarray, bags: Bags) -> np.ndarray:
    """float32[n]: the marginals float32[n] with each bag's members' log-odds shifted by one number per bag
    (llp_jax.bp.factors.tilt) so that they sum to the bag's count k_b (kept within [1/2, |b| - 1/2]); the
    order within a bag is unchanged, rows in no bag keep theirs. The closest distribution of independent
    labels (in KL) whose expected count is k_b: what exact marginals under a hard count satisfy, and soft
    pseudo-labels are held to when BP's miss the counts (LLP-BP's rounds)."""
    p = np.clip(marginals[bags.members].astype(np.float64), _CLIP, 1.0 - _CLIP)
    logits = jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32)
    theta = _hard_tilt(
        logits, jnp.asarray(bags.mask), jnp.asarray(bags.counts, jnp.float32), jnp.float32(0.0)
    )
    held = np.asarray(jax.nn.sigmoid(logits + theta[:, None]))
    out = marginals.astype(np.float32).copy()
    out[bags.members[bags.mask]] = held[bags.mask]
    return out


def top_k_labels(marginals: np.ndarray, bags: Bags) -> np.ndarray:
    """float32[n]: 1 for the round(k_b) members of each bag with the highest marginals (k_b + 1/2 rounded
    down; ties in slot order), 0 elsewhere, so that each bag's pseudo-labels sum to its count.
    marginals: float32[n]; bags: members, mask int32/bool[n_bags, width], counts float32[n_bags]."""
    scores = np.where(bags.mask, marginals[bags.members], -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    positive = bags.mask & (ranks < np.floor(bags.counts + 0.5)[:, None])
    labels = np.zeros(len(marginals), np.float32)
    labels[bags.members[positive]] = 1.0
    return labels


def warn_if_inconsistent(round_index: int, predicted: float, known: float) -> bool:
    """Log a warning when a round's pseudo-positives fall below half or above twice the positives the
    bag counts give (a collapsed BP, or a threshold that does not suit the base rate); True if so."""
    if known / 2 <= predicted <= 2 * known:
        return False
    logger.warning(
        "round %d: the pseudo-labels mark %d positives where the bag counts give %d; BP may have "
        "collapsed or the threshold may not suit this base rate (schedule.labels=topk keeps every bag "
        "consistent with its count)",
        round_index,
        predicted,
        known,
    )
    return True
