"""Fully connected encoder: logits plus the embedding of a chosen hidden layer."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    """ReLU MLP with a scalar logit head.

    x: float32[n, *feature_shape] (flattened to (n, in_features))
    returns (logits float32[n], embedding float32[n, widths[embedding_layer]])
    """

    def __init__(self, in_features: int, widths: Sequence[int], embedding_layer: int = -1, *, rngs: nnx.Rngs):
        if not widths:
            raise ValueError("model.widths is empty; give at least one hidden width, e.g. [256, 128, 64]")
        if not -len(widths) <= embedding_layer < len(widths):
            raise ValueError(
                f"model.embedding_layer={embedding_layer} is out of range for {len(widths)} hidden layers "
                f"(widths={list(widths)}); use an index in [{-len(widths)}, {len(widths) - 1}]"
            )
        sizes = [in_features, *widths]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
        )
        self.head = nnx.Linear(sizes[-1], 1, rngs=rngs)
        self.embedding_layer = embedding_layer % len(widths)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = jnp.reshape(x, (x.shape[0], -1))
        embedding = h
        for index, layer in enumerate(self.hidden):
            h = jax.nn.relu(layer(h))
            if index == self.embedding_layer:
                embedding = h
        return self.head(h)[:, 0], embedding
