"""What every method's `fit` shares: build the encoder, train it with the method's loss."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from llp_jax.config import TrainConfig
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.models import make_encoder
from llp_jax.train.loop import BagLoss, TrainResult, train_encoder


def prior_log_odds(bags: Bags) -> float:
    """log(p / (1 - p)) of p, the positive rate over all bags, clipped away from 0 and 1."""
    rate = float(np.clip(bags.positive_rate, 1e-4, 1 - 1e-4))
    return float(np.log(rate / (1 - rate)))


def fresh_encoder(data: Dataset, train_bags: Bags, cfg: DictConfig, seed: int) -> nnx.Module:
    """A cfg.model encoder initialised from `seed`, its output bias at the prior log-odds, so that
    training does not begin by pushing every prediction towards the overall rate."""
    model = make_encoder(cfg.model, data.feature_shape, seed)
    model.head.bias[...] = prior_log_odds(train_bags)
    return model


def train_config(cfg: DictConfig) -> TrainConfig:
    """The run config's `train` group as the loop's settings."""
    return TrainConfig(**OmegaConf.to_container(cfg.train, resolve=True))


def fit_with_loss(
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    cfg: DictConfig,
    seed: int,
    log: Callable[[dict], None],
    loss: BagLoss,
    instance_targets: np.ndarray | None = None,
    model: nnx.Module | None = None,
) -> TrainResult:
    """Train `model` (default: `fresh_encoder`) with `loss` on the training bags, selecting on the
    validation bags."""
    if model is None:
        model = fresh_encoder(data, train_bags, cfg, seed)
    key = jax.random.fold_in(jax.random.key(seed), 1)
    return train_encoder(
        model,
        loss,
        data.train.x,
        train_bags,
        instance_targets,
        data.val.x,
        val_bags,
        train_config(cfg),
        key,
        log,
        y_val=data.val.y,
    )
