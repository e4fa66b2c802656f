import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.metrics import log_loss as sklearn_log_loss

from llp_jax.train.metrics import accuracy, classification_metrics, log_loss, roc_auc


@pytest.mark.parametrize("ties", [False, True])
def test_auc_matches_sklearn(ties):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = labels * 0.7 + rng.normal(size=500)
    if ties:
        scores = np.round(scores, 1)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_accuracy_and_log_loss_match_sklearn():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    probabilities = np.clip(labels * 0.4 + rng.uniform(size=300) * 0.6, 1e-3, 1 - 1e-3)
    assert accuracy(labels, probabilities) == pytest.approx(accuracy_score(labels, probabilities >= 0.5))
    assert log_loss(labels, probabilities) == pytest.approx(sklearn_log_loss(labels, probabilities), rel=1e-9)


def test_classification_metrics_keys_and_single_class_auc():
    metrics = classification_metrics(np.array([1, 1, 1]), np.array([0.1, 2.0, -1.0]), "test")
    assert set(metrics) == {"test_auc", "test_accuracy", "test_log_loss"}
    assert np.isnan(metrics["test_auc"])


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="NaN"):
        roc_auc(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        roc_auc(np.array([0, 1, 1]), np.array([0.1, 0.2]))


def test_a_probability_of_exactly_one_half_predicts_the_positive_class():
    """accuracy's convention, probability >= threshold predicts 1: a logit of exactly 0 (probability exactly
    0.5) is a positive prediction, one float64 step below 0.5 a negative one; hand-counted."""
    assert accuracy(np.array([1]), np.array([0.5])) == 1.0
    assert accuracy(np.array([0]), np.array([0.5])) == 0.0
    assert accuracy(np.array([0]), np.array([np.nextafter(0.5, 0.0)])) == 1.0
    assert accuracy(np.array([1, 0]), np.array([0.3, 0.3]), threshold=0.3) == 0.5
    # From logits: 1 / (1 + e^0) is exactly 0.5, so two positives of three are right.
    metrics = classification_metrics(np.array([1, 1, 0]), np.array([0.0, 0.0, 0.0]), "test")
    assert metrics["test_accuracy"] == pytest.approx(2.0 / 3.0, abs=1e-12)


def test_a_certain_wrong_prediction_costs_minus_log_eps_not_infinity():
    """A probability of 1.0 for a negative (a logit of 40: 1 / (1 + e^-40) rounds to 1 in float64) is
    clipped to 1 - eps, so it costs -log(eps) = 16.1 (eps = 1e-7), as a probability of 0 for a positive
    does: a hand value, and sklearn's log loss of the probabilities clipped by hand (sklearn's own clip, at
    float64's eps, would give 36.0)."""
    eps = 1e-7
    assert 1.0 / (1.0 + np.exp(-40.0)) == 1.0
    assert log_loss(np.array([0, 1]), np.array([1.0, 0.0]), eps=eps) == pytest.approx(-np.log(eps), rel=1e-8)
    labels, logits = np.array([0, 1, 1]), np.array([40.0, -40.0, 40.0])
    got = classification_metrics(labels, logits, "test")["test_log_loss"]
    assert np.isfinite(got)
    assert got == pytest.approx((-2.0 * np.log(eps) - np.log1p(-eps)) / 3.0, rel=1e-8)
    clipped = np.clip(1.0 / (1.0 + np.exp(-logits)), eps, 1.0 - eps)
    assert got == pytest.approx(sklearn_log_loss(labels, clipped), rel=1e-9)
