"""What every method's `fit` shares: build the encoder, train it with the method's loss."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np

from llp_jax.config import TrainConfig
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.models import make_encoder
from llp_jax.train.loop import BagLoss, TrainResult, train_encoder


def fit_with_loss(
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    model_config,
    train_config: TrainConfig,
    seed: int,
    log: Callable[[dict], None],
    loss: BagLoss,
    instance_targets: np.ndarray | None = None,
) -> TrainResult:
    """A fresh encoder (initialised from `seed`) trained on the training bags with `loss`."""
    model = make_encoder(model_config, data.feature_shape, seed)
    key = jax.random.fold_in(jax.random.key(seed), 1)
    return train_encoder(
        model, loss, data.train.x, train_bags, instance_targets, data.val.x, val_bags, train_config, key, log,
        y_val=data.val.y,
    )
