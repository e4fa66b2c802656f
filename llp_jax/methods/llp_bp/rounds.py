"""The rounds of LLP-BP for one schedule: an optional warm start (round 0), then per round the graph, the
BP, pseudo-labels and a fresh encoder trained on them; the last (or best) round's encoder,
its logit head recalibrated on the training bag counts."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

import jax
import numpy as np

from llp_jax.bp import COUNT_GAP_WARNING
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.methods.common import fit_with_loss
from llp_jax.methods.llp_bp.bag_head import encoder_of, pseudo_label_loss, round_model
from llp_jax.methods.llp_bp.bp_round import bp_pseudo_labels, oracle_diagnostics, prior_unary, timed_graph
from llp_jax.methods.llp_bp.choice import calibrated_val_scores, warm_start_is_better
from llp_jax.methods.llp_bp.labels import counts_held, pseudo_labels, warn_if_inconsistent
from llp_jax.methods.llp_bp.settings import WARM_STARTS, LLPBPSettings, PseudoLabels
from llp_jax.models import Encoder, rescale_logits
from llp_jax.streams import stream_key
from llp_jax.train.calibration import fit_to_counts
from llp_jax.train.loop import TrainResult, predict
from llp_jax.train.metrics import ranking_auc

logger = logging.getLogger("llp_jax")


def fit_schedule(
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    settings: LLPBPSettings,
    key: jax.Array,
    log: Callable[[dict], None],
) -> TrainResult:
    """Run the rounds of LLP-BP and return the last round's training result (its encoder without the
    bag head), or with schedule.keep_best_round the round's (the warm start included) whose selected
    epoch has the lowest validation criterion; each round's value is logged (event round_end). With a
    warm start and schedule.warm_start_gate, the warm start is returned instead where the validation bags
    clearly prefer it (`gate`).
    The warm start draws from `key` itself (it is the warm-start method's run), round r from
    ("round", r)."""
    schedule = settings.schedule
    x = data.train.x
    covariates, unary, result, rounds = x.reshape(len(x), -1), None, None, []
    if schedule.warm_start != "none":
        warm_start = WARM_STARTS[schedule.warm_start]
        start = time.perf_counter()
        # the baseline's own key: round 0 is the warm-start method's run of the same seed, so that the
        # rounds' gain over it is measured paired
        result = warm_start(data, train_bags, val_bags, settings, key, tagged(log, "round", 0))
        rounds.append(_round_end(result, 0, log, time.perf_counter() - start))
    for round_index in range(1, schedule.rounds + 1):
        unary_record = {}
        if result is not None:
            logits, covariates = predict(result.model, x, settings.train.eval_batch_size)
            unary, unary_record = prior_unary(logits, train_bags, schedule)
        targets, record = round_targets(data, train_bags, covariates, unary, settings, round_index)
        log_round = tagged(log, "round", round_index)
        log_round({"event": "bp", **unary_record, **record})
        round_key = stream_key(key, "round", round_index)
        start = time.perf_counter()
        result = fit_with_loss(
            data,
            train_bags,
            val_bags,
            settings,
            round_key,
            log_round,
            partial(pseudo_label_loss, lambda_agg=schedule.lambda_agg, lambda_bag=schedule.lambda_bag),
            targets,
            model=round_model(data, train_bags, settings, round_key),
        )
        rounds.append(_round_end(result, round_index, log, time.perf_counter() - start))
    if schedule.keep_best_round:  # the lowest criterion; on a tie the later round
        _, best_round, result = min(rounds, key=lambda entry: (entry[0], -entry[1]))
        log({"event": "best_round", "best_round": best_round})
    if schedule.warm_start_gate > 0 and schedule.warm_start != "none" and rounds[-1][2] is result:
        result = gate(rounds[0][2], result, data, train_bags, val_bags, settings, log)
    encoder = encoder_of(result.model)
    if schedule.calibrate and data.n_classes == 2:  # the count fit is binary (DESIGN.md section 8)
        calibration = calibrate_head(encoder, x, train_bags, settings.train.eval_batch_size)
        log({"event": "output_calibration", **calibration})
    return result._replace(model=encoder)


def gate(
    warm: TrainResult,
    last: TrainResult,
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    settings: LLPBPSettings,
    log: Callable[[dict], None],
) -> TrainResult:
    """The last round's result, or the warm start's where the validation bags clearly prefer it
    (warm_start_is_better at the level schedule.warm_start_gate); the comparison is logged (event
    warm_start_gate, with both encoders' test AUC under oracle/ where test labels exist)."""
    batch = settings.train.eval_batch_size
    warm_encoder, last_encoder = encoder_of(warm.model), encoder_of(last.model)
    warm_nll, last_nll = (
        calibrated_val_scores(encoder, data, train_bags, val_bags, batch)
        for encoder in (warm_encoder, last_encoder)
    )
    keep_warm, t, p = warm_start_is_better(last_nll - warm_nll, settings.schedule.warm_start_gate)
    record = {
        "event": "warm_start_gate",
        "warm_start_val_count_nll": float(warm_nll.mean()),
        "last_round_val_count_nll": float(last_nll.mean()),
        "t": t,
        "p": p,
        "kept": "warm_start" if keep_warm else "last_round",
    }
    if data.test.y is not None:  # diagnostics only, never used to choose
        for name, encoder in (("warm_start", warm_encoder), ("last_round", last_encoder)):
            record[f"oracle/{name}_test_auc"] = ranking_auc(
                data.test.y, predict(encoder, data.test.x, batch)[0]
            )
    log(record)
    return warm if keep_warm else last


def round_targets(
    data: Dataset,
    train_bags: Bags,
    covariates: np.ndarray,
    unary: np.ndarray | None,
    settings: LLPBPSettings,
    round_index: int,
) -> tuple[np.ndarray, dict]:
    """A round's pseudo-labels float32[n_train] and its `bp` record: the graph on covariates
    float32[n_train, d], BP with the unary float32[n_train] (or None), the marginals held to the counts
    where they miss them (soft labels), the labels. K classes: the K-state BP, unary and pseudo-labels
    float32[n_train, K], the marginals not held to the counts (a warning where they miss them)."""
    schedule, progress = settings.schedule, settings.train.progress
    edge_capacity = len(covariates) * settings.graph.k  # a kNN graph of n points has at most n k edges
    graph, graph_time = timed_graph(covariates, settings.graph, progress)
    bp = settings.bp
    threshold = schedule.labels == PseudoLabels.threshold
    stop_on_count_gap = threshold and schedule.strict_counts  # soft: held below; topk holds them
    marginals, record = bp_pseudo_labels(
        graph, train_bags, unary, bp, stop_on_count_gap, progress, edge_capacity
    )
    multiclass = train_bags.n_classes > 2
    if (
        schedule.labels == PseudoLabels.soft
        and abs(record["bp_count_gap"]) > COUNT_GAP_WARNING
        and multiclass
    ):
        logger.warning(  # the K-class marginals are not tilted to the counts (DESIGN.md section 8)
            "round %d: BP's marginals miss a class's total count by %.1f%%; the soft pseudo-labels carry it",
            round_index,
            100 * record["bp_count_gap"],
        )
    elif schedule.labels == PseudoLabels.soft and abs(record["bp_count_gap"]) > COUNT_GAP_WARNING:
        logger.warning(
            "round %d: BP's marginals miss the bag counts by %.1f%%; the soft pseudo-labels are held to "
            "each bag's count (counts_held)",
            round_index,
            100 * record["bp_count_gap"],
        )
        marginals = counts_held(marginals, train_bags)
        record["pseudo_labels_counts_held"] = True
    targets = pseudo_labels(marginals, train_bags, schedule)
    members = train_bags.members[train_bags.mask]
    record.update(
        lambda_s=bp.lambda_s,
        graph_build_s=graph_time,
        # recall@k of an approximate search (graph.backend=faiss_hnsw) on a sample; none for exact
        **({} if graph.knn_recall is None else {"graph_knn_recall": graph.knn_recall}),
    )
    if multiclass:  # per class: the pseudo-labels' counts beside the bags'
        record.update(
            predicted_class_counts=targets[members].sum(axis=0).tolist(),
            known_class_counts=train_bags.counts.sum(axis=0).tolist(),
        )
    else:
        record.update(
            predicted_positives=float(targets[members].sum()),
            known_positives=float(train_bags.counts.sum()),
        )
        warn_if_inconsistent(round_index, record["predicted_positives"], record["known_positives"])
    if data.train.y is not None:
        record.update(oracle_diagnostics(data.train.y, marginals, graph, train_bags))
    return targets, record


def _round_end(result: TrainResult, round_index: int, log: Callable[[dict], None], train_s: float) -> tuple:
    """(validation criterion of the round's selected epoch, round, result), the criterion logged with the
    seconds the round's encoder took to train (train_s, its compilations included)."""
    value = result.history[result.best_epoch - 1]["selection_loss"]
    tagged(log, "round", round_index)(
        {"event": "round_end", "selection_loss": value, "best_epoch": result.best_epoch, "train_s": train_s}
    )
    return value, round_index, result


def calibrate_head(encoder: Encoder, x: np.ndarray, bags: Bags, batch_size: int) -> dict:
    """Rescale the encoder's logits in place so that they fit the bag counts on x (trained on hard
    pseudo-labels, the last round's encoder is overconfident); the ranking is unchanged. Returns the scale
    and shift applied."""
    logits, _ = predict(encoder, x, batch_size)
    calibration = fit_to_counts(logits, bags)
    rescale_logits(encoder, calibration.scale, calibration.shift)
    return {"scale": calibration.scale, "shift": calibration.shift}


def tagged(log: Callable[[dict], None], key: str, value: int) -> Callable[[dict], None]:
    """`log` with key: value added to every record."""
    return lambda record: log({key: value, **record})
