"""A loss that runs off to minus infinity stops the run with a message that names the cause and the fix."""

import jax
import numpy as np
import pytest

from llp_jax.data.bags import given_bags
from llp_jax.data.dataset import Dataset, Split
from llp_jax.methods.llp_bp import LLPBPSettings, ScheduleSettings
from llp_jax.methods.llp_bp import fit as llp_bp_fit
from llp_jax.models import MLPSettings
from llp_jax.train.loop import TrainingDiverged, check_training_loss
from llp_jax.train.settings import TrainSettings


def bags_the_features_identify(n_bags=12, size=300, seed=0):
    """Natural bags as hospitals or publishers give them: each bag's rows carry its one-hot id, so that a
    model can fit every bag apart, and positive rates of 0% to 4% around a prior of ~2%, so that EasyLLP's
    debiased targets size * (alpha_b - p) + p reach far outside [0, 1]."""
    rng = np.random.default_rng(seed)
    bag_ids = np.repeat(np.arange(n_bags), size)
    rates = np.linspace(0.0, 0.04, n_bags)
    y = (rng.random(len(bag_ids)) < rates[bag_ids]).astype(np.int32)
    x = np.eye(n_bags, dtype=np.float32)[bag_ids] + 0.01 * rng.standard_normal((len(y), n_bags), np.float32)
    split = Split(x=x, y=y, bag_ids=bag_ids)
    return Dataset("identified_bags", split, split, split), given_bags(bag_ids, labels=y)


@pytest.mark.slow
def test_an_easyllp_warm_start_that_diverges_stops_the_run_with_the_fix():
    data, bags = bags_the_features_identify()
    train = TrainSettings(epochs=200, learning_rate=0.05, patience=200, progress=False)
    settings = LLPBPSettings(MLPSettings((16, 8)), train, schedule=ScheduleSettings(warm_start="easyllp"))
    records = []
    with pytest.raises(TrainingDiverged, match=r"EasyLLP: training diverged.*schedule.warm_start=countloss"):
        llp_bp_fit(data, bags, bags, settings, jax.random.key(0), records.append)
    losses = [record["train_loss"] for record in records if "train_loss" in record]
    # it was falling without bound, and stopped long before its 200 epochs
    assert len(losses) < 200 and losses[-1] < -100 and losses == sorted(losses, reverse=True)


def test_the_divergence_floor_and_ceiling_scale_with_the_first_step_and_spare_published_easyllp_runs():
    settings = TrainSettings()
    check_training_loss(-5.5, 0.6, 29, settings)  # EasyLLP on adult at bags of 128: still a good model
    check_training_loss(-900.0, 0.6, 3, settings)
    check_training_loss(-4e4, 50.0, 1, settings)  # a loss that starts large may fall far
    with pytest.raises(TrainingDiverged, match="fell to -1001 at epoch 3, below -1000"):
        check_training_loss(-1001.0, 0.6, 3, settings)
    with pytest.raises(TrainingDiverged, match="below -5e"):
        check_training_loss(-2.7e5, 50.0, 1, settings)
    with pytest.raises(FloatingPointError, match="lower train.learning_rate"):
        check_training_loss(float("nan"), 0.6, 2, settings)
    check_training_loss(9.9, 0.6, 2, settings)  # below 10 x max(1, 0.6): a fit may wander up a little
    check_training_loss(450.0, 50.0, 2, settings)
    with pytest.raises(
        TrainingDiverged, match=r"the loss rose to 10.5 at epoch 2, above 10 .*lower train.learning_rate"
    ):
        check_training_loss(10.5, 0.6, 2, settings)
    with pytest.raises(TrainingDiverged, match="rose to 501 at epoch 4, above 500"):
        check_training_loss(501.0, 50.0, 4, settings)
