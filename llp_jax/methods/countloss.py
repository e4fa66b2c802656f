"""CountLoss (Shukla et al., NeurIPS 2023): minus the exact log-likelihood of each bag's count of positives
under independent instance predictions (K classes: the composite likelihood of the count vector,
llp_jax.train.class_counts)."""

from __future__ import annotations

import jax.numpy as jnp

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.class_counts import count_loss


def loss(model, logits, embedding, batch):
    sizes = batch.sizes.astype(jnp.float32)
    counts = batch.proportions * (sizes[:, None] if batch.proportions.ndim == 2 else sizes)
    return count_loss(logits, batch.mask, counts)


@register("countloss", multiclass=True)
def fit(data, train_bags, val_bags, settings, key, log):
    """Train on the training bags' counts (proportions times sizes) only."""
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, loss)
