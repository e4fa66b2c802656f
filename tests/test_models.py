import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from llp_jax.models import (
    CNN,
    MLP,
    MODELS,
    CNNSettings,
    Encoder,
    MLPSettings,
    make_encoder,
    rescale_logits,
    set_output_bias,
)


def test_mlp_returns_logits_and_chosen_embedding():
    model = MLP(MLPSettings(widths=(32, 16, 8), embedding_layer=1), (10,), rngs=nnx.Rngs(0))
    logits, embedding = model(jnp.ones((5, 10)))
    assert logits.shape == (5,) and embedding.shape == (5, 16) and model.embedding_width == 16


def test_mlp_flattens_image_input_and_defaults_to_last_hidden_layer():
    model = make_encoder(MLPSettings(widths=[12, 6]), (4, 4, 1), rngs=0)
    logits, embedding = model(jnp.ones((3, 4, 4, 1)))
    assert logits.shape == (3,) and embedding.shape == (3, model.embedding_width) == (3, 6)


@pytest.mark.slow
def test_cnn_interface():
    model = make_encoder(CNNSettings(channels=[4, 8], embedding_width=20), (28, 28, 1), rngs=0)
    assert isinstance(model, CNN) and isinstance(model, Encoder)
    logits, embedding = model(jnp.ones((2, 28, 28, 1)))
    assert logits.shape == (2,) and embedding.shape == (2, model.embedding_width) == (2, 20)


def test_an_encoder_keeps_its_settings_as_static_tuples():
    model = make_encoder(MLPSettings(widths=[12, 6]), [4, 4, 1], rngs=0)
    assert model.settings == MLPSettings((12, 6), -1) and model.feature_shape == (4, 4, 1)
    graphdef, _ = nnx.split(model)
    hash(graphdef)  # the static structure, settings included, must be hashable to be jitted
    assert {name: spec.settings for name, spec in MODELS.items()} == {"mlp": MLPSettings, "cnn": CNNSettings}


def test_bad_model_settings_fail_clearly():
    with pytest.raises(ValueError, match="embedding_layer=3"):
        make_encoder(MLPSettings(widths=(8, 8), embedding_layer=3), (10,), rngs=0)
    with pytest.raises(ValueError, match="model=mlp for tabular"):
        make_encoder(CNNSettings(), (16,), rngs=0)
    with pytest.raises(ValueError, match="dict are not known; give one of .*MLPSettings"):
        make_encoder({"widths": [8]}, (5,), rngs=0)


@pytest.mark.parametrize("rngs", [3, jax.random.key(3)], ids=["seed", "key"])
def test_same_seed_same_parameters(rngs):
    a = make_encoder(MLPSettings(widths=(8,)), (5,), rngs=rngs)
    b = make_encoder(MLPSettings(widths=(8,)), (5,), rngs=rngs)
    other = make_encoder(MLPSettings(widths=(8,)), (5,), rngs=4)
    same = jax.tree.map(jnp.array_equal, nnx.state(a), nnx.state(b))
    assert jax.tree.all(same) and not jnp.array_equal(a.head.kernel[...], other.head.kernel[...])


def test_a_seed_and_its_key_initialise_alike():
    a = make_encoder(CNNSettings(channels=(4,), embedding_width=6), (8, 8, 1), rngs=3)
    b = make_encoder(CNNSettings(channels=(4,), embedding_width=6), (8, 8, 1), rngs=jax.random.key(3))
    assert jax.tree.all(jax.tree.map(jnp.array_equal, nnx.state(a), nnx.state(b)))


def test_rescale_logits_maps_logits_affinely_and_keeps_the_embedding():
    model = make_encoder(MLPSettings(widths=(8, 4)), (5,), rngs=0)
    x = jax.random.normal(jax.random.key(1), (6, 5))
    logits, embedding = model(x)
    rescale_logits(model, 0.5, -2.0)
    new_logits, new_embedding = model(x)
    np.testing.assert_allclose(new_logits, 0.5 * logits - 2.0, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(new_embedding, embedding)


def test_set_output_bias_sets_the_logit_at_a_zero_embedding():
    model = make_encoder(MLPSettings(widths=(4,)), (3,), rngs=0)
    set_output_bias(model, -1.5)
    # With unit weights and no bias, a negative input zeroes every ReLU unit: the logit is the head's bias.
    model.hidden[0].kernel[...] = jnp.ones_like(model.hidden[0].kernel[...])
    model.hidden[0].bias[...] = jnp.zeros_like(model.hidden[0].bias[...])
    logits, _ = model(-jnp.ones((2, 3)))
    np.testing.assert_array_equal(logits, [-1.5, -1.5])
