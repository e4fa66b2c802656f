"""Supervised oracle: trained on the instance labels of the training split (the upper bound)."""

from __future__ import annotations

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.losses import instance_bce


def loss(model, logits, embedding, batch):
    return instance_bce(logits, batch.targets, batch.mask)


@register("supervised")
def fit(data, train_bags, val_bags, settings, key, log):
    """Train on true instance labels, in the same bag batches as the LLP methods."""
    if data.train.y is None:
        raise ValueError(
            f"method=supervised needs training instance labels and dataset {data.name!r} has none; "
            "choose an LLP method (dllp, easyllp)"
        )
    targets = data.train.y.astype("float32")
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, loss, targets)
