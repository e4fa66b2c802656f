"""Fully connected encoder: logits plus the embedding of a chosen hidden layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from llp_jax.models.encoder import static_settings


class MLPSettings(NamedTuple):
    """widths: the hidden layers' widths; embedding_layer: the index of the hidden layer whose output
    is the embedding (-1: the last)."""

    widths: tuple[int, ...] = (256, 128, 64)
    embedding_layer: int = -1


class MLP(nnx.Module):
    """ReLU MLP with a scalar logit head; an Encoder.

    x: float32[n, *feature_shape] (flattened to (n, prod(feature_shape)))
    returns (logits float32[n], embedding float32[n, widths[embedding_layer]])
    """

    def __init__(self, settings: MLPSettings, feature_shape: Sequence[int], *, rngs: nnx.Rngs):
        settings = static_settings(settings)
        widths, embedding_layer = settings.widths, settings.embedding_layer
        if not widths:
            raise ValueError("model.widths is empty; give at least one hidden width, e.g. [256, 128, 64]")
        if not -len(widths) <= embedding_layer < len(widths):
            raise ValueError(
                f"model.embedding_layer={embedding_layer} is out of range for {len(widths)} hidden layers "
                f"(widths={list(widths)}); use an index in [{-len(widths)}, {len(widths) - 1}]"
            )
        self.settings = settings
        self.feature_shape = tuple(int(size) for size in feature_shape)
        sizes = [math.prod(self.feature_shape), *widths]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.head = nnx.Linear(sizes[-1], 1, rngs=rngs)
        self.embedding_layer = embedding_layer % len(widths)
        self.embedding_width = widths[embedding_layer]

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.reshape(x, (x.shape[0], -1))
        embedding = h
        for index, layer in enumerate(self.hidden):
            h = jax.nn.relu(layer(h))
            if index == self.embedding_layer:
                embedding = h
        return self.head(h)[:, 0], embedding
