"""K-state loopy BP (issue 26, DESIGN.md section 8): labels y_i in {0..K-1}, each bag's count vector.

    log p(y) = -lambda_s sum_{(i,j) in E} w_ij [y_i != y_j] + sum_b log f_b(count vector of b)
               + sum_i unary_i(y_i) + const

The similarity term is the Potts form of the binary engine's -lambda_s w_ij (y_i - y_j)^2 (equal for
K = 2). The bag factor is, per `BPSettings`: K - 1 per-class factors (class c = 1..K-1 counted by the
binary engine's `bag_factor`, "count" exact or "gaussian"; hard or soft as `hard_counts`), or with
`joint_counts=True` the exact factor of the whole hard count vector (bags of up to MAX_JOINT_STATES count
vectors u <= k_b). The per-class factors are exact as a model (the product of the per-class indicators is
the count-vector indicator) but BP on them is loopy within each bag; for K = 2 they are the binary
engine's factor, and the engine's marginals equal the binary engine's at convergence.

The loop is the binary engine's (`llp_jax.bp.loop.iterate`: while_loop or scan, tqdm chunks, the same
stopping rule, damping and message cap), over K-vectors of messages held relative to class 0.
One device (no sharding yet).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from llp_jax.bp.loop import _CHUNK_FLOATS, _FORCING_MARGIN, _next_state, _Numbers, _State, _stopped, iterate
from llp_jax.bp.potts_factors import (
    JointLayout,
    class_indicator_cavities,
    joint_count_messages,
    joint_layout,
    potts_pairwise_messages,
)
from llp_jax.bp.problem import check_bag_members, check_edges, edge_bucket
from llp_jax.bp.registry import BAG_FACTORS
from llp_jax.bp.settings import BagFactorName, BPSettings, check_settings
from llp_jax.compile_clock import compile_stage

if TYPE_CHECKING:
    from llp_jax.data.bags import Bags
    from llp_jax.graph import SimilarityGraph

MAX_JOINT_STATES = 4096
"""The most count vectors u <= k_b (prod_c (k_{b,c} + 1)) a bag may have under joint_counts=True: the
joint factor's work and memory per bag are width K times that."""
_COUNT_SUM_TOL = 1e-3  # |sum_c k_{b,c} - |b|| allowed, relative to |b|: proportions times sizes in float32


class PottsProblem(NamedTuple):
    """The K-state factor graph on the device. field: float32[n, K] unary log-potentials relative to
    class 0; senders, receivers, couplings: as BPProblem's (couplings J = lambda_s w_ij >= 0, 0 at padding
    edges); bag_members: int32[n_bags, width]; bag_mask: bool[n_bags, width]; bag_counts:
    float32[n_bags, K]; reach: float32[n] how far the rest of a node's belief can lie from class 0's
    (max_a |field(a)| plus the J of its incoming edges); joint: the count vectors' layout under
    joint_counts=True, else None."""

    field: jax.Array
    senders: jax.Array
    receivers: jax.Array
    couplings: jax.Array
    bag_members: jax.Array
    bag_mask: jax.Array
    bag_counts: jax.Array
    reach: jax.Array
    joint: JointLayout | None


class PottsResult(NamedTuple):
    """marginals: float32[n, K] P(y_i = a) (max-product: the argmax classes share 1); log_potentials:
    float32[n, K] the beliefs relative to class 0; deltas, marginal_deltas, n_iters, converged: as
    BPResult's, the marginal change being the mean total-variation distance; count_gap: float32[K] per
    class (sum of the bags' members' marginals - sum_b k_{b,a}) / max(sum_b k_{b,a}, 1)."""

    marginals: jax.Array
    log_potentials: jax.Array
    deltas: jax.Array
    marginal_deltas: jax.Array
    n_iters: jax.Array
    converged: jax.Array
    count_gap: jax.Array


class _PottsStatic(NamedTuple):
    """The settings that change the compiled program."""

    bag_factor: BagFactorName
    hard_counts: bool
    max_product: bool
    early_stop: bool
    max_iters: int
    bags_per_chunk: int | None
    joint: bool


def run_potts_bp(
    graph: SimilarityGraph,
    bags: Bags | None = None,
    settings: BPSettings | None = None,
    unary=None,
    n_classes: int | None = None,
    progress: bool = False,
    edge_capacity: int = 0,
) -> PottsResult:
    """Marginals of the K-class LLP Gibbs distribution by loopy BP.

    graph: as `run_bp`'s (weights >= 0). bags: members and mask as `run_bp`'s, counts float[n_bags, K]
    each bag's count vector (summing to its size; integers for hard counts); None: no bags.
    unary: float[n_nodes, K] log-potentials added to every node (None: 0). n_classes: K, needed only
    when neither bags nor unary give it. settings, progress, edge_capacity: as `run_bp`'s.
    """
    settings = BPSettings() if settings is None else settings
    with compile_stage("bp"):
        problem = build_potts_problem(graph, bags, settings, unary, n_classes, edge_capacity)
        return solve_potts(problem, settings, progress)


def build_potts_problem(
    graph: SimilarityGraph,
    bags: Bags | None,
    settings: BPSettings,
    unary=None,
    n_classes: int | None = None,
    edge_capacity: int = 0,
) -> PottsProblem:
    """Check the inputs (ValueError naming the first fault and its fix) and lay out the factor graph."""
    settings = _check_potts_settings(settings)
    n_nodes, senders, receivers, weights = check_edges(graph)
    if np.any(weights < 0):
        e = np.flatnonzero(weights < 0)[0]
        raise ValueError(f"weights[{e}]={weights[e]} < 0; the Potts similarity term needs weights >= 0.")
    n_classes = _n_classes(bags, unary, n_classes)
    members, mask, counts = _check_class_bags(n_nodes, bags, n_classes, settings)
    field = np.zeros((n_nodes, n_classes), np.float64)
    if unary is not None:
        unary = np.asarray(unary, np.float64)
        if unary.shape != (n_nodes, n_classes) or not np.all(np.isfinite(unary)):
            raise ValueError(f"unary has shape {unary.shape}; expected finite float[{n_nodes}, {n_classes}].")
        field += unary - unary[:, :1]
    couplings = settings.lambda_s * weights
    problem = PottsProblem(
        field,
        np.stack([senders, receivers]),
        np.stack([receivers, senders]),
        np.stack([couplings, couplings]),
        members,
        mask,
        counts,
        reach=None,
        joint=None,
    )
    if settings.joint_counts:
        problem = problem._replace(joint=joint_layout(np.round(counts)))
    else:
        problem = BAG_FACTORS[settings.bag_factor].prepare(problem, settings)
    slots = problem.senders.shape[1]
    pad = ((0, 0), (0, edge_bucket(slots + max(0, edge_capacity - len(senders))) - slots))
    problem = problem._replace(
        **{f: np.pad(getattr(problem, f), pad) for f in ("senders", "receivers", "couplings")}
    )
    reach = np.abs(field).max(axis=1) + np.bincount(
        problem.receivers.ravel(), problem.couplings.ravel(), n_nodes
    )
    return problem._replace(
        field=jnp.asarray(field, jnp.float32),
        senders=jnp.asarray(problem.senders, jnp.int32),
        receivers=jnp.asarray(problem.receivers, jnp.int32),
        couplings=jnp.asarray(problem.couplings, jnp.float32),
        bag_members=jnp.asarray(problem.bag_members, jnp.int32),
        bag_mask=jnp.asarray(problem.bag_mask, bool),
        bag_counts=jnp.asarray(problem.bag_counts, jnp.float32),
        reach=jnp.asarray(reach, jnp.float32),
    )


def _check_potts_settings(settings: BPSettings) -> BPSettings:
    settings = check_settings(settings)
    if BAG_FACTORS[settings.bag_factor].messages is None:
        able = " or ".join(repr(n) for n, f in BAG_FACTORS.items() if f.messages is not None)
        raise ValueError(
            f"bp.bag_factor={settings.bag_factor.value!r} has no K-class form (it sends no bag messages); "
            f"use bag_factor={able}, or joint_counts=true for the exact factor of small bags."
        )
    if settings.joint_counts and not settings.hard_counts:
        raise ValueError(
            "bp.joint_counts=true is the exact factor of hard count vectors; set hard_counts=true."
        )
    if settings.joint_counts and settings.temperature == 0.0:
        raise ValueError("bp.joint_counts=true has no max-product form; use a temperature > 0.")
    return settings


def _n_classes(bags: Bags | None, unary, n_classes: int | None) -> int:
    """K from the bags' count vectors, the unary's columns or n_classes, which must agree."""
    given = {}
    if bags is not None and bags.counts is not None:
        counts = np.asarray(bags.counts)
        if counts.ndim != 2:
            raise ValueError(
                f"bags.counts has shape {counts.shape}; K-state BP needs count vectors float[n_bags, K] "
                "(binary counts float[n_bags] go to llp_jax.bp.run_bp)."
            )
        given["bags.counts"] = counts.shape[1]
    if unary is not None:
        shape = np.shape(unary)
        if len(shape) != 2:
            raise ValueError(f"unary has shape {shape}; expected float[n_nodes, K] log-potentials.")
        given["unary"] = shape[1]
    if n_classes is not None:
        given["n_classes"] = n_classes
    if not given:
        raise ValueError(
            "K is unknown: pass bags with count vectors, a unary float[n_nodes, K] or n_classes."
        )
    if len(set(given.values())) > 1:
        raise ValueError(f"the number of classes disagrees: {given}; they must all be K.")
    k = next(iter(given.values()))
    if not (isinstance(k, int | np.integer) and k >= 2):
        raise ValueError(f"K={k!r} classes; expected an integer >= 2.")
    return int(k)


def _check_class_bags(n_nodes: int, bags: Bags | None, n_classes: int, settings: BPSettings):
    """members, mask and counts (int64, bool, float64 host arrays; empty for bags=None)."""
    if bags is None:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), bool), np.zeros((0, n_classes))
    members, mask = check_bag_members(n_nodes, bags)
    counts = np.asarray(bags.counts, np.float64)
    sizes = mask.sum(axis=1)
    if counts.shape[0] != len(members):
        raise ValueError(f"bags.counts has {counts.shape[0]} rows for {len(members)} bags; one per bag.")
    bad = np.argwhere(~np.isfinite(counts) | (counts < 0))
    if bad.size:
        b, c = bad[0]
        raise ValueError(f"bags.counts[{b}, {c}]={counts[b, c]}; counts must be finite and >= 0.")
    off = np.flatnonzero(np.abs(counts.sum(axis=1) - sizes) > _COUNT_SUM_TOL * sizes)
    if off.size:
        b = off[0]
        raise ValueError(
            f"bag {b}'s count vector sums to {counts[b].sum():g} but the bag has {sizes[b]} members; each "
            "bag's counts over the K classes must add up to its size."
        )
    if settings.hard_counts and np.any(counts != np.round(counts)):
        b, c = np.argwhere(counts != np.round(counts))[0]
        raise ValueError(
            f"hard_counts=True needs integer counts, but bags.counts[{b}, {c}]={counts[b, c]}; round the "
            "counts or use soft counts (hard_counts=False)."
        )
    if settings.joint_counts:
        states = np.prod(np.round(counts) + 1, axis=1)
        if states.max() > MAX_JOINT_STATES:
            b = int(np.argmax(states))
            raise ValueError(
                f"bag {b} has {states[b]:.0f} count vectors u <= k_b, more than the joint factor's "
                f"{MAX_JOINT_STATES}; use joint_counts=false (the per-class factors) for bags this large."
            )
    return members, mask, counts


def solve_potts(
    problem: PottsProblem, settings: BPSettings | None = None, progress: bool = False
) -> PottsResult:
    """Run K-state BP on a problem from `build_potts_problem` (built with the same settings)."""
    settings = _check_potts_settings(BPSettings() if settings is None else settings)
    n_bags, width = problem.bag_members.shape
    n_classes = problem.field.shape[1]
    per_chunk = max(1, _CHUNK_FLOATS // max(1, width * width))  # rows of the per-class factors at once
    static = _PottsStatic(
        bag_factor=settings.bag_factor,
        hard_counts=bool(settings.hard_counts),
        max_product=settings.temperature == 0.0,
        early_stop=bool(settings.early_stop),
        max_iters=int(settings.max_iters),
        bags_per_chunk=per_chunk if per_chunk < n_bags * (n_classes - 1) else None,
        joint=bool(settings.joint_counts),
    )
    floats = (settings.lambda_b, settings.damping, settings.tol, settings.marginal_tol, settings.temperature)
    numbers = _Numbers(
        *map(jnp.float32, floats),
        message_cap=jnp.max(problem.reach) + _FORCING_MARGIN * max(1.0, settings.temperature),
    )
    state = _State(
        pair=jnp.zeros((*problem.senders.shape, n_classes), jnp.float32),
        bag=jnp.zeros((n_bags, width, n_classes), jnp.float32),
        beliefs=problem.field,
        it=jnp.int32(0),
        deltas=jnp.full((settings.max_iters,), jnp.nan, jnp.float32),
        marginal_deltas=jnp.full((settings.max_iters,), jnp.nan, jnp.float32),
        last_delta=jnp.float32(jnp.inf),
        last_marginal_delta=jnp.float32(jnp.inf),
    )
    state = iterate(problem, numbers, state, static, _step, progress)
    return _result(problem, numbers, state, static)


def _beliefs(problem: PottsProblem, pair: jax.Array, bag: jax.Array) -> jax.Array:
    """B_i = field_i + incoming pairwise messages + the message of i's bag: float32[n, K]."""
    n = problem.field.shape[0]
    beliefs = problem.field + jax.ops.segment_sum(
        pair.reshape(-1, pair.shape[-1]), problem.receivers.ravel(), n
    )
    bag_in = jnp.where(problem.bag_mask[..., None], bag, 0.0).reshape(-1, bag.shape[-1])
    return beliefs + jax.ops.segment_sum(bag_in, problem.bag_members.ravel(), n)


def _tempered_marginals(beliefs: jax.Array, numbers: _Numbers, static: _PottsStatic) -> jax.Array:
    """softmax(B_i / T), float32[n, K]; max-product: softmax(B_i): its change tells when beliefs settle."""
    return jax.nn.softmax(beliefs if static.max_product else beliefs / numbers.temperature, axis=-1)


def _bag_messages(problem: PottsProblem, numbers: _Numbers, static: _PottsStatic, state: _State) -> jax.Array:
    """The bags' new K-vector messages to their members, float32[n_bags, width, K], clipped to the cap."""
    members = state.beliefs[problem.bag_members]
    cap = numbers.message_cap
    if static.joint:
        log_message = joint_count_messages(
            members - state.bag, problem.bag_mask, problem.joint, numbers.temperature
        )
        clipped = jnp.maximum(log_message, -cap)
        return jnp.where(problem.bag_mask[..., None], clipped - clipped[..., :1], 0.0)
    n_bags, width, n_classes = members.shape
    cavities = class_indicator_cavities(members, state.bag, numbers.temperature, static.max_product)
    rows = jnp.swapaxes(cavities, 1, 2).reshape(-1, width)  # row b (K - 1) + c - 1: bag b, class c
    new = BAG_FACTORS[static.bag_factor].messages(
        rows, jnp.repeat(problem.bag_mask, n_classes - 1, axis=0), problem.bag_counts[:, 1:].reshape(-1),
        numbers.lambda_b, numbers.temperature, static.hard_counts, static.max_product, static.bags_per_chunk,
    )  # fmt: skip
    new = jnp.swapaxes(jnp.clip(new, -cap, cap).reshape(n_bags, n_classes - 1, width), 1, 2)
    return jnp.concatenate([jnp.zeros((n_bags, width, 1), new.dtype), new], axis=-1)


def _step(problem: PottsProblem, numbers: _Numbers, static: _PottsStatic, state: _State) -> _State:
    """One parallel, damped update of every message, and the beliefs they give."""
    keep = numbers.damping
    pair = potts_pairwise_messages(
        state.beliefs, state.pair, problem.senders, problem.couplings, numbers.temperature, static.max_product
    )
    pair = keep * state.pair + (1.0 - keep) * pair
    delta = jnp.max(jnp.abs(pair - state.pair), initial=0.0)
    bag = state.bag
    if problem.bag_members.shape[0] > 0:
        bag = keep * state.bag + (1.0 - keep) * _bag_messages(problem, numbers, static, state)
        delta = jnp.maximum(delta, jnp.max(jnp.abs(bag - state.bag)))
    beliefs = _beliefs(problem, pair, bag)
    change = _tempered_marginals(beliefs, numbers, static) - _tempered_marginals(
        state.beliefs, numbers, static
    )
    marginal_delta = jnp.mean(0.5 * jnp.sum(jnp.abs(change), axis=-1))
    return _next_state(state, pair, bag, beliefs, delta, marginal_delta)


def _result_impl(
    problem: PottsProblem, numbers: _Numbers, state: _State, static: _PottsStatic
) -> PottsResult:
    beliefs = state.beliefs
    if static.max_product:
        top = beliefs == jnp.max(beliefs, axis=-1, keepdims=True)
        marginals = top / jnp.sum(top, axis=-1, keepdims=True).astype(beliefs.dtype)
    else:
        marginals = _tempered_marginals(beliefs, numbers, static)
    counts = jnp.sum(problem.bag_counts, axis=0)
    in_bags = jnp.sum(
        jnp.where(problem.bag_mask[..., None], marginals[problem.bag_members], 0.0), axis=(0, 1)
    )
    count_gap = (in_bags - counts) / jnp.maximum(counts, 1.0)
    return PottsResult(
        marginals, beliefs, state.deltas, state.marginal_deltas, state.it, _stopped(state, numbers), count_gap
    )


_result = jax.jit(_result_impl, static_argnums=3)
