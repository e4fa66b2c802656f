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
