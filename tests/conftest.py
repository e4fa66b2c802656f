import pytest

from llp_jax.config import compose

# A small, fast run on the built-in synthetic data (llp_jax/configs/debug/fast.yaml), DLLP unless a later
# method= override names another (the last override of a group wins).
FAST = ["debug=fast", "model.widths=[16,8]", "method=dllp"]


@pytest.fixture
def compose_config():
    """compose_config(*overrides) -> the composed DictConfig, as the command line would see it."""
    return compose
