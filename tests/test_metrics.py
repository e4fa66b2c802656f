import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix
from sklearn.metrics import log_loss as sklearn_log_loss

from llp_jax.train.metrics import (
    accuracy,
    classification_metrics,
    confusion_matrix,
    log_loss,
    multiclass_metrics,
    roc_auc,
)


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


# ----------------------------------------------------------------------------------------------------
# K classes


def _multiclass_data(n_classes, n, seed):
    """labels int[n] in 0..K-1 and float64 softmax probabilities [n, K] that lean towards the label."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[labels]
    probabilities = np.exp(logits - np.logaddexp.reduce(logits, axis=1, keepdims=True))
    return labels, probabilities


def test_multiclass_metrics_match_sklearn():
    labels, probabilities = _multiclass_data(4, 400, seed=2)
    predictions = probabilities.argmax(axis=1)
    metrics = multiclass_metrics(labels, probabilities, "test")
    assert set(metrics) == {"test_accuracy", "test_macro_f1", "test_macro_auc", "test_log_loss"}
    assert metrics["test_accuracy"] == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)
    assert metrics["test_macro_f1"] == pytest.approx(
        f1_score(labels, predictions, average="macro"), abs=1e-12
    )
    want_auc = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert metrics["test_macro_auc"] == pytest.approx(want_auc, abs=1e-12)
    want_loss = sklearn_log_loss(labels, probabilities, labels=range(4))
    assert metrics["test_log_loss"] == pytest.approx(want_loss, rel=1e-9)
    np.testing.assert_array_equal(
        confusion_matrix(labels, predictions, 4),
        sklearn_confusion_matrix(labels, predictions, labels=range(4)),
    )


def test_classes_absent_from_the_labels_or_the_predictions():
    """Class 4 never occurs (labels nor argmax): out of the macro F1, as in sklearn. Class 3 is predicted
    but never true: in the macro F1 (F1 0, as sklearn with zero_division=0), out of the macro AUC (NaN
    one-vs-rest), which is the mean of sklearn's binary AUCs of classes 0..2."""
    labels, probabilities = _multiclass_data(3, 200, seed=3)
    probabilities = np.concatenate([probabilities, np.zeros((200, 2))], axis=1)
    probabilities[:5] = [0.0, 0.0, 0.0, 1.0, 0.0]  # predicted class 3
    predictions = probabilities.argmax(axis=1)
    metrics = multiclass_metrics(labels, probabilities, "val")
    want_f1 = f1_score(labels, predictions, average="macro", zero_division=0)
    assert metrics["val_macro_f1"] == pytest.approx(want_f1, abs=1e-12)
    want_auc = np.mean([roc_auc_score(labels == c, probabilities[:, c]) for c in range(3)])
    assert metrics["val_macro_auc"] == pytest.approx(want_auc, abs=1e-12)
    assert confusion_matrix(labels, predictions, 5)[:, 3].sum() == 5


def test_one_class_present_has_no_auc_and_a_certain_miss_costs_minus_log_eps():
    labels = np.array([2, 2])
    probabilities = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    metrics = multiclass_metrics(labels, probabilities, "test")
    assert np.isnan(metrics["test_macro_auc"])
    assert metrics["test_accuracy"] == 0.5
    eps = 1e-7
    assert metrics["test_log_loss"] == pytest.approx(-(np.log1p(-eps) + np.log(eps)) / 2.0, rel=1e-12)


def test_two_classes_log_loss_is_the_binary_one():
    labels, probabilities = _multiclass_data(2, 300, seed=4)
    metrics = multiclass_metrics(labels, probabilities, "test")
    assert metrics["test_log_loss"] == pytest.approx(log_loss(labels, probabilities[:, 1]), rel=1e-12)
    assert metrics["test_macro_auc"] == pytest.approx(roc_auc(labels, probabilities[:, 1]), abs=1e-12)


@pytest.mark.parametrize(
    "labels, probabilities, match",
    [
        ([0, 1], [0.5, 0.5], r"must be \[n, K\] with n = 2 labels; got shape \(2,\)"),
        ([0, 1, 1], [[0.5, 0.5], [0.5, 0.5]], r"n = 3 labels; got shape \(2, 2\)"),
        ([0, 3], [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], "labels must be classes 0..2; got 3 at index 1"),
        ([-1, 0], [[0.5, 0.5], [0.5, 0.5]], "labels must be classes 0..1; got -1 at index 0"),
        ([0, 1], [[0.5, np.nan], [0.5, 0.5]], "1 probabilities are NaN or infinite"),
        ([], np.zeros((0, 2)), "no labels"),
    ],
)
def test_multiclass_bad_input_names_the_problem(labels, probabilities, match):
    with pytest.raises(ValueError, match=match):
        multiclass_metrics(np.array(labels), np.array(probabilities), "test")


def test_confusion_matrix_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="predictions must be classes 0..2; got 5 at index 2"):
        confusion_matrix(np.array([0, 1, 2]), np.array([0, 1, 5]), 3)
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        confusion_matrix(np.array([0, 1, 2]), np.array([0, 1]), 3)
