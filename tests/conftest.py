from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from llp_jax.config import register_configs

CONFIG_DIR = str(Path(__file__).resolve().parents[1] / "configs")
# A small, fast run of any method on the built-in synthetic data.
FAST = [
    "dataset=synthetic",
    "dataset.n=3000",
    "bagging.bag_size=16",
    "model.widths=[16,8]",
    "train.epochs=2",
    "train.progress=false",
]


@pytest.fixture
def compose_config():
    """compose_config(*overrides) -> the composed DictConfig, as scripts/train.py would see it."""
    register_configs()

    def _compose(*overrides):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
            return compose(config_name="config", overrides=list(overrides))

    return _compose
