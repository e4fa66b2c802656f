import json

import jax
import numpy as np
import pytest

from llp_jax.checkpoint import load_encoder, save_encoder
from llp_jax.models import CNNSettings, MLPSettings, make_encoder, set_output_bias


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings, feature_shape",
    [(MLPSettings(widths=(8, 4), embedding_layer=0), (3, 2)), (CNNSettings((4, 8), 6), (12, 12, 1))],
    ids=["mlp", "cnn"],
)
def test_a_saved_encoder_loads_back_from_its_folder_alone(settings, feature_shape, tmp_path):
    # Seed 1, so that a rebuilt seed-0 initialisation could not pass for the saved state.
    model = make_encoder(settings, feature_shape, rngs=1)
    set_output_bias(model, 0.7)
    save_encoder(model, tmp_path)
    assert json.loads((tmp_path / "encoder.json").read_text())["feature_shape"] == list(feature_shape)
    loaded = load_encoder(tmp_path)
    assert (loaded.settings, loaded.feature_shape) == (model.settings, model.feature_shape)
    x = jax.random.normal(jax.random.key(0), (5, *feature_shape))
    for saved, restored in zip(model(x), loaded(x), strict=True):
        np.testing.assert_array_equal(saved, restored)


def test_loading_from_a_folder_that_is_not_a_finished_run_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.json is missing; give the folder of a finished run"):
        load_encoder(tmp_path / "nowhere")
