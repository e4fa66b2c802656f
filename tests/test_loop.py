import math
from functools import partial

import jax
import numpy as np
import pytest
from flax import nnx

from llp_jax.data.bags import Bags, random_bags
from llp_jax.models import MLPSettings, make_encoder
from llp_jax.train.loop import (
    BagBatch,
    TrainInputs,
    ValInputs,
    _adamw,
    _buckets,
    _epoch_batches,
    bucket_widths,
    predict,
    shared_step,
    train_encoder,
)
from llp_jax.train.settings import SelectOn, TrainSettings, check_train_settings


def _bags_of_sizes(sizes):
    sizes = np.asarray(sizes)
    members = np.zeros((len(sizes), sizes.max()), np.int32)
    mask = np.arange(sizes.max()) < sizes[:, None]
    members[mask] = np.arange(sizes.sum())
    return Bags(members, mask, sizes.astype(np.int32), np.zeros(len(sizes), np.float32))


def test_bags_of_nearly_equal_size_train_at_one_width():
    bags = random_bags(1_000, 64, np.zeros(1_000, np.int32), seed=0)  # 15 bags of 64 and one of 40
    assert set(bucket_widths(bags.sizes)) == {64}


def test_bags_of_very_unequal_size_train_at_powers_of_two():
    widths = bucket_widths(np.array([3, 8, 9, 100, 1000, 1500]))
    np.testing.assert_array_equal(widths, [4, 8, 16, 128, 1024, 1500])


def test_an_epoch_uses_each_bag_at_most_once_and_batches_bags_of_one_width():
    rng = np.random.default_rng(0)
    sizes = np.concatenate([rng.integers(1, 9, 300), rng.integers(200, 700, 20)])
    bags = _bags_of_sizes(sizes)
    widths = bucket_widths(bags.sizes)
    buckets = _buckets(bags, np.zeros(sizes.sum(), np.float32), widths, batch_size=64)
    global_index = [np.flatnonzero(widths == width) for width in np.unique(widths)]
    assert all(
        np.array_equal(bucket.index, index) for bucket, index in zip(buckets, global_index, strict=True)
    )
    batches = _epoch_batches(jax.random.key(0), len(sizes), buckets)
    used = np.concatenate([global_index[b][index] for b, index in batches])
    assert len(used) == len(set(used.tolist()))
    for bucket_index, bucket in enumerate(buckets):
        in_batches = sum(len(index) for b, index in batches if b == bucket_index)
        assert all(len(index) == bucket.per_batch for b, index in batches if b == bucket_index)
        assert 0 <= len(global_index[bucket_index]) - in_batches < bucket.per_batch
        # Each bucket's members are its bags' members, cut to its width.
        np.testing.assert_array_equal(
            np.asarray(bucket.members)[np.asarray(bucket.data.mask)],
            bags.members[global_index[bucket_index]][bags.mask[global_index[bucket_index]]],
        )
    other_epoch = _epoch_batches(jax.random.key(1), len(sizes), buckets)
    assert [b for b, _ in other_epoch] != [b for b, _ in batches]


def _raise_logits(model, logits, embedding, batch):
    """A loss that pushes every logit up, so that the validation bag loss moves one way every epoch:
    up against bags with no positives, down against bags of positives only."""
    return -(logits * batch.mask).sum() / batch.mask.sum()


def _run_raising_logits(val_labels: int, epochs: int, patience: int, select_on: str = SelectOn.val_bags):
    """train_encoder with _raise_logits on 256 random rows in bags of 8; validation bags all of label
    val_labels. The training trajectory does not depend on the validation data."""
    rng = np.random.default_rng(0)
    x, x_val = rng.normal(size=(256, 4)).astype(np.float32), rng.normal(size=(64, 4)).astype(np.float32)
    train = TrainInputs(x, random_bags(256, 8, np.zeros(256, np.int32), seed=0))
    val = ValInputs(x_val, random_bags(64, 8, np.full(64, val_labels, np.int32), seed=1))
    settings = TrainSettings(
        epochs, batch_size=64, learning_rate=1e-2, weight_decay=0.0, patience=patience, select_on=select_on
    )
    model = make_encoder(MLPSettings(widths=(8,)), (4,), rngs=0)
    result = train_encoder(
        model, _raise_logits, train, val, settings._replace(progress=False), jax.random.key(0)
    )
    return result, predict(result.model, x_val)[0]


def test_training_stops_patience_epochs_after_the_last_improvement():
    result, _ = _run_raising_logits(val_labels=0, epochs=20, patience=3)
    losses = [record["selection_loss"] for record in result.history]
    assert np.all(np.diff(losses) > 0)  # the premise: only epoch 1 improves on the initial parameters
    assert result.best_epoch == 1 and [r["epoch"] for r in result.history] == [1, 2, 3, 4]


def test_the_returned_model_is_the_best_epochs():
    result, logits = _run_raising_logits(val_labels=0, epochs=20, patience=3)
    # Against bags of positives every epoch improves, so these return the parameters of epoch 1 and of
    # the last epoch run above.
    first, first_logits = _run_raising_logits(val_labels=1, epochs=1, patience=3)
    last, last_logits = _run_raising_logits(val_labels=1, epochs=4, patience=3)
    assert (first.best_epoch, last.best_epoch) == (1, 4)
    np.testing.assert_array_equal(logits, first_logits)
    assert not np.allclose(logits, last_logits)


def test_selecting_on_the_count_nll_minimises_it_and_every_record_logs_it():
    result, _ = _run_raising_logits(val_labels=1, epochs=6, patience=10, select_on=SelectOn.val_count_nll)
    nll = [record["val_count_nll"] for record in result.history]
    assert all(record["selection_loss"] == record["val_count_nll"] for record in result.history)
    assert result.selection == "val_count_nll" and result.best_epoch == 1 + int(np.argmin(nll))
    default, _ = _run_raising_logits(val_labels=0, epochs=2, patience=10)
    assert all(np.isfinite(record["val_count_nll"]) for record in default.history)
    assert all(record["selection_loss"] == record["val_bag_loss"] for record in default.history)


def test_selecting_on_instances_needs_validation_labels():
    bags = random_bags(16, 4, np.zeros(16, np.int32), seed=0)
    x = np.zeros((16, 3), np.float32)
    with pytest.raises(ValueError, match="val_instances.*needs validation instance labels"):
        train_encoder(
            make_encoder(MLPSettings(widths=(4,)), (3,), rngs=0),
            _raise_logits,
            TrainInputs(x, bags),
            ValInputs(x, bags),
            TrainSettings(select_on="val_instances", progress=False),
            jax.random.key(0),
        )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, r"train\.epochs=0 must be at least 1"),
        ("batch_size", 0, r"train\.batch_size=0 must be at least 1"),
        ("eval_batch_size", -1, r"train\.eval_batch_size=-1 must be at least 1"),
        ("patience", 0, r"train\.patience=0 must be at least 1"),
        ("learning_rate", 0.0, r"train\.learning_rate=0\.0 must be a positive number"),
        ("learning_rate", math.nan, r"train\.learning_rate=nan must be a positive number"),
        ("weight_decay", -1e-4, r"train\.weight_decay=-0\.0001 must be a number >= 0"),
        (
            "select_on",
            "val_bag",
            r"train\.select_on='val_bag'; choose one of \['val_bags', 'val_count_nll', 'val_instances'\]",
        ),
    ],
)
def test_bad_train_settings_fail_naming_the_setting(field, value, message):
    with pytest.raises(ValueError, match=message):
        check_train_settings(TrainSettings()._replace(**{field: value}))


def test_select_on_accepts_plain_strings():
    check_train_settings(TrainSettings(select_on="val_instances", weight_decay=0.0))
    assert TrainSettings().select_on == "val_count_nll"
    assert SelectOn("val_instances") is SelectOn.val_instances


def _proportion_loss(model, logits, embedding, batch, weight):
    return weight * jax.numpy.mean(logits)


def test_a_losss_array_arguments_are_traced_so_other_values_reuse_the_compiled_step():
    """A keyword argument that is an array (EasyLLP's prior, which each seed's bags change) reaches the
    compiled step as an argument: another value runs the same program (no compile) and takes effect."""
    graphdef, params = nnx.split(make_encoder(MLPSettings(widths=(8,)), (3,), 0))
    opt_state = _adamw(1e-3, 0.0).init(params)
    x = jax.numpy.asarray(np.random.default_rng(0).normal(size=(4, 3)), jax.numpy.float32)
    members = jax.numpy.asarray([[0, 1], [2, 3]])
    batch = BagBatch(
        mask=jax.numpy.ones((2, 2), bool),
        proportions=jax.numpy.asarray([0.5, 0.5]),
        sizes=jax.numpy.asarray([2, 2]),
        targets=jax.numpy.zeros((2, 2)),
    )
    bag_index = jax.numpy.asarray([0, 1])
    one, two = (
        shared_step(graphdef, 1e-3, 0.0, partial(_proportion_loss, weight=np.float32(w))) for w in (1, 2)
    )
    assert one.func is two.func
    loss_one = one(params, opt_state, bag_index, x, members, batch)[2]
    loss_two = two(params, opt_state, bag_index, x, members, batch)[2]
    assert one.func._cache_size() == 1  # one program for both weights
    assert abs(float(loss_one)) > 1e-3 and float(loss_two) == 2 * float(loss_one)  # x2 is exact in float32


def test_fits_alike_share_one_optimiser_step_and_others_get_their_own():
    structure = nnx.split(make_encoder(MLPSettings(widths=(8,)), (3,), 0))[0]
    again = nnx.split(make_encoder(MLPSettings(widths=(8,)), (3,), 1))[0]  # other weights, same structure
    wider = nnx.split(make_encoder(MLPSettings(widths=(16,)), (3,), 0))[0]
    step = shared_step(structure, 1e-3, 0.0, partial(_proportion_loss, weight=1.0)).func  # the jitted step
    assert shared_step(again, 1e-3, 0.0, partial(_proportion_loss, weight=1.0)).func is step
    others = [
        shared_step(wider, 1e-3, 0.0, partial(_proportion_loss, weight=1.0)),
        shared_step(structure, 1e-2, 0.0, partial(_proportion_loss, weight=1.0)),
        shared_step(structure, 1e-3, 0.1, partial(_proportion_loss, weight=1.0)),
        shared_step(structure, 1e-3, 0.0, partial(_proportion_loss, weight=2.0)),
        shared_step(structure, 1e-3, 0.0, _proportion_loss),
    ]
    assert len({id(s) for s in [step, *(other.func for other in others)]}) == 6
    unhashable = partial(_proportion_loss, weight=[1.0])  # compiled for each fit
    assert (
        shared_step(structure, 1e-3, 0.0, unhashable).func
        is not shared_step(structure, 1e-3, 0.0, unhashable).func
    )
