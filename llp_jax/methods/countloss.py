"""CountLoss (Shukla et al., NeurIPS 2023): minus the exact log-likelihood of each bag's count of positives
under independent instance predictions."""

from __future__ import annotations

import jax.numpy as jnp

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.count_likelihood import count_log_likelihood


def loss(model, logits, embedding, batch):
    counts = batch.proportions * batch.sizes.astype(jnp.float32)
    return -jnp.mean(count_log_likelihood(logits, batch.mask, counts))


@register("countloss")
def fit(data, train_bags, val_bags, settings, key, log):
    """Train on the training bags' counts (proportions times sizes) only."""
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, loss)
