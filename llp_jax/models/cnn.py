"""Small convolutional encoder for 28x28 grey images, with the MLP's interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from llp_jax.models.encoder import head_logits, head_width, static_settings


class CNNSettings(NamedTuple):
    """channels: the output channels of each strided convolution; embedding_width: the width of the
    dense embedding layer after them."""

    channels: tuple[int, ...] = (32, 64)
    embedding_width: int = 128


class CNN(nnx.Module):
    """Conv-ReLU stages of stride 2 (each halves height and width), one dense embedding layer, a logit
    head (head_width); an Encoder. Strided convolutions rather than max pooling: XLA's max-pool gradient
    made a training step 6x slower on the CPU.

    x: float32[n, height, width, channels]
    returns (logits float32[n] (two classes) or float32[n, n_classes] (more), embedding
    float32[n, embedding_width])
    """

    def __init__(
        self, settings: CNNSettings, feature_shape: Sequence[int], *, rngs: nnx.Rngs, n_classes: int = 2
    ):
        if len(feature_shape) != 3:
            raise ValueError(
                "model=cnn needs image features of shape (height, width, channels), "
                f"got {tuple(feature_shape)}; use model=mlp for tabular data"
            )
        self.settings = static_settings(settings)
        self.feature_shape = tuple(int(size) for size in feature_shape)
        self.embedding_width = self.settings.embedding_width
        height, width, in_channels = self.feature_shape
        sizes = [in_channels, *self.settings.channels]
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        for _ in self.settings.channels:
            height, width = -(-height // 2), -(-width // 2)
        self.dense = nnx.Linear(height * width * sizes[-1], self.embedding_width, rngs=rngs)
        self.head = nnx.Linear(self.embedding_width, head_width(n_classes), rngs=rngs)
        self.n_classes = n_classes

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x
        for conv in self.convs:
            h = jax.nn.relu(conv(h))
        embedding = jax.nn.relu(self.dense(jnp.reshape(h, (h.shape[0], -1))))
        return head_logits(self.head(embedding), self.n_classes), embedding
