"""Instance-level test metrics on host arrays: AUC, accuracy at 0.5 and log loss."""

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
    """{prefix_auc, prefix_accuracy, prefix_log_loss} from instance labels and logits."""
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    return {
        f"{prefix}_auc": roc_auc(labels, logits),
        f"{prefix}_accuracy": accuracy(labels, probabilities),
        f"{prefix}_log_loss": log_loss(labels, probabilities),
    }
