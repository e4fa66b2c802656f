"""LLP-BP (Havaldar et al., ICLR 2024): belief propagation over a kNN graph and the bag counts gives
pseudo-labels; an encoder trained on them gives embeddings for the next round's graph.

Rounds r = 1..R (schedule.rounds): graph on the raw features (round 1) or on the previous encoder's
embedding -> BP -> pseudo-labels (soft, threshold or top-k) -> a fresh encoder trained on them, optionally
with the aggregate-embedding bag loss. Beyond the paper: an optional round 0 (warm_start) that trains on
the bags alone with DLLP, EasyLLP or CountLoss; the previous encoder's logits as an extra BP unary
(prior_weight gamma), first recalibrated on the training bag counts (llp_jax.train.calibration); and
variants of the schedule (schedule=auto: a fallback, or one chosen on the validation bags). The last
round's encoder is the classifier.

Modules, one concern each: settings (ScheduleSettings, LLPBPSettings), labels (pseudo-labels from
marginals), bag_head (the aggregate-embedding loss), bp_round (graph, unary and BP of a round), choice
(the rule among candidates, their scores), rounds (fit_schedule); this module registers the method.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace

import jax
import numpy as np

from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.methods.llp_bp.bp_round import CountGapError, bp_pseudo_labels, prior_unary, timed_graph
from llp_jax.methods.llp_bp.choice import candidate_scores, choose_candidate
from llp_jax.methods.llp_bp.labels import counts_held, pseudo_labels, top_k_labels, warn_if_inconsistent
from llp_jax.methods.llp_bp.rounds import calibrate_head, fit_schedule, tagged
from llp_jax.methods.llp_bp.settings import (
    ChooseBy,
    LLPBPSettings,
    ScheduleSettings,
    candidate_schedule,
    check_schedule,
    runnable_candidates,
)
from llp_jax.methods.registry import register
from llp_jax.train.loop import TrainingDiverged, TrainResult

logger = logging.getLogger("llp_jax")

__all__ = [
    "CountGapError",
    "LLPBPSettings",
    "ScheduleSettings",
    "bp_pseudo_labels",
    "calibrate_head",
    "check_schedule",
    "choose_candidate",
    "counts_held",
    "fit",
    "fit_schedule",
    "prior_unary",
    "pseudo_labels",
    "timed_graph",
    "top_k_labels",
    "warn_if_inconsistent",
]


@register("llp_bp", LLPBPSettings, multiclass=True)
def fit(
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    settings: LLPBPSettings,
    key: jax.Array,
    log: Callable[[dict], None],
) -> TrainResult:
    """Run the rounds of LLP-BP (`fit_schedule`), or with schedule.candidates the candidates in turn
    (records tagged "candidate": its index, all from the same `key`; event candidate_end or
    candidate_failed for each that ran, then chosen): with choose_by=first until one runs to the end,
    which is returned; otherwise all, and the one that choose_by picks on the validation bags. A candidate
    that cannot run on the data's classes (`runnable_candidates`: EasyLLP on K > 2 classes) is skipped
    (event candidate_skipped)."""
    schedule = settings.schedule
    if not schedule.candidates:
        return fit_schedule(data, train_bags, val_bags, settings, key, log)
    results, scores, failures = {}, {}, []
    for index, candidate, obstacle in runnable_candidates(schedule, data.n_classes):
        log_candidate = tagged(log, "candidate", index)
        if obstacle is not None:
            logger.info("candidate %d (%r) skipped: %s", index, candidate, obstacle)
            log_candidate({"event": "candidate_skipped", "schedule": candidate, "reason": obstacle})
            continue
        candidate_settings = replace(settings, schedule=candidate_schedule(schedule, candidate))
        try:
            result = fit_schedule(data, train_bags, val_bags, candidate_settings, key, log_candidate)
        except (TrainingDiverged, CountGapError) as error:  # one candidate's failure must not end the others
            logger.warning("candidate %d (%r) dropped: %s", index, candidate, error)
            log_candidate({"event": "candidate_failed", "schedule": candidate, "error": str(error)})
            failures.append(error)
            continue
        results[index], scores[index], record = (
            result,
            *candidate_scores(result.model, data, val_bags, settings),
        )
        log_candidate({"event": "candidate_end", "schedule": candidate, **record})
        if schedule.choose_by == ChooseBy.first:  # a fallback: the later candidates are not needed
            break
    if not results:
        raise failures[0]
    indices = list(results)  # the first candidate that ran is the reference of one_se
    chosen = indices[choose_candidate(np.stack([scores[index] for index in indices]), schedule.choose_by)]
    log({"event": "chosen", "candidate": chosen, "schedule": schedule.candidates[chosen]})
    return results[chosen]
