import pytest

from llp_jax.config import compose

# A small, fast run of any method on the built-in synthetic data (llp_jax/configs/debug/fast.yaml).
FAST = ["debug=fast", "model.widths=[16,8]"]


@pytest.fixture
def compose_config():
    """compose_config(*overrides) -> the composed DictConfig, as the command line would see it."""
    return compose
