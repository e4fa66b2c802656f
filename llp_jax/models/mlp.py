"""Fully connected encoder: logits plus the embedding of a chosen hidden layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from llp_jax.models.encoder import head_logits, head_width, static_settings


class MLPSettings(NamedTuple):
    """widths: the hidden layers' widths; embedding_layer: the index of the hidden layer whose output
    is the embedding (-1: the last)."""

    widths: tuple[int, ...] = (256, 128, 64)
    embedding_layer: int = -1


class MLP(nnx.Module):
    """ReLU MLP with a logit head (llp_jax.models.encoder.head_width); an Encoder.

    x: float32[n, *feature_shape] (flattened to (n, prod(feature_shape)))
    returns (logits float32[n] (two classes) or float32[n, n_classes] (more), embedding
    float32[n, widths[embedding_layer]])
    """

    def __init__(
        self, settings: MLPSettings, feature_shape: Sequence[int], *, rngs: nnx.Rngs, n_classes: int = 2
    ):
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
        self.head = nnx.Linear(sizes[-1], head_width(n_classes), rngs=rngs)
        self.n_classes = n_classes
        self.embedding_layer = embedding_layer % len(widths)
        self.embedding_width = widths[embedding_layer]

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.reshape(x, (x.shape[0], -1))
        embedding = h
        for index, layer in enumerate(self.hidden):
            h = jax.nn.relu(layer(h))
            if index == self.embedding_layer:
                embedding = h
        return head_logits(self.head(h), self.n_classes), embedding
