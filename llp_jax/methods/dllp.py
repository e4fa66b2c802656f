"""DLLP (Ardehaly & Culotta 2017): cross-entropy between each bag's proportion and mean prediction."""

from __future__ import annotations

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.losses import bag_proportion_bce


def loss(model, logits, embedding, batch):
    return bag_proportion_bce(logits, batch.mask, batch.proportions)


@register("dllp")
def fit(data, train_bags, val_bags, settings, key, log):
    """Train on the training bags' proportions only."""
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, loss)
