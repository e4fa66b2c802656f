"""EasyLLP (Busa-Fekete et al., NeurIPS 2023): instance loss against debiased bag-level soft labels."""

from __future__ import annotations

from functools import partial

import numpy as np

from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.registry import register
from llp_jax.train.loop import TrainingDiverged
from llp_jax.train.losses import easyllp_loss, easyllp_targets


def loss(model, logits, embedding, batch, prior: float):
    return easyllp_loss(logits, batch.mask, batch.proportions, batch.sizes, prior)


@register("easyllp")
def fit(data, train_bags, val_bags, settings, key, log):
    """Train with the EasyLLP loss, as published; the prior p is the positive rate over all training bags.
    A run whose loss diverges (debiased targets far outside [0, 1] make it unbounded below) stops with
    TrainingDiverged, which names the targets' range."""
    prior = train_bags.positive_rate
    try:
        # an array, so the compiled step takes it as an argument: each seed's prior, one compile (shared_step)
        fitted_loss = partial(loss, prior=np.float32(prior))
        return fit_with_loss(data, train_bags, val_bags, settings, key, log, fitted_loss)
    except TrainingDiverged as error:
        targets = np.asarray(easyllp_targets(train_bags.proportions, train_bags.sizes, prior))
        raise TrainingDiverged(
            f"EasyLLP: {error}. Its debiased targets k (alpha - p) + p range over [{targets.min():.3g}, "
            f"{targets.max():.3g}] at these bags (mean size {train_bags.sizes.mean():.0f}); cross-entropy "
            "against a target outside [0, 1] has no minimum. Bounded alternatives: method=dllp or "
            "method=countloss; as LLP-BP's warm start, schedule.warm_start=countloss or dllp"
        ) from None
