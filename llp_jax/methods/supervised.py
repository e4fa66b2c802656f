"""Supervised oracle: trained on the instance labels of the training split (the upper bound)."""

from __future__ import annotations

import numpy as np

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.losses import instance_loss


def loss(model, logits, embedding, batch):
    return instance_loss(logits, batch.targets, batch.mask)


@register("supervised", multiclass=True)
def fit(data, train_bags, val_bags, settings, key, log):
    """Train on true instance labels (K classes: one-hot, the softmax cross-entropy), in the same bag
    batches as the LLP methods."""
    if data.train.y is None:
        raise ValueError(
            f"method=supervised needs training instance labels and dataset {data.name!r} has none; "
            "choose an LLP method (dllp, easyllp)"
        )
    y = data.train.y
    targets = np.eye(data.n_classes, dtype=np.float32)[y] if data.n_classes > 2 else y.astype(np.float32)
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, loss, targets)
