"""What the rest of the package needs of an encoder, and the two ways it changes one's logit head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

import jax
from flax import nnx

SettingsT = TypeVar("SettingsT", bound=NamedTuple)


@runtime_checkable
class Encoder(Protocol):
    """An NNX module mapping x: float32[n, *feature_shape] to (logits float32[n], embedding
    float32[n, embedding_width]), whose logits come from `head`, an nnx.Linear(embedding_width or
    wider, 1). `settings` (its model's settings NamedTuple) and `feature_shape` are static, hashable
    attributes: with them make_encoder rebuilds the module, as a checkpoint does."""

    head: nnx.Linear
    embedding_width: int
    settings: Any
    feature_shape: tuple[int, ...]

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


def set_output_bias(encoder: Encoder, value: float) -> None:
    """Set the logit head's bias in place, so that every logit starts near `value` (e.g. the prior
    log-odds)."""
    encoder.head.bias[...] = value


def rescale_logits(encoder: Encoder, scale: float, shift: float) -> None:
    """Make the encoder's logits scale * logits + shift, in place, by rescaling its head's kernel and
    bias; the embedding is unchanged."""
    encoder.head.kernel[...] = encoder.head.kernel[...] * scale
    encoder.head.bias[...] = encoder.head.bias[...] * scale + shift
