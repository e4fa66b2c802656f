"""LLP-BP (Havaldar et al., ICLR 2024): belief propagation over a kNN graph and the bag counts gives
pseudo-labels; an encoder trained on them gives embeddings for the next round's graph.

Rounds r = 1..R (cfg.schedule.rounds): graph on the raw features (round 1) or on the previous encoder's
embedding -> BP -> pseudo-labels (hard at threshold tau, or soft) -> a fresh encoder trained on them,
optionally with the aggregate-embedding bag loss. Beyond the paper: an optional round 0 (warm_start) that
trains on the bags alone with DLLP or EasyLLP, and the previous encoder's logits as an extra BP unary
(prior_weight gamma), first recalibrated on the training bag counts (llp_jax.train.calibration). The last
round's encoder is the classifier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import jax
import numpy as np
from flax import nnx
from omegaconf import DictConfig, OmegaConf

from llp_jax.bp import BPSettings, run_bp
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.graph import SimilarityGraph, build_graph
from llp_jax.methods import dllp, easyllp
from llp_jax.methods.common import fit_with_loss, fresh_encoder
from llp_jax.train.calibration import fit_to_counts
from llp_jax.train.loop import BagBatch, TrainResult, predict
from llp_jax.train.losses import bag_proportion_bce, instance_bce
from llp_jax.train.metrics import roc_auc

WARM_STARTS = {"dllp": dllp.fit, "easyllp": easyllp.fit}


class WithBagHead(nnx.Module):
    """An encoder plus a linear head on a bag's mean embedding, for the aggregate-embedding bag loss.
    Called like the encoder: x -> (logits float32[n], embedding float32[n, e])."""

    def __init__(self, encoder: nnx.Module, embedding_width: int, *, rngs: nnx.Rngs):
        self.encoder = encoder
        self.bag_head = nnx.Linear(embedding_width, 1, rngs=rngs)

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


def check_schedule(schedule: DictConfig) -> None:
    if schedule.rounds < 1:
        raise ValueError(f"schedule.rounds={schedule.rounds} must be at least 1")
    if not 0.0 < schedule.threshold < 1.0:
        raise ValueError(f"schedule.threshold={schedule.threshold} must lie strictly between 0 and 1")
    if schedule.warm_start != "none" and schedule.warm_start not in WARM_STARTS:
        raise ValueError(
            f"schedule.warm_start={schedule.warm_start!r}; choose none or one of {sorted(WARM_STARTS)}"
        )
    if schedule.lambda_agg < 0 or schedule.prior_weight < 0:
        raise ValueError("schedule.lambda_agg and schedule.prior_weight must be non-negative")


def prior_unary(logits: np.ndarray, bags: Bags, schedule: DictConfig) -> tuple[np.ndarray | None, dict]:
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


def timed_graph(z: np.ndarray, graph_options: dict, progress: bool = False) -> tuple[SimilarityGraph, float]:
    """build_graph(z, **graph_options) for covariates z: float32[n, d], and the seconds it took."""
    start = time.perf_counter()
    graph = build_graph(z, progress=progress, **graph_options)
    jax.block_until_ready(graph.weights)
    return graph, time.perf_counter() - start


def bp_pseudo_labels(
    graph: SimilarityGraph,
    n_nodes: int,
    bags: Bags,
    unary: np.ndarray | None,
    settings: BPSettings,
    progress: bool = False,
) -> tuple[np.ndarray, dict]:
    """BP marginals P(y_i = 1): float32[n_nodes] on the graph and the bags, with what a round logs
    (edges, BP time, iterations, final delta, convergence)."""
    start = time.perf_counter()
    result = run_bp(
        n_nodes,
        graph.senders,
        graph.receivers,
        graph.weights,
        bags.members,
        bags.mask,
        bags.counts,
        settings,
        unary=unary,
        progress=progress,
    )
    marginals = np.asarray(result.marginals)
    n_iters = int(result.n_iters)
    record = {
        "graph_edges": int(graph.n_edges),
        "bp_s": time.perf_counter() - start,
        "bp_iterations": n_iters,
        "bp_final_delta": float(result.deltas[n_iters - 1]),
        "bp_converged": bool(result.converged),
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


def fit(
    data: Dataset, train_bags: Bags, val_bags: Bags, cfg: DictConfig, seed: int, log: Callable
) -> TrainResult:
    """Run the rounds of LLP-BP and return the last round's training result (its encoder without the
    bag head)."""
    schedule = cfg.schedule
    check_schedule(schedule)
    x = data.train.x
    covariates, unary, result = x.reshape(len(x), -1), None, None
    if schedule.warm_start != "none":
        result = WARM_STARTS[schedule.warm_start](data, train_bags, val_bags, cfg, seed, _tagged(log, 0))
    for round_index in range(1, schedule.rounds + 1):
        unary_record = {}
        if result is not None:
            logits, covariates = predict(result.model, x, cfg.train.eval_batch_size)
            unary, unary_record = prior_unary(logits, train_bags, schedule)
        graph_options = OmegaConf.to_container(cfg.graph, resolve=True)
        graph, graph_time = timed_graph(covariates, graph_options, cfg.train.progress)
        settings = BPSettings(**OmegaConf.to_container(cfg.bp, resolve=True))
        marginals, record = bp_pseudo_labels(
            graph, len(covariates), train_bags, unary, settings, cfg.train.progress
        )
        targets = marginals if schedule.soft_labels else (marginals > schedule.threshold).astype(np.float32)
        members = train_bags.members[train_bags.mask]
        record.update(
            **unary_record,
            graph_build_s=graph_time,
            predicted_positives=float(targets[members].sum()),
            known_positives=float(train_bags.counts.sum()),
        )
        if data.train.y is not None:
            record.update(oracle_diagnostics(data.train.y, marginals, graph, train_bags))
        _tagged(log, round_index)({"event": "bp", **record})
        round_seed = seed + round_index
        result = fit_with_loss(
            data,
            train_bags,
            val_bags,
            cfg,
            round_seed,
            _tagged(log, round_index),
            partial(pseudo_label_loss, lambda_agg=schedule.lambda_agg),
            targets,
            model=_round_encoder(data, train_bags, cfg, round_seed),
        )
    encoder = getattr(result.model, "encoder", result.model)
    if schedule.calibrate:
        log(
            {
                "event": "output_calibration",
                **calibrate_head(encoder, x, train_bags, cfg.train.eval_batch_size),
            }
        )
    return result._replace(model=encoder)


def calibrate_head(encoder: nnx.Module, x: np.ndarray, bags: Bags, batch_size: int) -> dict:
    """Rescale the encoder's logit head in place so that its logits on x fit the bag counts (trained on hard
    pseudo-labels, the last round's encoder is overconfident); the ranking is unchanged. Returns the scale
    and shift applied."""
    logits, _ = predict(encoder, x, batch_size)
    calibration = fit_to_counts(logits, bags)
    encoder.head.kernel[...] = encoder.head.kernel[...] * calibration.scale
    encoder.head.bias[...] = encoder.head.bias[...] * calibration.scale + calibration.shift
    return {"scale": calibration.scale, "shift": calibration.shift}


def _round_encoder(data: Dataset, train_bags: Bags, cfg: DictConfig, seed: int) -> nnx.Module:
    encoder = fresh_encoder(data, train_bags, cfg, seed)
    if cfg.schedule.lambda_agg == 0:
        return encoder
    _, embedding = encoder(np.zeros((1, *data.feature_shape), np.float32))
    return WithBagHead(encoder, embedding.shape[-1], rngs=nnx.Rngs(seed))


def _tagged(log: Callable[[dict], None], round_index: int) -> Callable[[dict], None]:
    return lambda record: log({"round": round_index, **record})
