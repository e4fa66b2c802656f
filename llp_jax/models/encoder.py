"""What the rest of the package needs of an encoder, and the two ways it changes one's logit head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

import jax
from flax import nnx

SettingsT = TypeVar("SettingsT", bound=NamedTuple)


@runtime_checkable
class Encoder(Protocol):
    """An NNX module mapping x: float32[n, *feature_shape] to (logits, embedding float32[n,
    embedding_width]); logits are float32[n] (the log-odds of class 1) for two classes and float32[n, K]
    (unnormalised log-probabilities) for K > 2, from `head`, an nnx.Linear(embedding_width or wider,
    head_width(n_classes)). `settings` (its model's settings NamedTuple), `feature_shape` and `n_classes`
    are static, hashable attributes: with them make_encoder rebuilds the module, as a checkpoint does."""

    head: nnx.Linear
    embedding_width: int
    settings: Any
    feature_shape: tuple[int, ...]
    n_classes: int

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]: ...


def static_settings(settings: SettingsT) -> SettingsT:
    """settings with every sequence field (a list from a config or JSON) as a tuple: NNX keeps non-array
    attributes in the module's static structure, which must be hashable."""
    return settings._replace(
        **{
            name: tuple(value)
            for name, value in settings._asdict().items()
            if isinstance(value, Sequence) and not isinstance(value, str)
        }
    )


def head_width(n_classes: int) -> int:
    """The logit head's outputs for n_classes >= 2: one log-odds for two classes (the binary tables'
    models, unchanged), one logit per class for more."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(f"n_classes={n_classes!r} must be an integer >= 2 (the number of label classes)")
    return 1 if n_classes == 2 else n_classes


def head_logits(outputs: jax.Array, n_classes: int) -> jax.Array:
    """The encoder's logits from its head's outputs float32[n, head_width(n_classes)]: float32[n] for two
    classes, float32[n, K] for more."""
    return outputs[:, 0] if n_classes == 2 else outputs


def set_output_bias(encoder: Encoder, value: float | jax.Array) -> None:
    """Set the logit head's bias in place, so that every logit starts near `value` (e.g. the prior
    log-odds; for K classes a float[K], e.g. the log class rates)."""
    encoder.head.bias[...] = value


def rescale_logits(encoder: Encoder, scale: float, shift: float) -> None:
    """Make the encoder's logits scale * logits + shift, in place, by rescaling its head's kernel and
    bias; the embedding is unchanged."""
    encoder.head.kernel[...] = encoder.head.kernel[...] * scale
    encoder.head.bias[...] = encoder.head.bias[...] * scale + shift
