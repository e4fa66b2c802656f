"""K-class training pieces (issue 26): encoder heads, the instance and bag losses that take either kind of
logits, the ranking AUC, a saved K-class encoder, and which methods take K classes."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FAST
from sklearn.metrics import roc_auc_score

from llp_jax.checkpoint import load_encoder, save_encoder
from llp_jax.config import resolve
from llp_jax.data.bags import random_bags
from llp_jax.evaluate import evaluate
from llp_jax.experiment import load_data, run_experiment
from llp_jax.methods import METHODS
from llp_jax.methods.llp_bp import ScheduleSettings, prior_unary, pseudo_labels
from llp_jax.methods.llp_bp.settings import multiclass_obstacle
from llp_jax.methods.registry import check_method_classes
from llp_jax.models import CNNSettings, MLPSettings, make_encoder
from llp_jax.train.class_counts import count_loss, proportion_loss
from llp_jax.train.count_likelihood import count_log_likelihood
from llp_jax.train.losses import bag_proportion_bce, instance_bce, instance_cross_entropy, instance_loss
from llp_jax.train.metrics import classification_metrics, ranking_auc


@pytest.mark.parametrize(
    "settings, shape",
    [(MLPSettings(widths=(8, 4)), (5,)), (CNNSettings(channels=(2,), embedding_width=6), (8, 8, 1))],
)
def test_a_k_class_encoder_returns_one_logit_per_class_and_a_binary_one_a_vector(settings, shape):
    x = jnp.ones((3, *shape))
    logits, embedding = make_encoder(settings, shape, 0, n_classes=4)(x)
    assert logits.shape == (3, 4) and embedding.shape[0] == 3
    binary, _ = make_encoder(settings, shape, 0)(x)
    assert binary.shape == (3,)


def test_a_binary_encoder_is_unchanged_by_the_class_argument():
    """n_classes=2 builds the very encoder the binary tables were made with: same parameters, same logits."""
    x = jax.random.normal(jax.random.key(1), (6, 5))
    before, _ = make_encoder(MLPSettings(widths=(8,)), (5,), 3)(x)
    after, _ = make_encoder(MLPSettings(widths=(8,)), (5,), 3, n_classes=2)(x)
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("n_classes", [1, 0, 2.5, True])
def test_a_bad_number_of_classes_is_refused_by_name(n_classes):
    with pytest.raises(ValueError, match="n_classes"):
        make_encoder(MLPSettings(widths=(4,)), (3,), 0, n_classes=n_classes)


def _bags(rng, n_bags=3, width=5, n_classes=3):
    logits = jnp.asarray(rng.normal(size=(n_bags, width, n_classes)) * 2, jnp.float32)
    mask = jnp.asarray(np.arange(width)[None, :] < rng.integers(2, width + 1, size=n_bags)[:, None])
    return logits, mask


def test_instance_cross_entropy_against_numpy():
    rng = np.random.default_rng(0)
    logits, mask = _bags(rng)
    targets = rng.dirichlet(np.ones(3), size=logits.shape[:2]).astype(np.float32)
    z = np.asarray(logits, np.float64)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    expected = -(targets * log_p).sum(-1)[np.asarray(mask)].mean()
    got = float(instance_cross_entropy(logits, jnp.asarray(targets), mask))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(instance_loss(logits, jnp.asarray(targets), mask)) == got  # K classes: the dispatch


def test_with_two_classes_the_k_class_losses_equal_the_binary_ones():
    """Class 1's log-odds l1 - l0 fed to the binary losses give the K-class losses' values (K = 2)."""
    rng = np.random.default_rng(1)
    logits, mask = _bags(rng, n_classes=2)
    log_odds = logits[..., 1] - logits[..., 0]
    t = jnp.asarray(rng.uniform(size=logits.shape[:2]), jnp.float32)
    pair = jnp.stack([1 - t, t], axis=-1)
    assert float(instance_loss(logits, pair, mask)) == pytest.approx(
        float(instance_bce(log_odds, t, mask)), rel=1e-5
    )
    sizes = mask.sum(axis=1).astype(jnp.float32)
    positives = jnp.floor(sizes / 2)
    proportions = positives / sizes
    pair_proportions = jnp.stack([1 - proportions, proportions], axis=-1)
    assert float(proportion_loss(logits, mask, pair_proportions)) == pytest.approx(
        float(bag_proportion_bce(log_odds, mask, proportions)), rel=1e-5
    )
    assert float(proportion_loss(log_odds, mask, proportions)) == float(
        bag_proportion_bce(log_odds, mask, proportions)
    )
    pair_counts = jnp.stack([sizes - positives, positives], axis=-1)
    binary = -float(jnp.mean(count_log_likelihood(log_odds, mask, positives)))
    assert float(count_loss(log_odds, mask, positives)) == pytest.approx(binary, rel=1e-6)
    assert float(count_loss(logits, mask, pair_counts)) == pytest.approx(binary, rel=1e-4)


def test_ranking_auc_is_scikit_learns_one_vs_rest_macro_auc():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=300)
    logits = rng.normal(size=(300, 4)) + 1.5 * np.eye(4)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert ranking_auc(labels, logits) == pytest.approx(expected, abs=1e-12)
    assert expected > 0.7  # a ranking with signal, not a coin's
    binary_labels = (labels > 1).astype(int)
    assert ranking_auc(binary_labels, logits[:, 0]) == pytest.approx(
        roc_auc_score(binary_labels, logits[:, 0])
    )
    metrics = classification_metrics(labels, logits, "test")
    assert set(metrics) == {"test_accuracy", "test_macro_f1", "test_macro_auc", "test_log_loss"}
    assert metrics["test_macro_auc"] == pytest.approx(expected, abs=1e-12)


def test_a_saved_k_class_encoder_loads_with_its_head(tmp_path):
    encoder = make_encoder(MLPSettings(widths=(6,)), (4,), 0, n_classes=5)
    save_encoder(encoder, tmp_path)
    x = jax.random.normal(jax.random.key(0), (3, 4))
    np.testing.assert_array_equal(load_encoder(tmp_path)(x)[0], encoder(x)[0])


def test_methods_say_whether_they_take_k_classes():
    assert {name for name, method in METHODS.items() if method.multiclass} == {
        "supervised",
        "dllp",
        "countloss",
        "llp_bp",
    }
    check_method_classes("easyllp", 2)
    with pytest.raises(ValueError, match=r"method=easyllp trains on two classes only .* 3"):
        check_method_classes("easyllp", 3)


# ---------------------------------------------------------------------------------------------------------
# Whole runs on K-class synthetic data: 4 classes, clear clusters, 4 epochs at a learning rate that learns
# in them (supervised reaches a macro AUC of about 0.77, the LLP methods 0.59-0.70; chance is 0.5).
K_CLASS = ["dataset.n_classes=4", "dataset.cluster_std=0.3", "train.epochs=4", "train.learning_rate=0.01"]


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("supervised", marks=pytest.mark.slow),
        "dllp",
        pytest.param("countloss", marks=pytest.mark.slow),
        "llp_bp",
    ],
)
def test_a_k_class_run_trains_and_reports_k_class_test_metrics(method, compose_config, tmp_path):
    """Every K-class method runs from the config to metrics.json on 4-class data and learns something:
    its macro AUC is above chance (0.5; 450 test rows, a standard error of about 0.02)."""
    cfg = compose_config(*FAST, f"method={method}", *K_CLASS)
    summary = run_experiment(cfg, tmp_path)
    assert {"test_accuracy", "test_macro_f1", "test_macro_auc", "test_log_loss"} <= set(summary)
    assert "test_auc" not in summary
    assert summary["test_macro_auc"] > 0.55, summary["test_macro_auc"]
    assert np.isfinite(summary["val_count_nll"]) and np.isfinite(summary["val_bag_loss"])
    confusion = np.array(summary["test_confusion"])
    assert confusion.shape == (4, 4) and confusion.sum() == len(load_dataset_of(cfg).test.y)
    assert np.trace(confusion) / confusion.sum() == pytest.approx(summary["test_accuracy"], abs=1e-12)
    encoder = load_encoder(tmp_path)
    assert encoder.n_classes == 4
    scored = evaluate(tmp_path)  # llp-eval: the saved encoder on the run's test split, the same numbers
    for key in ("test_accuracy", "test_macro_f1", "test_macro_auc", "test_log_loss", "test_confusion"):
        assert scored[key] == summary[key], key
    if method == "llp_bp":  # auto's EasyLLP candidate is skipped, the DLLP one runs and is returned
        records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        events = [(r.get("candidate"), r.get("event")) for r in records if r.get("event")]
        assert (0, "candidate_skipped") in events and (1, "candidate_end") in events
        bp = [r for r in records if r.get("event") == "bp"]
        assert len(bp) == 2 and all(len(r["predicted_class_counts"]) == 4 for r in bp)


def load_dataset_of(cfg):
    return load_data(resolve(cfg))


def test_easyllp_on_k_classes_is_refused_before_training(compose_config, tmp_path):
    cfg = compose_config(*FAST, "method=easyllp", *K_CLASS)
    with pytest.raises(ValueError, match="method=easyllp trains on two classes only"):
        run_experiment(cfg, tmp_path)
    failed = json.loads((tmp_path / "failed.json").read_text())
    assert "two classes only" in failed["error"]


def test_an_llp_bp_schedule_that_is_binary_only_is_refused_on_k_classes(compose_config, tmp_path):
    cfg = compose_config(*FAST, "method=llp_bp", "schedule=easyllp_warm", *K_CLASS)
    with pytest.raises(ValueError, match="warm_start=easyllp is binary only"):
        run_experiment(cfg, tmp_path)


def test_k_class_pseudo_labels_and_unary_from_marginals_and_logits():
    """Soft labels are the marginals themselves, threshold labels the one-hot argmax class; the unary is
    gamma times the previous encoder's log-softmax (uncalibrated); top-k labels and an EasyLLP warm start
    are refused for K classes by name."""
    marginals = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32)
    bags = random_bags(3, 3, np.array([1, 0, 2]), seed=0, n_classes=3)
    soft = pseudo_labels(marginals, bags, ScheduleSettings(labels="soft"))
    np.testing.assert_array_equal(soft, marginals)
    hard = pseudo_labels(marginals, bags, ScheduleSettings(labels="threshold"))
    np.testing.assert_array_equal(hard, np.eye(3)[[1, 0, 2]])
    logits = np.log(marginals) + 7.0  # any shift: the log-softmax removes it
    unary, record = prior_unary(logits, bags, ScheduleSettings(prior_weight=2.0))
    np.testing.assert_allclose(unary, 2.0 * np.log(marginals), rtol=1e-5)
    assert record == {}
    assert multiclass_obstacle(ScheduleSettings(warm_start="dllp", labels="soft")) is None
    assert "topk is binary only" in multiclass_obstacle(ScheduleSettings(warm_start="dllp", labels="topk"))
    assert "easyllp is binary only" in multiclass_obstacle(ScheduleSettings(warm_start="easyllp"))
