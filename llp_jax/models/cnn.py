"""Small convolutional encoder for 28x28 grey images, with the MLP's interface."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class CNN(nnx.Module):
    """Conv-ReLU stages of stride 2 (each halves height and width), one dense embedding layer, a scalar
    logit head. Strided convolutions rather than max pooling: XLA's max-pool gradient made a training
    step 6x slower on the CPU.

    x: float32[n, height, width, channels]
    returns (logits float32[n], embedding float32[n, embedding_width])
    """

    def __init__(
        self,
        feature_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        embedding_width: int = 128,
        *,
        rngs: nnx.Rngs,
    ):
        if len(feature_shape) != 3:
            raise ValueError(
                "model=cnn needs image features of shape (height, width, channels), "
                f"got {tuple(feature_shape)}; use model=mlp for tabular data"
            )
        height, width, in_channels = feature_shape
        sizes = [in_channels, *channels]
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        for _ in channels:
            height, width = -(-height // 2), -(-width // 2)
        self.dense = nnx.Linear(height * width * sizes[-1], embedding_width, rngs=rngs)
        self.head = nnx.Linear(embedding_width, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = x
        for conv in self.convs:
            h = jax.nn.relu(conv(h))
        embedding = jax.nn.relu(self.dense(jnp.reshape(h, (h.shape[0], -1))))
        return self.head(embedding)[:, 0], embedding
