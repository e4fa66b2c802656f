"""benchmarks/count_evidence.py: the count NLL it reports, against scipy's binomial for a constant model."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
from count_evidence import base_rate_logits, count_nll  # noqa: E402

from llp_jax.data.bags import random_bags  # noqa: E402


@pytest.mark.slow
def test_a_constant_model_gives_the_binomial_count_nll():
    rng = np.random.default_rng(0)
    labels = (rng.random(1000) < 0.05).astype(np.int32)
    bags = random_bags(1000, 300, labels, seed=0)  # three bags of 300 and one of 100
    logits = base_rate_logits(1000, bags)
    rate = labels.sum() / 1000
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), rate, rtol=1e-6)
    expected = -binom.logpmf(bags.counts, bags.sizes, rate)
    np.testing.assert_allclose(count_nll(logits, bags), expected, rtol=1e-4)
    assert len(set(np.round(expected, 3))) > 1, "bags of different counts, so that the test means something"
