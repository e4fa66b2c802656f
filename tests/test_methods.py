import math

import numpy as np
import pytest

from llp_jax.data.bags import random_bags
from llp_jax.methods.common import prior_log_odds


def test_prior_log_odds_is_the_overall_rate_of_the_bags():
    labels = np.array([1, 0, 0, 0, 1, 0, 0, 0])  # 2 of 8 positive, in bags of 3, 3 and 2
    bags = random_bags(8, 3, labels, seed=0)
    assert prior_log_odds(bags) == pytest.approx(math.log(0.25 / 0.75))
