import jax.numpy as jnp
import pytest
from flax import nnx

from llp_jax.config import CNNConfig, MLPConfig
from llp_jax.models import CNN, MLP, make_encoder


def test_mlp_returns_logits_and_chosen_embedding():
    model = MLP(10, [32, 16, 8], embedding_layer=1, rngs=nnx.Rngs(0))
    logits, embedding = model(jnp.ones((5, 10)))
    assert logits.shape == (5,) and embedding.shape == (5, 16)


def test_mlp_flattens_image_input_and_defaults_to_last_hidden_layer():
    model = make_encoder(MLPConfig(widths=[12, 6]), (4, 4, 1), seed=0)
    logits, embedding = model(jnp.ones((3, 4, 4, 1)))
    assert logits.shape == (3,) and embedding.shape == (3, 6)


def test_cnn_interface():
    model = make_encoder(CNNConfig(channels=[4, 8], embedding_width=20), (28, 28, 1), seed=0)
    assert isinstance(model, CNN)
    logits, embedding = model(jnp.ones((2, 28, 28, 1)))
    assert logits.shape == (2,) and embedding.shape == (2, 20)


def test_bad_model_settings_fail_clearly():
    with pytest.raises(ValueError, match="embedding_layer=3"):
        MLP(10, [8, 8], embedding_layer=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model=mlp for tabular"):
        make_encoder(CNNConfig(), (16,), seed=0)


def test_same_seed_same_parameters():
    a = make_encoder(MLPConfig(widths=[8]), (5,), seed=3)
    b = make_encoder(MLPConfig(widths=[8]), (5,), seed=3)
    x = jnp.arange(10.0).reshape(2, 5)
    assert jnp.array_equal(a(x)[0], b(x)[0])
