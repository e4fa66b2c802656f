import math

import jax.numpy as jnp
import numpy as np
import pytest

from llp_jax.train.losses import bag_proportion_bce, easyllp_loss, easyllp_targets, instance_bce

LN3 = math.log(3.0)


def test_dllp_loss_matches_hand_computation():
    # bag 0: members with probabilities 0.5 and 0.75 -> mean 0.625, proportion 0.5
    # bag 1: one member with probability 0.25 (second slot is padding) -> mean 0.25, proportion 0
    logits = jnp.array([[0.0, LN3], [-LN3, 100.0]])
    mask = jnp.array([[True, True], [True, False]])
    proportions = jnp.array([0.5, 0.0])
    bag0 = -(0.5 * math.log(0.625) + 0.5 * math.log(0.375))
    bag1 = -math.log(0.75)
    assert float(bag_proportion_bce(logits, mask, proportions)) == pytest.approx((bag0 + bag1) / 2, rel=1e-6)


def test_dllp_loss_is_finite_at_saturated_predictions():
    logits = jnp.array([[60.0, 60.0], [-60.0, -60.0]])
    mask = jnp.ones((2, 2), bool)
    value = float(bag_proportion_bce(logits, mask, jnp.array([0.0, 1.0])))
    assert math.isfinite(value) and value > 10


def test_easyllp_targets_and_loss_match_hand_computation():
    # bag of 4 with proportion 0.5, prior 0.25 -> soft label 4 * (0.5 - 0.25) + 0.25 = 1.25
    # bag of 2 (padded to 4) with proportion 0 -> 2 * (0 - 0.25) + 0.25 = -0.25
    proportions = jnp.array([0.5, 0.0])
    sizes = jnp.array([4, 2])
    np.testing.assert_allclose(easyllp_targets(proportions, sizes, 0.25), [1.25, -0.25])
    logits = jnp.array([[0.0, 0.0, LN3, LN3], [0.0, LN3, 7.0, 7.0]])
    mask = jnp.array([[True] * 4, [True, True, False, False]])

    def member_loss(label, p):
        return -(label * math.log(p) + (1 - label) * math.log(1 - p))

    expected = (
        2 * member_loss(1.25, 0.5)
        + 2 * member_loss(1.25, 0.75)
        + member_loss(-0.25, 0.5)
        + member_loss(-0.25, 0.75)
    ) / 6
    assert float(easyllp_loss(logits, mask, proportions, sizes, 0.25)) == pytest.approx(expected, rel=1e-6)


def test_instance_bce_ignores_padding():
    logits = jnp.array([[LN3, -5.0]])
    targets = jnp.array([[1.0, 1.0]])
    value = instance_bce(logits, targets, jnp.array([[True, False]]))
    assert float(value) == pytest.approx(-math.log(0.75), rel=1e-6)
