"""Instance-level test metrics on host arrays: AUC, accuracy at 0.5 and log loss; their K-class forms."""

from __future__ import annotations

import numpy as np


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.shape[0]} labels but {scores.shape[0]} scores; they must match")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"{np.sum(~np.isfinite(scores))} scores are NaN or infinite; check the model output")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return labels.astype(np.int64), scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted as one half.

    labels: int[n] in {0, 1}; scores: float[n]. Returns NaN when only one class is present.
    """
    labels, scores = _check(labels, scores)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1.0
    average_rank = (first_rank + (counts - 1) / 2.0)[inverse]
    rank_sum = average_rank[labels == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of instances whose prediction (probability >= threshold) equals the label."""
    labels, probabilities = _check(labels, probabilities)
    return float(np.mean((probabilities >= threshold) == (labels == 1)))


def log_loss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to [eps, 1 - eps]."""
    labels, probabilities = _check(labels, probabilities)
    p = np.clip(probabilities, eps, 1.0 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def classification_metrics(labels: np.ndarray, logits: np.ndarray, prefix: str) -> dict[str, float]:
    """{prefix_auc, prefix_accuracy, prefix_log_loss} from instance labels int[n] and logits float[n]; for
    K-class logits float[n, K], `multiclass_metrics` of their softmax."""
    if np.ndim(logits) == 2:
        return multiclass_metrics(labels, softmax(logits), prefix)
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return {
        f"{prefix}_auc": roc_auc(labels, logits),
        f"{prefix}_accuracy": accuracy(labels, probabilities),
        f"{prefix}_log_loss": log_loss(labels, probabilities),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    """float64[n, K]: the softmax of logits float[n, K] along the classes, computed stably."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def ranking_auc(labels: np.ndarray, logits: np.ndarray) -> float:
    """How well logits rank the labels: `roc_auc` for logits float[n] (labels in {0, 1}), the one-vs-rest
    macro AUC of `multiclass_metrics` for logits float[n, K] (labels in 0..K-1)."""
    if np.ndim(logits) == 2:
        return macro_auc(*_check_multiclass(labels, softmax(logits)))
    return roc_auc(labels, logits)


def macro_auc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The mean one-vs-rest `roc_auc` of P(class c) over the classes present with some other class present
    too (NaN when fewer than two classes are). labels: int[n] in 0..K-1; probabilities: float[n, K]."""
    present = [c for c in range(probabilities.shape[1]) if 0 < np.sum(labels == c) < labels.size]
    aucs = [roc_auc((labels == c).astype(np.int64), probabilities[:, c]) for c in present]
    return float(np.mean(aucs)) if aucs else float("nan")


def _check_multiclass(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """labels int[n] in 0..K-1 and probabilities float[n, K], checked; as int64 and float64."""
    labels = np.asarray(labels).reshape(-1)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.size:
        raise ValueError(
            f"probabilities must be [n, K] with n = {labels.size} labels; got shape {probabilities.shape}"
        )
    if labels.size == 0:
        raise ValueError("no labels: the metrics need at least one instance")
    if not np.all(np.isfinite(probabilities)):
        count = np.sum(~np.isfinite(probabilities))
        raise ValueError(f"{count} probabilities are NaN or infinite; check the model output")
    _check_classes(labels, probabilities.shape[1], "labels")
    return labels.astype(np.int64), probabilities


def _check_classes(values: np.ndarray, n_classes: int, name: str) -> None:
    outside = ~np.isin(values, np.arange(n_classes))
    if outside.any():
        raise ValueError(
            f"{name} must be classes 0..{n_classes - 1}; got {values[outside][0]} at index "
            f"{int(np.flatnonzero(outside)[0])}"
        )


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """int64[K, K]: entry [a, b] counts the instances of true class a predicted as b.
    labels, predictions: int[n] in 0..K-1."""
    labels, predictions = np.asarray(labels).reshape(-1), np.asarray(predictions).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions; they must match")
    _check_classes(labels, n_classes, "labels")
    _check_classes(predictions, n_classes, "predictions")
    flat = labels.astype(np.int64) * n_classes + predictions.astype(np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def multiclass_metrics(
    labels: np.ndarray, probabilities: np.ndarray, prefix: str, eps: float = 1e-7
) -> dict[str, float]:
    """{prefix_accuracy, prefix_macro_f1, prefix_macro_auc, prefix_log_loss} of K-class predictions.

    accuracy: of the argmax (the first class on a tie). macro_f1: the mean F1 over the classes that occur
    among the labels or the predictions (scikit-learn's default). macro_auc: `macro_auc`. log_loss: the
    mean -log P(true class), clipped to [eps, 1 - eps] as `log_loss`.
    labels: int[n] in 0..K-1; probabilities: float[n, K].
    """
    labels, probabilities = _check_multiclass(labels, probabilities)
    n_classes = probabilities.shape[1]
    matrix = confusion_matrix(labels, probabilities.argmax(axis=1), n_classes)
    hits = np.diag(matrix)
    f1_denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # 2 TP + FP + FN
    occurring = f1_denominator > 0
    truth = np.clip(probabilities[np.arange(labels.size), labels], eps, 1.0 - eps)
    return {
        f"{prefix}_accuracy": float(hits.sum() / labels.size),
        f"{prefix}_macro_f1": float(np.mean(2.0 * hits[occurring] / f1_denominator[occurring])),
        f"{prefix}_macro_auc": macro_auc(labels, probabilities),
        f"{prefix}_log_loss": float(-np.mean(np.log(truth))),
    }


def confusion_record(labels: np.ndarray, logits: np.ndarray, prefix: str) -> dict[str, list[list[int]]]:
    """{prefix_confusion: the `confusion_matrix` of the argmax classes as a K x K list, rows the true
    classes} for K-class logits float[n, K] (labels int[n]); {} for binary logits float[n], whose
    metrics need none."""
    if np.ndim(logits) != 2:
        return {}
    matrix = confusion_matrix(labels, np.argmax(logits, axis=1), np.shape(logits)[1])
    return {f"{prefix}_confusion": matrix.tolist()}
