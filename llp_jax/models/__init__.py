"""Encoders: Flax NNX modules mapping features to (logits float32[n], embedding float32[n, e])."""

import math

from flax import nnx

from llp_jax.models.cnn import CNN
from llp_jax.models.mlp import MLP

__all__ = ["CNN", "MLP", "make_encoder"]


def make_encoder(config, feature_shape: tuple[int, ...], seed: int):
    """The encoder named by a model config (MLPConfig or CNNConfig fields) for inputs of feature_shape."""
    rngs = nnx.Rngs(seed)
    if config.name == "mlp":
        return MLP(math.prod(feature_shape), list(config.widths), config.embedding_layer, rngs=rngs)
    if config.name == "cnn":
        return CNN(feature_shape, list(config.channels), config.embedding_width, rngs=rngs)
    raise ValueError(f"model.name={config.name!r} is not known; choose 'mlp' or 'cnn'")
