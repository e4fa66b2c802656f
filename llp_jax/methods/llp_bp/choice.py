"""Choosing among variants by per-bag evidence: the rules (`choose_candidate` among candidates,
`warm_start_is_better` between a schedule's warm start and its last round) and the validation scores."""

from __future__ import annotations

import numpy as np
import scipy.stats

from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.methods.llp_bp.settings import ChooseBy, LLPBPSettings
from llp_jax.models import Encoder
from llp_jax.train.calibration import fit_to_counts
from llp_jax.train.loop import predict, validation_bag_scores
from llp_jax.train.metrics import ranking_auc


def choose_candidate(per_bag: np.ndarray, choose_by: ChooseBy) -> int:
    """The index of the chosen candidate from each one's per-bag criterion (lower is better):
    float[n_candidates, n_bags]. `first`: 0. `lowest`: the lowest mean. `one_se`: the candidate with the
    lowest mean if its paired per-bag differences to candidate 0 have a mean below minus one standard
    error, else 0."""
    if choose_by == ChooseBy.first:
        return 0
    best = int(np.argmin(per_bag.mean(axis=1)))
    if choose_by == ChooseBy.lowest or best == 0:
        return best
    differences = per_bag[best] - per_bag[0]
    if len(differences) < 2:
        return 0
    standard_error = differences.std(ddof=1) / np.sqrt(len(differences))
    return best if differences.mean() < -standard_error else 0


def warm_start_is_better(differences: np.ndarray, level: float) -> tuple[bool, float, float]:
    """Whether the warm start beats the last round on the validation bags, with the paired t-statistic and
    its one-sided p-value (Student's t, n_bags - 1 degrees of freedom): differences float[n_bags], the
    last round's minus the warm start's per-bag criterion (lower is better). True only when p < level
    (level = 0: never; fewer than two bags: never, p = 1; the same difference in every bag: its sign), so
    that the rounds, the method, are replaced only on clear evidence. Degrees of freedom matter: at bags
    of 2048 there are two or three validation bags, and t = 2.4 over two bags has p = 0.13."""
    differences = np.asarray(differences, np.float64)
    if len(differences) < 2:
        return False, 0.0, 1.0
    mean, standard_error = differences.mean(), differences.std(ddof=1) / np.sqrt(len(differences))
    t = float(mean / standard_error) if standard_error > 0 else float(np.sign(mean) * np.inf)
    p = float(scipy.stats.t.sf(t, df=len(differences) - 1))
    return bool(p < level), t, p


def calibrated_val_scores(encoder: Encoder, data: Dataset, train_bags: Bags, val_bags: Bags, batch: int):
    """Per-validation-bag count NLL float32[n_val_bags] of the encoder's logits rescaled to the training
    bag counts (fit_to_counts) first: a round trained on hard or soft pseudo-labels is overconfident, a
    bag-level warm start squeezed towards the prior, and raw NLLs would compare their scales, not their
    rankings. K classes: the raw logits' criterion (the count fit is binary)."""
    val_logits = predict(encoder, data.val.x, batch)[0]
    if val_logits.ndim == 1:  # K classes: uncalibrated (the count fit is binary)
        val_logits = fit_to_counts(predict(encoder, data.train.x, batch)[0], train_bags).apply(val_logits)
    return validation_bag_scores(val_logits, val_bags)["val_count_nll"]


def candidate_scores(model: Encoder, data: Dataset, val_bags: Bags, settings: LLPBPSettings) -> tuple:
    """A candidate's per-validation-bag count NLL float32[n_val_bags], and what its candidate_end record
    logs: both validation criteria (means and per bag) and, under oracle/ (never used to choose), its test
    AUC."""
    logits, _ = predict(model, data.val.x, settings.train.eval_batch_size)
    per_bag = validation_bag_scores(logits, val_bags)
    record = {name: float(values.mean()) for name, values in per_bag.items()}
    record.update({f"{name}_per_bag": values.tolist() for name, values in per_bag.items()})
    if data.test.y is not None:
        test_logits, _ = predict(model, data.test.x, settings.train.eval_batch_size)
        record["oracle/test_auc"] = ranking_auc(data.test.y, test_logits)
    return per_bag["val_count_nll"], record
