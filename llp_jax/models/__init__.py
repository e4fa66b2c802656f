"""Encoders: Flax NNX modules mapping features to (logits float32[n], or float32[n, K] for K > 2 classes,
embedding float32[n, e]).

make_encoder(MLPSettings(widths=(64, 32)), feature_shape=(16,), rngs=0) -> MLP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
from flax import nnx

from llp_jax.models.cnn import CNN, CNNSettings
from llp_jax.models.encoder import Encoder, head_width, rescale_logits, set_output_bias
from llp_jax.models.mlp import MLP, MLPSettings

__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "CNNSettings",
    "Encoder",
    "MLPSettings",
    "ModelSpec",
    "check_model_settings",
    "head_width",
    "make_encoder",
    "model_name",
    "rescale_logits",
    "set_output_bias",
]


class ModelSpec(NamedTuple):
    """settings: the model's settings NamedTuple type; build(settings, feature_shape, rngs=...) -> Encoder."""

    settings: type
    build: Callable[..., Encoder]


# Model name (as in configs and checkpoints) -> its settings type and constructor.
MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec(MLPSettings, MLP),
    "cnn": ModelSpec(CNNSettings, CNN),
}


def model_name(settings: Any) -> str:
    """The MODELS name whose settings type `settings` is."""
    for name, spec in MODELS.items():
        if type(settings) is spec.settings:
            return name
    known = {name: spec.settings.__name__ for name, spec in MODELS.items()}
    raise ValueError(f"model settings of type {type(settings).__name__} are not known; give one of {known}")


def _check_sizes(values: Any, key: str, example: str) -> None:
    """ValueError unless `values` (a list of layer sizes, the setting `key`) holds integers >= 1."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"{key}={list(values)}: every size must be an integer >= 1, e.g. {key}={example}")


def check_model_settings(settings: Any) -> None:
    """Raise ValueError naming the first bad layer size of `settings` (MLPSettings or CNNSettings) with
    its fix, before any data is loaded (a width of 0 failed deep inside the first layer's initialiser)."""
    if isinstance(settings, MLPSettings):
        if not settings.widths:
            raise ValueError("model.widths is empty; give at least one hidden width, e.g. [256, 128, 64]")
        _check_sizes(settings.widths, "model.widths", "[256,128,64]")
    elif isinstance(settings, CNNSettings):
        _check_sizes(settings.channels, "model.channels", "[32,64]")
        _check_sizes([settings.embedding_width], "model.embedding_width", "128")


def make_encoder(
    settings: Any, feature_shape: Sequence[int], rngs: nnx.Rngs | int | jax.Array, n_classes: int = 2
) -> Encoder:
    """The encoder of `settings` (an MLPSettings or CNNSettings; list fields are accepted) for inputs of
    feature_shape and labels of n_classes classes (logits float32[n] for 2, float32[n, K] for K > 2),
    initialised from rngs: an nnx.Rngs, an int seed or a PRNG key (both as nnx.Rngs(rngs))."""
    spec = MODELS[model_name(settings)]
    rngs = rngs if isinstance(rngs, nnx.Rngs) else nnx.Rngs(rngs)
    return spec.build(settings, feature_shape, rngs=rngs, n_classes=n_classes)
