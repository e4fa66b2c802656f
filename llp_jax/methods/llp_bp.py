"""LLP-BP (Havaldar et al., ICLR 2024): belief propagation over a kNN graph and the bag counts gives
pseudo-labels; an encoder trained on them gives embeddings for the next round's graph.

Rounds r = 1..R (schedule.rounds): graph on the raw features (round 1) or on the previous encoder's
embedding -> BP -> pseudo-labels (hard at threshold tau, or soft) -> a fresh encoder trained on them,
optionally with the aggregate-embedding bag loss. Beyond the paper: an optional round 0 (warm_start) that
trains on the bags alone with DLLP or EasyLLP, and the previous encoder's logits as an extra BP unary
(prior_weight gamma), first recalibrated on the training bag counts (llp_jax.train.calibration). The last
round's encoder is the classifier.
"""

from __future__ import annotations

import enum
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llp_jax.bp import COUNT_GAP_WARNING, BPSettings, CountGapWarning, check_settings, run_bp
from llp_jax.bp.factors import tilt
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.graph import GraphSettings, SimilarityGraph, build_graph, check_graph_settings
from llp_jax.methods import countloss, dllp, easyllp
from llp_jax.methods.common import FitSettings, fit_with_loss, fresh_encoder
from llp_jax.methods.registry import register
from llp_jax.models import Encoder, rescale_logits
from llp_jax.streams import stream_key
from llp_jax.train.calibration import fit_to_counts
from llp_jax.train.loop import BagBatch, TrainingDiverged, TrainResult, predict, validation_bag_scores
from llp_jax.train.losses import bag_proportion_bce, instance_bce
from llp_jax.train.metrics import roc_auc

WARM_STARTS = {"dllp": dllp.fit, "easyllp": easyllp.fit, "countloss": countloss.fit}
MARGINAL_BINS = 20  # the histogram of a round's BP marginals, bins of width 0.05 over [0, 1]
WarmStart = enum.StrEnum("WarmStart", {name: name for name in ("none", *WARM_STARTS)})
PseudoLabels = enum.StrEnum("PseudoLabels", {name: name for name in ("threshold", "soft", "topk")})
ChooseBy = enum.StrEnum("ChooseBy", {name: name for name in ("one_se", "lowest")})
logger = logging.getLogger("llp_jax")


class ScheduleSettings(NamedTuple):
    """LLP-BP rounds. rounds: R; labels: the pseudo-labels trained on, `threshold` (marginal > tau),
    `soft` (the marginals) or `topk` (the round(k_b) members of each bag with the highest marginals, so
    that every bag's pseudo-labels agree with its count whatever the base rate); threshold: tau;
    keep_best_round: return the round (the warm start included) with the best validation criterion
    instead of the last one; lambda_agg: weight of the aggregate-embedding bag loss (0 = off);
    warm_start: none | dllp | easyllp | countloss, a round 0 on the bags alone; prior_weight: gamma, the
    weight of the previous encoder's logits as a BP unary (0 = off); calibrate: rescale those logits to the
    training bag counts first, and the final encoder's logit head likewise (no labels used).
    candidates (schedule=auto): variants of this schedule, each "key=value ..." over its fields (an empty
    string: the schedule as it is); each runs in full and the one the validation bags' count likelihood
    prefers is returned (choose_by: `lowest` mean -log P(count), or `one_se`: the first candidate unless
    another's is lower by more than one standard error of the paired per-bag differences, so that a
    handful of validation bags cannot overturn the default by chance).
    The embedding is the encoder's (model.embedding_layer for the MLP). Defaults (with bp.lambda_s = 1 in
    configs/bp/count.yaml): an EasyLLP warm start as prior (the validation bags chose it in 21 of 30 runs on
    adult and bank, session 2) and soft pseudo-labels, the BP marginals themselves, which no base rate can
    empty (at a 0.9% rate marginal > 0.5 marked no member of 919 positive, issue 11); configs/schedule/auto
    adds the candidate warm_start=dllp. The paper's rounds: labels=threshold warm_start=none
    prior_weight=0 bp.lambda_s=10 (schedule=plain)."""

    rounds: int = 2
    threshold: float = 0.5
    labels: PseudoLabels = PseudoLabels.soft
    keep_best_round: bool = False
    lambda_agg: float = 0.0
    warm_start: WarmStart = WarmStart.easyllp
    prior_weight: float = 1.0
    calibrate: bool = True
    candidates: tuple[str, ...] = ()
    choose_by: ChooseBy = ChooseBy.one_se


def check_schedule(schedule: ScheduleSettings) -> None:
    """Raise ValueError naming the first bad schedule setting."""
    if schedule.rounds < 1:
        raise ValueError(f"schedule.rounds={schedule.rounds} must be at least 1")
    if not 0.0 < schedule.threshold < 1.0:
        raise ValueError(f"schedule.threshold={schedule.threshold} must lie strictly between 0 and 1")
    if schedule.warm_start not in WarmStart.__members__:
        raise ValueError(
            f"schedule.warm_start={schedule.warm_start!r}; choose none or one of {sorted(WARM_STARTS)}"
        )
    if schedule.labels not in PseudoLabels.__members__:
        raise ValueError(
            f"schedule.labels={schedule.labels!r}; choose one of {list(PseudoLabels.__members__)}"
        )
    for name in ("lambda_agg", "prior_weight"):
        if not getattr(schedule, name) >= 0:
            raise ValueError(f"schedule.{name}={getattr(schedule, name)} must be >= 0 (0 turns it off)")
    if schedule.choose_by not in ChooseBy.__members__:
        raise ValueError(
            f"schedule.choose_by={schedule.choose_by!r}; choose one of {list(ChooseBy.__members__)}"
        )
    for candidate in schedule.candidates:
        check_schedule(candidate_schedule(schedule, candidate))


def candidate_schedule(schedule: ScheduleSettings, candidate: str) -> ScheduleSettings:
    """The schedule with a candidate's "key=value ..." overrides (schedule=auto), without candidates.
    Raises ValueError naming an unknown key or a value of the wrong type."""
    values = {"candidates": ()}
    for item in candidate.split():
        key, _, text = item.partition("=")
        if key not in ScheduleSettings._fields or key in ("candidates", "choose_by") or not text:
            settable = [
                field for field in ScheduleSettings._fields if field not in ("candidates", "choose_by")
            ]
            raise ValueError(
                f"schedule.candidates entry {candidate!r}: {item!r} is not key=value over {settable}"
            )
        default = ScheduleSettings._field_defaults[key]
        if isinstance(default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"schedule.candidates entry {candidate!r}: {key} takes true or false")
            values[key] = text.lower() == "true"
        else:
            try:
                values[key] = type(default)(text) if not isinstance(default, enum.Enum) else text
            except ValueError:
                raise ValueError(
                    f"schedule.candidates entry {candidate!r}: {key}={text!r} is not "
                    f"a valid {type(default).__name__}"
                ) from None
    return schedule._replace(**values)


@dataclass(frozen=True)
class LLPBPSettings(FitSettings):
    """LLP-BP reads, beyond the encoder and its training, the graph, bp and schedule config groups."""

    graph: GraphSettings = GraphSettings()
    bp: BPSettings = BPSettings()
    schedule: ScheduleSettings = ScheduleSettings()

    def check(self) -> None:
        super().check()
        check_graph_settings(self.graph)
        check_settings(self.bp)
        check_schedule(self.schedule)


class WithBagHead(nnx.Module):
    """An encoder plus a linear head on a bag's mean embedding, for the aggregate-embedding bag loss.
    Called like the encoder: x -> (logits float32[n], embedding float32[n, e])."""

    def __init__(self, encoder: Encoder, *, rngs: nnx.Rngs):
        self.encoder = encoder
        self.bag_head = nnx.Linear(encoder.embedding_width, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x)


def pseudo_label_loss(model, logits, embedding, batch: BagBatch, lambda_agg: float) -> jax.Array:
    """BCE against the pseudo-labels, plus lambda_agg * BCE(k_b/|b|, bag_head(mean embedding of b))."""
    value = instance_bce(logits, batch.targets, batch.mask)
    if lambda_agg > 0:
        weights = batch.mask[..., None] / batch.sizes[:, None, None]
        bag_logits = model.bag_head((embedding * weights).sum(axis=1))
        value = value + lambda_agg * bag_proportion_bce(bag_logits, batch.mask[:, :1], batch.proportions)
    return value


def prior_unary(logits: np.ndarray, bags: Bags, schedule: ScheduleSettings) -> tuple[np.ndarray | None, dict]:
    """The previous encoder's logits: float32[n] as the BP unary gamma * (scale * logits + shift), the
    scale and shift fitted to the training bag counts (schedule.calibrate), and what a round logs.
    None where gamma (schedule.prior_weight) is 0."""
    if schedule.prior_weight == 0:
        return None, {}
    if not schedule.calibrate:
        return schedule.prior_weight * logits, {}
    calibration = fit_to_counts(logits, bags)
    record = {"calibration_scale": calibration.scale, "calibration_shift": calibration.shift}
    return schedule.prior_weight * calibration.apply(logits), record


def pseudo_labels(marginals: np.ndarray, bags: Bags, schedule: ScheduleSettings) -> np.ndarray:
    """What the round's encoder trains on, float32[n] from the BP marginals float32[n]: the marginals
    themselves (soft), marginal > tau (threshold) or the top round(k_b) of each bag (topk)."""
    if schedule.labels == PseudoLabels.soft:
        return marginals.astype(np.float32)
    if schedule.labels == PseudoLabels.threshold:
        return (marginals > schedule.threshold).astype(np.float32)
    return top_k_labels(marginals, bags)


def counts_held(marginals: np.ndarray, bags: Bags) -> np.ndarray:
    """float32[n]: the marginals float32[n] with each bag's members' log-odds shifted by one number per bag
    (llp_jax.bp.factors.tilt) so that they sum to the bag's count k_b (kept within [1/2, |b| - 1/2]); the
    order within a bag is unchanged, rows in no bag keep theirs. The closest distribution of independent
    labels (in KL) whose expected count is k_b: what exact marginals under a hard count satisfy, and soft
    pseudo-labels are held to when BP's miss the counts (LLP-BP, `fit_schedule`)."""
    p = np.clip(marginals[bags.members].astype(np.float64), _CLIP, 1.0 - _CLIP)
    logits = jnp.asarray(np.log(p) - np.log1p(-p), jnp.float32)
    theta = tilt(
        logits, jnp.asarray(bags.mask), jnp.asarray(bags.counts, jnp.float32), jnp.float32(0.0), True
    )
    held = np.asarray(jax.nn.sigmoid(logits + theta[:, None]))
    out = marginals.astype(np.float32).copy()
    out[bags.members[bags.mask]] = held[bags.mask]
    return out


_CLIP = 1e-12  # marginals of exactly 0 or 1 (float32 BP) as finite log-odds, +-27.6


def top_k_labels(marginals: np.ndarray, bags: Bags) -> np.ndarray:
    """float32[n]: 1 for the round(k_b) members of each bag with the highest marginals (k_b + 1/2 rounded
    down; ties in slot order), 0 elsewhere, so that each bag's pseudo-labels sum to its count.
    marginals: float32[n]; bags: members, mask int32/bool[n_bags, width], counts float32[n_bags]."""
    scores = np.where(bags.mask, marginals[bags.members], -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    positive = bags.mask & (ranks < np.floor(bags.counts + 0.5)[:, None])
    labels = np.zeros(len(marginals), np.float32)
    labels[bags.members[positive]] = 1.0
    return labels


def warn_if_inconsistent(round_index: int, predicted: float, known: float) -> bool:
    """Log a warning when a round's pseudo-positives fall below half or above twice the positives the
    bag counts give (a collapsed BP, or a threshold that does not suit the base rate); True if so."""
    if known / 2 <= predicted <= 2 * known:
        return False
    logger.warning(
        "round %d: the pseudo-labels mark %d positives where the bag counts give %d; BP may have "
        "collapsed or the threshold may not suit this base rate (schedule.labels=topk keeps every bag "
        "consistent with its count)",
        round_index,
        predicted,
        known,
    )
    return True


class CountGapError(FloatingPointError):
    """BP's marginals miss the bags' total count by more than llp_jax.bp.COUNT_GAP_WARNING, and the
    pseudo-labels would carry that error (labels=threshold; soft labels are held to the counts instead,
    `counts_held`, and topk labels hold them by construction)."""


def timed_graph(
    z: np.ndarray, settings: GraphSettings, progress: bool = False
) -> tuple[SimilarityGraph, float]:
    """build_graph(z, settings) for covariates z: float32[n, d], and the seconds it took."""
    start = time.perf_counter()
    graph = build_graph(z, settings, progress=progress)
    jax.block_until_ready(graph.weights)
    return graph, time.perf_counter() - start


def bp_pseudo_labels(
    graph: SimilarityGraph,
    bags: Bags,
    unary: np.ndarray | None,
    settings: BPSettings,
    stop_on_count_gap: bool,
    progress: bool = False,
    edge_capacity: int = 0,
) -> tuple[np.ndarray, dict]:
    """BP marginals P(y_i = 1): float32[graph.n_nodes] on the graph and the bags, with what a round logs
    (edges, BP time, iterations, final deltas, convergence). edge_capacity: as `run_bp`'s, the most edges
    of any round's graph, so that every round reuses one compiled BP loop. CountGapError, with the totals
    and the likely causes, when `stop_on_count_gap` and the marginals miss the bags' total count by more
    than 10%: an encoder trained on them would learn a base rate the counts contradict (BP at
    lambda_s = 1e4 and bags of 4,096 marked every row negative and the run went on, issue 12). Otherwise
    CountGapWarning."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        if stop_on_count_gap:
            warnings.simplefilter("error", CountGapWarning)
        try:
            result = run_bp(
                graph, bags, settings, unary=unary, progress=progress, edge_capacity=edge_capacity
            )
        except CountGapWarning as gap:
            raise CountGapError(
                f"{gap} LLP-BP stops rather than train on pseudo-labels that contradict the bag counts; "
                "schedule.labels=topk keeps every bag's count whatever BP's marginals."
            ) from None
    # On the host first: slicing and iterating the device arrays compiled a program per iteration count
    # (0.6 s a round on the CPU, 2.3 s of a bank marketing run's 53).
    marginals, deltas, marginal_deltas = map(
        np.asarray, (result.marginals, result.deltas, result.marginal_deltas)
    )
    bp_s = time.perf_counter() - start
    n_iters = int(result.n_iters)
    record = {
        "graph_edges": int(graph.n_edges),
        "bp_s": bp_s,
        "bp_iterations": n_iters,
        "bp_final_delta": float(deltas[n_iters - 1]),
        "bp_final_marginal_delta": float(marginal_deltas[n_iters - 1]),
        "bp_converged": bool(result.converged),
        # (sum of members' marginals - sum of counts) / sum of counts: 0 when BP holds the bags' totals
        "bp_count_gap": float(result.count_gap),
        "bp_deltas": deltas[:n_iters].tolist(),  # the convergence curves
        "bp_marginal_deltas": marginal_deltas[:n_iters].tolist(),
        "bp_marginals_histogram": np.histogram(marginals, bins=MARGINAL_BINS, range=(0.0, 1.0))[0].tolist(),
    }
    return marginals, record


def oracle_diagnostics(labels: np.ndarray, marginals: np.ndarray, graph: SimilarityGraph, bags: Bags) -> dict:
    """Diagnostics that use true training labels, logged under oracle/ so none is taken for a result."""
    members = bags.members[bags.mask]
    same = labels[np.asarray(graph.senders)] == labels[np.asarray(graph.receivers)]
    return {
        "oracle/pseudo_label_auc": roc_auc(labels[members], marginals[members]),
        "oracle/knn_label_agreement": float(np.mean(same)) if len(same) else float("nan"),
    }


@register("llp_bp", LLPBPSettings)
def fit(
    data: Dataset,
    train_bags: Bags,
    val_bags: Bags,
    settings: LLPBPSettings,
    key: jax.Array,
    log: Callable[[dict], None],
) -> TrainResult:
    """Run the rounds of LLP-BP (`fit_schedule`), or with schedule.candidates each candidate's in turn
    (records tagged "candidate": its index, all from the same `key`) and return the one that
    schedule.choose_by picks on the validation bags (event candidate_end per candidate, then chosen)."""
    schedule = settings.schedule
    if not schedule.candidates:
        return fit_schedule(data, train_bags, val_bags, settings, key, log)
    results, scores, failures = {}, {}, []
    for index, candidate in enumerate(schedule.candidates):
        tagged = _tagged(log, "candidate", index)
        candidate_settings = replace(settings, schedule=candidate_schedule(schedule, candidate))
        try:
            result = fit_schedule(data, train_bags, val_bags, candidate_settings, key, tagged)
        except (TrainingDiverged, CountGapError) as error:  # one candidate's failure must not end the others
            logger.warning("candidate %d (%r) dropped: %s", index, candidate, error)
            tagged({"event": "candidate_failed", "schedule": candidate, "error": str(error)})
            failures.append(error)
            continue
        results[index], scores[index], record = (
            result,
            *_candidate_scores(result.model, data, val_bags, settings),
        )
        tagged({"event": "candidate_end", "schedule": candidate, **record})
    if not results:
        raise failures[0]
    indices = list(results)  # the first candidate that ran is the reference of one_se
    chosen = indices[choose_candidate(np.stack([scores[index] for index in indices]), schedule.choose_by)]
    log({"event": "chosen", "candidate": chosen, "schedule": schedule.candidates[chosen]})
    return results[chosen]


def _candidate_scores(model: Encoder, data: Dataset, val_bags: Bags, settings: LLPBPSettings) -> tuple:
    """A candidate's per-validation-bag count NLL float32[n_val_bags], and what its candidate_end record
    logs: both validation criteria (means and per bag) and, under oracle/ (never used to choose), its test
    AUC."""
    logits, _ = predict(model, data.val.x, settings.train.eval_batch_size)
    per_bag = validation_bag_scores(logits, val_bags)
    record = {name: float(values.mean()) for name, values in per_bag.items()}
    record.update({f"{name}_per_bag": values.tolist() for name, values in per_bag.items()})
    if data.test.y is not None:
        test_logits, _ = predict(model, data.test.x, settings.train.eval_batch_size)
        record["oracle/test_auc"] = roc_auc(data.test.y, test_logits)
    return per_bag["val_count_nll"], record


def choose_candidate(per_bag: np.ndarray, choose_by: ChooseBy) -> int:
    """The index of the chosen candidate from each one's per-validation-bag criterion (lower is better):
    float[n_candidates, n_bags]. `lowest`: the lowest mean. `one_se`: the candidate with the lowest mean if
    its paired per-bag differences to candidate 0 have a mean below minus one standard error, else 0."""
    best = int(np.argmin(per_bag.mean(axis=1)))
    if choose_by == ChooseBy.lowest or best == 0:
        return best
    differences = per_bag[best] - per_bag[0]
    if len(differences) < 2:
        return 0
    standard_error = differences.std(ddof=1) / np.sqrt(len(differences))
    return best if differences.mean() < -standard_error else 0


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
    epoch has the lowest validation criterion; each round's value is logged (event round_end).
    The warm start draws from the stream "warm_start" of `key`, round r from ("round", r)."""
    schedule, progress = settings.schedule, settings.train.progress
    x = data.train.x
    covariates, unary, result, rounds = x.reshape(len(x), -1), None, None, []
    edge_capacity = len(x) * settings.graph.k  # a kNN graph of n points has at most n k edges
    if schedule.warm_start != "none":
        warm_start = WARM_STARTS[schedule.warm_start]
        start = time.perf_counter()
        result = warm_start(
            data, train_bags, val_bags, settings, stream_key(key, "warm_start"), _tagged(log, "round", 0)
        )
        rounds.append(_round_end(result, 0, log, time.perf_counter() - start))
    for round_index in range(1, schedule.rounds + 1):
        unary_record = {}
        if result is not None:
            logits, covariates = predict(result.model, x, settings.train.eval_batch_size)
            unary, unary_record = prior_unary(logits, train_bags, schedule)
        graph, graph_time = timed_graph(covariates, settings.graph, progress)
        stop_on_count_gap = schedule.labels == PseudoLabels.threshold  # soft: held below; topk holds them
        marginals, record = bp_pseudo_labels(
            graph, train_bags, unary, settings.bp, stop_on_count_gap, progress, edge_capacity
        )
        if schedule.labels == PseudoLabels.soft and abs(record["bp_count_gap"]) > COUNT_GAP_WARNING:
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
            **unary_record,
            graph_build_s=graph_time,
            # recall@k of an approximate search (graph.backend=faiss_hnsw) on a sample; none for exact
            **({} if graph.knn_recall is None else {"graph_knn_recall": graph.knn_recall}),
            predicted_positives=float(targets[members].sum()),
            known_positives=float(train_bags.counts.sum()),
        )
        warn_if_inconsistent(round_index, record["predicted_positives"], record["known_positives"])
        if data.train.y is not None:
            record.update(oracle_diagnostics(data.train.y, marginals, graph, train_bags))
        _tagged(log, "round", round_index)({"event": "bp", **record})
        round_key = stream_key(key, "round", round_index)
        start = time.perf_counter()
        result = fit_with_loss(
            data,
            train_bags,
            val_bags,
            settings,
            round_key,
            _tagged(log, "round", round_index),
            partial(pseudo_label_loss, lambda_agg=schedule.lambda_agg),
            targets,
            model=_round_model(data, train_bags, settings, round_key),
        )
        rounds.append(_round_end(result, round_index, log, time.perf_counter() - start))
    if schedule.keep_best_round:  # the lowest criterion; on a tie the later round
        _, best_round, result = min(rounds, key=lambda entry: (entry[0], -entry[1]))
        log({"event": "best_round", "best_round": best_round})
    encoder = result.model.encoder if isinstance(result.model, WithBagHead) else result.model
    if schedule.calibrate:
        calibration = calibrate_head(encoder, x, train_bags, settings.train.eval_batch_size)
        log({"event": "output_calibration", **calibration})
    return result._replace(model=encoder)


def _round_end(result: TrainResult, round_index: int, log: Callable[[dict], None], train_s: float) -> tuple:
    """(validation criterion of the round's selected epoch, round, result), the criterion logged with the
    seconds the round's encoder took to train (train_s, its compilations included)."""
    value = result.history[result.best_epoch - 1]["selection_loss"]
    _tagged(log, "round", round_index)(
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


def _round_model(data: Dataset, train_bags: Bags, settings: LLPBPSettings, key: jax.Array) -> nnx.Module:
    """A fresh encoder for a round, wrapped with a bag head when the aggregate-embedding loss is on."""
    encoder = fresh_encoder(data, train_bags, settings, key)
    if settings.schedule.lambda_agg == 0:
        return encoder
    return WithBagHead(encoder, rngs=nnx.Rngs(stream_key(key, "bag_head")))


def _tagged(log: Callable[[dict], None], key: str, value: int) -> Callable[[dict], None]:
    return lambda record: log({key: value, **record})
