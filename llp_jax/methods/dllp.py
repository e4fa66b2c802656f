"""DLLP (Ardehaly & Culotta 2017): cross-entropy between each bag's proportion and mean prediction (K
classes: between its class proportions and mean softmax)."""

from __future__ import annotations

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.class_counts import proportion_loss


def loss(model, logits, embedding, batch):
    return proportion_loss(logits, batch.mask, batch.proportions)


@register("dllp", multiclass=True)
def fit(data, train_bags, val_bags, settings, key, log):
    """Train on the training bags' proportions only."""
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, loss)
