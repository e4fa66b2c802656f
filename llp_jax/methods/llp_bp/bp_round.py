"""One round's BP: the graph on the round's covariates, the previous encoder's logits as a unary, BP's
marginals with what the round logs, and the oracle diagnostics (true training labels, logged only)."""

from __future__ import annotations

import time
import warnings

import jax
import numpy as np

from llp_jax.bp import COUNT_GAP_WARNING, BPSettings, CountGapWarning, run_bp, run_potts_bp
from llp_jax.data.bags import Bags
from llp_jax.graph import GraphSettings, SimilarityGraph, build_graph
from llp_jax.methods.llp_bp.settings import ScheduleSettings
from llp_jax.train.calibration import fit_to_counts
from llp_jax.train.metrics import macro_auc, roc_auc

MARGINAL_BINS = 20  # the histogram of a round's BP marginals, bins of width 0.05 over [0, 1]


class CountGapError(FloatingPointError):
    """BP's marginals miss the bags' total count by more than llp_jax.bp.COUNT_GAP_WARNING, and the
    pseudo-labels would carry that error (labels=threshold with strict_counts; soft labels are held to
    the counts instead, `counts_held`, and topk labels hold them by construction)."""


def prior_unary(logits: np.ndarray, bags: Bags, schedule: ScheduleSettings) -> tuple[np.ndarray | None, dict]:
    """The previous encoder's logits: float32[n] as the BP unary gamma * (scale * logits + shift), the
    scale and shift fitted to the training bag counts (schedule.calibrate), and what a round logs.
    None where gamma (schedule.prior_weight) is 0. K classes, logits float32[n, K]: gamma * log softmax,
    uncalibrated (the count fit is binary; DESIGN.md section 8)."""
    if schedule.prior_weight == 0:
        return None, {}
    if logits.ndim == 2:
        return schedule.prior_weight * np.asarray(jax.nn.log_softmax(logits, axis=-1)), {}
    if not schedule.calibrate:
        return schedule.prior_weight * logits, {}
    calibration = fit_to_counts(logits, bags)
    record = {"calibration_scale": calibration.scale, "calibration_shift": calibration.shift}
    return schedule.prior_weight * calibration.apply(logits), record


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
    """BP marginals P(y_i = 1): float32[graph.n_nodes] on the graph and the bags (K-class bags: the K-state
    engine's P(y_i = c), float32[n_nodes, K]), with what a round logs (edges, BP time, iterations, final
    deltas, convergence). edge_capacity: as `run_bp`'s, the most edges of any round's graph, so that every
    round reuses one compiled BP loop. CountGapError, with the totals and the likely causes, when
    `stop_on_count_gap` and the marginals miss the bags' total count (K classes: any class's) by more than
    10%: an encoder trained on them would learn a base rate the counts contradict (docs/DESIGN.md section
    2). Otherwise CountGapWarning (binary; the K-state engine does not warn)."""
    start = time.perf_counter()
    if bags.n_classes > 2:
        result = run_potts_bp(graph, bags, settings, unary, progress=progress, edge_capacity=edge_capacity)
        gap = float(np.max(np.abs(np.asarray(result.count_gap))))  # the class furthest from its total
        if stop_on_count_gap and gap > COUNT_GAP_WARNING:
            raise CountGapError(
                f"BP's marginals miss a class's total count by {100 * gap:.1f}% (count_gap per class "
                f"{np.round(np.asarray(result.count_gap), 3).tolist()}); LLP-BP stops rather than train on "
                "pseudo-labels that contradict the bag counts; schedule.labels=soft trains on them, "
                "schedule.strict_counts=false anyway."
            )
        return _round_record(result, graph, start, gap)
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
                "schedule.labels=topk keeps every bag's count whatever BP's marginals, and "
                "schedule.strict_counts=false trains on them anyway (the paper's code)."
            ) from None
    return _round_record(result, graph, start, float(result.count_gap))


def _round_record(result, graph: SimilarityGraph, start: float, count_gap: float) -> tuple[np.ndarray, dict]:
    """The marginals (float32[n] or, K-state, float32[n, K]) of a BPResult or PottsResult on the host, and
    the round's `bp` record (count_gap: the binary gap, or the largest class's |gap|); start: when BP
    began (time.perf_counter)."""
    # On the host first: slicing and iterating the device arrays would compile a program per iteration count.
    marginals, deltas, marginal_deltas = map(
        np.asarray, (result.marginals, result.deltas, result.marginal_deltas)
    )
    bp_s = time.perf_counter() - start
    n_iters = int(result.n_iters)
    # binary: P(y = 1); K classes: each node's largest class probability, its confidence
    shown = marginals if marginals.ndim == 1 else marginals.max(axis=1)
    record = {
        "graph_edges": int(graph.n_edges),
        "bp_s": bp_s,
        "bp_iterations": n_iters,
        "bp_final_delta": float(deltas[n_iters - 1]),
        "bp_final_marginal_delta": float(marginal_deltas[n_iters - 1]),
        "bp_converged": bool(result.converged),
        # (sum of members' marginals - sum of counts) / sum of counts: 0 when BP holds the bags' totals
        "bp_count_gap": count_gap,
        "bp_deltas": deltas[:n_iters].tolist(),  # the convergence curves
        "bp_marginal_deltas": marginal_deltas[:n_iters].tolist(),
        "bp_marginals_histogram": np.histogram(shown, bins=MARGINAL_BINS, range=(0.0, 1.0))[0].tolist(),
    }
    return marginals, record


def oracle_diagnostics(labels: np.ndarray, marginals: np.ndarray, graph: SimilarityGraph, bags: Bags) -> dict:
    """Diagnostics that use true training labels, logged under oracle/ so none is taken for a result."""
    members = bags.members[bags.mask]
    same = labels[np.asarray(graph.senders)] == labels[np.asarray(graph.receivers)]
    ranking = roc_auc if marginals.ndim == 1 else macro_auc  # K classes: marginals float32[n, K]
    return {
        "oracle/pseudo_label_auc": ranking(labels[members], marginals[members]),
        "oracle/knn_label_agreement": float(np.mean(same)) if len(same) else float("nan"),
    }
