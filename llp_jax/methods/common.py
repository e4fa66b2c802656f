"""What every method's `fit` shares: its settings (encoder and training), a fresh encoder, training it
with the method's loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.models import Encoder, check_model_settings, make_encoder, set_output_bias
from llp_jax.streams import stream_key
from llp_jax.train.checkpoints import next_fit_checkpoints
from llp_jax.train.loop import BagLoss, TrainInputs, TrainResult, ValInputs, train_encoder
from llp_jax.train.settings import TrainSettings, check_train_settings


@dataclass(frozen=True)
class FitSettings:
    """What every method reads: the encoder (model: the settings of one of llp_jax.models.MODELS, e.g.
    MLPSettings) and its training. A method that reads more subclasses it; each added field is a config
    group of its own."""

    model: Any
    train: TrainSettings = TrainSettings()

    def check(self) -> None:
        """Raise ValueError naming the first bad setting, before any data is loaded."""
        check_model_settings(self.model)
        check_train_settings(self.train)

    def check_data(self, data: Dataset, train_bags: Bags) -> None:
        """Raise ValueError naming a setting that the loaded data cannot take (graph.k above the rows),
        before anything trains; nothing here, methods that read more override it."""


def prior_log_odds(bags: Bags) -> float:
    """log(p / (1 - p)) of p, the positive rate over all bags, clipped away from 0 and 1."""
    rate = float(np.clip(bags.positive_rate, 1e-4, 1 - 1e-4))
    return float(np.log(rate / (1 - rate)))


def prior_class_logits(bags: Bags) -> np.ndarray:
    """float32[K]: log r_c of the class rates r over all bags (each clipped to at least 1e-4), the logits
    whose softmax is the rates."""
    return np.log(np.clip(bags.class_rates, 1e-4, None)).astype(np.float32)


def fresh_encoder(data: Dataset, train_bags: Bags, settings: FitSettings, key: jax.Array) -> Encoder:
    """A settings.model encoder for data.n_classes classes initialised from the stream "init" of `key`,
    its output bias at the prior log-odds (K classes: `prior_class_logits`), so that training does not
    begin by pushing every prediction towards the overall rate."""
    model = make_encoder(settings.model, data.feature_shape, stream_key(key, "init"), data.n_classes)
    set_output_bias(
        model, prior_class_logits(train_bags) if data.n_classes > 2 else prior_log_odds(train_bags)
    )
    return model


def fit_with_loss(
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    settings: FitSettings,
    key: jax.Array,
    log: Callable[[dict], None],
    loss: BagLoss,
    instance_targets: np.ndarray | None = None,
    model: Encoder | None = None,
) -> TrainResult:
    """Train `model` (default: `fresh_encoder`) with `loss` on the training bags, selecting on the
    validation bags; batches are shuffled by the stream "batches" of `key`."""
    if model is None:
        model = fresh_encoder(data, train_bags, settings, key)
    return train_encoder(
        model,
        loss,
        TrainInputs(data.train.x, train_bags, instance_targets),
        ValInputs(data.val.x, val_bags, data.val.y),
        settings.train,
        stream_key(key, "batches"),
        log,
        next_fit_checkpoints(),
    )
