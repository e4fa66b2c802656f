"""EasyLLP (Busa-Fekete et al., NeurIPS 2023): instance loss against debiased bag-level soft labels."""

from __future__ import annotations

from functools import partial

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.losses import easyllp_loss


def loss(model, logits, embedding, batch, prior: float):
    return easyllp_loss(logits, batch.mask, batch.proportions, batch.sizes, prior)


@register("easyllp")
def fit(data, train_bags, val_bags, settings, key, log):
    """Train with the EasyLLP loss; the prior p is the positive rate over all training bags."""
    prior = train_bags.positive_rate
    return fit_with_loss(data, train_bags, val_bags, settings, key, log, partial(loss, prior=prior))
