"""The training loop's settings, as a plain NamedTuple: the config layer derives its schema from these
type hints and defaults, so the loop never imports the application's configuration."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import NamedTuple


class SelectOn(StrEnum):
    """What model selection and early stopping minimise: the validation bags' proportion loss, their mean
    count negative log-likelihood (the exact Poisson-binomial one of CountLoss), or minus the AUC on
    validation instance labels. A StrEnum, so that plain strings compare equal."""

    val_bags = "val_bags"
    val_count_nll = "val_count_nll"
    val_instances = "val_instances"


class TrainSettings(NamedTuple):
    """AdamW over batches of whole bags; `batch_size` counts instances (at least one bag per batch).

    select_on: val_count_nll (default: the validation bags' mean -log P(count), the exact likelihood of
    what the bags release, which the proportion loss only approximates; issue 11 found it separates models
    that the proportion loss ranks within 1e-4), val_bags (the validation bags' proportion loss; both are
    logged every epoch) or val_instances (validation instance labels, as the paper's code did).
    Training stops after `patience` epochs without improvement; at large bags the validation signal is
    weak and long patience pays.
    progress: tqdm bars (epochs, kNN blocks, BP iterations); None, the default, shows them on a terminal
    only (the application resolves it), so that cluster logs hold plain lines.
    checkpoint_every: save the training state every this many epochs (and at the end of each fit; 0:
    at the end only) into the run folder; resume: continue the run in its folder from its checkpoints
    (the application reads both; a run requeued by SLURM resumes by itself).
    """

    epochs: int = 100
    batch_size: int = 1024
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    select_on: SelectOn = SelectOn.val_count_nll
    eval_batch_size: int = 8192
    progress: bool | None = None
    checkpoint_every: int = 10
    resume: bool = False


# AdamW moves every weight by about the learning rate at each step, whatever the gradient's scale, so a rate
# above 1 throws the initial weights away in the first steps. The loss stays finite, so nothing stops such a
# run: three epochs of debug=fast DLLP ended with a selection loss of NaN at a rate of 1e6 and of 4e6 at 10,
# against 1.9 at 1e-3. A rate this large is a typo (1e6 for 1e-6), refused before any training.
MAX_LEARNING_RATE = 1.0


def check_train_settings(settings: TrainSettings) -> None:
    """Raise ValueError naming the first bad setting, its value and what to give instead. select_on may
    be a plain string."""
    if settings.select_on not in {choice.value for choice in SelectOn}:
        raise ValueError(
            f"train.select_on={settings.select_on!r}; choose one of {[choice.value for choice in SelectOn]}"
        )
    for name in ("epochs", "batch_size", "eval_batch_size", "patience"):
        if getattr(settings, name) < 1:
            raise ValueError(f"train.{name}={getattr(settings, name)} must be at least 1")
    if not (math.isfinite(settings.learning_rate) and settings.learning_rate > 0):
        raise ValueError(f"train.learning_rate={settings.learning_rate} must be a positive number, e.g. 1e-3")
    if settings.learning_rate > MAX_LEARNING_RATE:
        raise ValueError(
            f"train.learning_rate={settings.learning_rate} is above {MAX_LEARNING_RATE:g}: AdamW moves every "
            "weight by about the learning rate at each step, so training would diverge; use e.g. 1e-3"
        )
    if not (math.isfinite(settings.weight_decay) and settings.weight_decay >= 0):
        raise ValueError(
            f"train.weight_decay={settings.weight_decay} must be a number >= 0 (0 turns weight decay off)"
        )
    if settings.checkpoint_every < 0:
        raise ValueError(
            f"train.checkpoint_every={settings.checkpoint_every} must be >= 0 (0: at the end of fits only)"
        )
