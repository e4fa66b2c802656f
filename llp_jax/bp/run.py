"""Loopy BP on the LLP Gibbs distribution: host-side checks and set-up, then one jit-compiled loop.

    log p(y) = -lambda_s sum_{(i,j) in E} w_ij (y_i - y_j)^2 + sum_b log f_b(sum_{i in b} y_i)
               + sum_i unary_i y_i + const

All messages update in parallel every iteration (DESIGN.md section 3), with damping
m <- damping m_old + (1 - damping) m_new. The iterations run in one `jax.lax.while_loop` (stop when the
largest message change falls below `tol`) or, with `early_stop=False`, one `jax.lax.scan` of exactly
`max_iters` iterations (differentiable). `progress=True` runs the same compiled loop in 20 chunks of
iterations on the host and shows a tqdm bar per chunk; without it there is no per-iteration output.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from llp_jax.bp.factors import bag_count_messages, bag_gaussian_messages, pairwise_messages

BAG_FACTORS = ("count", "gaussian", "clique")
_PROGRESS_CHUNKS = 20
_CHUNK_FLOATS = 1 << 28  # count mode: bags per chunk such that a chunk's largest level is ~1 GiB


class BPSettings(NamedTuple):
    """lambda_s: weight of the similarity term; lambda_b: weight of the soft bag penalty.
    bag_factor: "count" (exact message of f_b on the bag's count, O(|b|^2) per bag), "gaussian" (Gaussian
    approximation of the cavity count, O(|b|), for huge bags) or "clique" (the paper's |b|(|b|-1)/2
    pairwise factors, soft counts only; for faithful reproduction).
    hard_counts: f_b(s) = 1[s = k_b] instead of exp(-lambda_b (s - k_b)^2) (needs integer counts).
    max_iters: iterations at most; damping in [0, 1); tol: convergence threshold on the largest |message
    change| of an iteration; early_stop: stop at tol (while_loop) or always run max_iters (scan).
    temperature: 1 = sum-product, 0 = max-product, other T > 0 = sum-product on p^(1/T).
    """

    lambda_s: float = 10.0
    lambda_b: float = 10.0
    bag_factor: str = "count"
    hard_counts: bool = False
    max_iters: int = 100
    damping: float = 0.5
    tol: float = 1e-4
    early_stop: bool = True
    temperature: float = 1.0


class BPResult(NamedTuple):
    """marginals: float32[n] P(y_i = 1) (at T = 0: 1, 0 or 1/2 by the sign of log_odds).
    log_odds: float32[n] the beliefs B_i; log-odds of the marginal at T = 1, sigmoid(B_i / T) otherwise.
    deltas: float32[max_iters] largest |message change| of each iteration; NaN for iterations not run.
    n_iters: int32[] iterations run; converged: bool[] the last delta is below tol.
    """

    marginals: jax.Array
    log_odds: jax.Array
    deltas: jax.Array
    n_iters: jax.Array
    converged: jax.Array


class BPProblem(NamedTuple):
    """The factor graph on the device. field: float32[n] unary log-odds (similarity unaries, clique
    unaries and the user's unary); senders, receivers: int32[2, n_edges] directed edges, row 0 the given
    edges, row 1 the same reversed; couplings: float32[2, n_edges] J of each;
    bag_members: int32[n_bags, width]; bag_mask: bool[n_bags, width]; bag_counts: float32[n_bags]
    (no bags in clique mode)."""

    field: jax.Array
    senders: jax.Array
    receivers: jax.Array
    couplings: jax.Array
    bag_members: jax.Array
    bag_mask: jax.Array
    bag_counts: jax.Array


class _Static(NamedTuple):
    """The settings that change the compiled program."""

    bag_factor: str
    hard_counts: bool
    max_product: bool
    early_stop: bool
    max_iters: int
    bags_per_chunk: int | None


class _Numbers(NamedTuple):
    """The settings that are traced numbers (float32 scalars): changing them does not recompile."""

    lambda_b: jax.Array
    damping: jax.Array
    tol: jax.Array
    temperature: jax.Array


class _State(NamedTuple):
    """pair: float32[2, n_edges]; bag: float32[n_bags, width]; it: int32[]; deltas: float32[max_iters];
    last_delta: float32[] (inf before the first iteration)."""

    pair: jax.Array
    bag: jax.Array
    it: jax.Array
    deltas: jax.Array
    last_delta: jax.Array


def run_bp(
    n_nodes: int,
    senders,
    receivers,
    weights,
    bag_members=None,
    bag_mask=None,
    bag_counts=None,
    settings: BPSettings | None = None,
    unary=None,
    progress: bool = False,
) -> BPResult:
    """Marginals of the LLP Gibbs distribution by loopy BP.

    n_nodes: number of variables y_i. senders, receivers: int32[n_edges], each undirected similarity edge
    once with senders < receivers; weights: float32[n_edges] w_ij. bag_members: int32[n_bags, max_size]
    row indices (padding slots hold 0), bag_mask: bool[n_bags, max_size], bag_counts: float32[n_bags]
    k_b, as in `llp_jax.data.bags.Bags`; bags must be disjoint; None: no bags. unary: float32[n] extra
    log-odds added to every node (None: 0). settings: None for BPSettings(). progress: tqdm bar over
    chunks of iterations.
    """
    settings = BPSettings() if settings is None else settings
    problem = build_problem(
        n_nodes, senders, receivers, weights, bag_members, bag_mask, bag_counts, settings, unary
    )
    return solve(problem, settings, progress)


def solve(problem: BPProblem, settings: BPSettings | None = None, progress: bool = False) -> BPResult:
    """Run BP on a problem from `build_problem` (built with the same settings; None: BPSettings())."""
    settings = BPSettings() if settings is None else settings
    check_settings(settings)
    static, numbers = _split_settings(settings, problem)
    state = _initial_state(problem, settings.max_iters)
    if not progress:
        state = _advance(problem, numbers, state, settings.max_iters, static)
    else:
        chunk = math.ceil(settings.max_iters / _PROGRESS_CHUNKS)
        with tqdm(total=settings.max_iters, desc="BP iterations", unit="it") as bar:
            while int(state.it) < settings.max_iters:
                steps = min(chunk, settings.max_iters - int(state.it))
                before = int(state.it)
                state = _advance(problem, numbers, state, steps, static)
                bar.update(int(state.it) - before)
                bar.set_postfix(delta=f"{float(state.last_delta):.2e}")
                if settings.early_stop and float(state.last_delta) < settings.tol:
                    break
    return _result(problem, numbers, state, static)


# ----------------------------------------------------------------------------------------------------
# The compiled loop.


def _split_settings(settings: BPSettings, problem: BPProblem) -> tuple[_Static, _Numbers]:
    width = problem.bag_members.shape[1]
    per_chunk = max(1, _CHUNK_FLOATS // max(1, width * width))
    static = _Static(
        bag_factor=settings.bag_factor,
        hard_counts=bool(settings.hard_counts),
        max_product=settings.temperature == 0.0,
        early_stop=bool(settings.early_stop),
        max_iters=int(settings.max_iters),
        bags_per_chunk=per_chunk if per_chunk < problem.bag_members.shape[0] else None,
    )
    numbers = _Numbers(
        *(jnp.float32(v) for v in (settings.lambda_b, settings.damping, settings.tol, settings.temperature))
    )
    return static, numbers


def _initial_state(problem: BPProblem, max_iters: int) -> _State:
    return _State(
        pair=jnp.zeros(problem.senders.shape, jnp.float32),
        bag=jnp.zeros(problem.bag_members.shape, jnp.float32),
        it=jnp.int32(0),
        deltas=jnp.full((max_iters,), jnp.nan, jnp.float32),
        last_delta=jnp.float32(jnp.inf),
    )


def _beliefs(problem: BPProblem, pair: jax.Array, bag: jax.Array) -> jax.Array:
    """B_i = field_i + sum of incoming pairwise messages + the message of i's bag. float32[n]."""
    n = problem.field.shape[0]
    beliefs = problem.field + jax.ops.segment_sum(pair.ravel(), problem.receivers.ravel(), n)
    bag_in = jnp.where(problem.bag_mask, bag, 0.0).ravel()
    return beliefs + jax.ops.segment_sum(bag_in, problem.bag_members.ravel(), n)


def _bag_messages(problem: BPProblem, numbers: _Numbers, static: _Static, cavity: jax.Array) -> jax.Array:
    args = (cavity, problem.bag_mask, problem.bag_counts, numbers.lambda_b, numbers.temperature)
    if static.bag_factor == "gaussian":
        return bag_gaussian_messages(*args, static.hard_counts)
    return bag_count_messages(*args, static.hard_counts, static.max_product, static.bags_per_chunk)


def _step(problem: BPProblem, numbers: _Numbers, static: _Static, state: _State) -> _State:
    """One parallel, damped update of every message."""
    beliefs = _beliefs(problem, state.pair, state.bag)
    keep = numbers.damping
    pair = pairwise_messages(
        beliefs, state.pair, problem.senders, problem.couplings, numbers.temperature, static.max_product
    )
    pair = keep * state.pair + (1.0 - keep) * pair
    delta = jnp.max(jnp.abs(pair - state.pair), initial=0.0)
    bag = state.bag
    if problem.bag_members.shape[0] > 0:
        cavity = beliefs[problem.bag_members] - state.bag
        bag = keep * state.bag + (1.0 - keep) * _bag_messages(problem, numbers, static, cavity)
        delta = jnp.maximum(delta, jnp.max(jnp.abs(bag - state.bag)))
    return _State(pair, bag, state.it + 1, state.deltas.at[state.it].set(delta), delta)


def _advance_impl(
    problem: BPProblem, numbers: _Numbers, state: _State, steps: int, static: _Static
) -> _State:
    """Run `steps` iterations (fewer if early_stop and the largest change falls below tol)."""
    if not static.early_stop:
        state, _ = jax.lax.scan(lambda s, _: (_step(problem, numbers, static, s), None), state, length=steps)
        return state
    stop = state.it + steps
    return jax.lax.while_loop(
        lambda s: (s.it < stop) & (s.last_delta >= numbers.tol),
        lambda s: _step(problem, numbers, static, s),
        state,
    )


_advance = jax.jit(_advance_impl, static_argnums=(3, 4))


@jax.jit
def _marginals(beliefs: jax.Array, temperature: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(beliefs / temperature)


def _result(problem: BPProblem, numbers: _Numbers, state: _State, static: _Static) -> BPResult:
    beliefs = _beliefs(problem, state.pair, state.bag)
    if static.max_product:
        marginals = jnp.where(beliefs > 0, 1.0, jnp.where(beliefs < 0, 0.0, 0.5))
    else:
        marginals = _marginals(beliefs, numbers.temperature)
    return BPResult(marginals, beliefs, state.deltas, state.it, state.last_delta < numbers.tol)


# ----------------------------------------------------------------------------------------------------
# Host side: checks with clear messages, then the device arrays.


def check_settings(settings: BPSettings) -> None:
    """Raise ValueError naming the first bad setting."""
    s = settings
    if s.bag_factor not in BAG_FACTORS:
        raise ValueError(f"bag_factor={s.bag_factor!r}; expected one of {BAG_FACTORS}.")
    for name in ("lambda_s", "lambda_b"):
        value = getattr(s, name)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name}={value}; expected a finite number >= 0.")
    if not (isinstance(s.max_iters, int | np.integer) and s.max_iters >= 1):
        raise ValueError(f"max_iters={s.max_iters!r}; expected an integer >= 1.")
    if not 0.0 <= s.damping < 1.0:
        raise ValueError(f"damping={s.damping}; expected 0 <= damping < 1 (0.5 is the paper's).")
    if not (np.isfinite(s.tol) and s.tol > 0):
        raise ValueError(f"tol={s.tol}; expected a finite number > 0 (set early_stop=False to always run).")
    if not (np.isfinite(s.temperature) and s.temperature >= 0):
        raise ValueError(f"temperature={s.temperature}; expected >= 0 (1 sum-product, 0 max-product).")
    if s.hard_counts and s.bag_factor == "clique":
        raise ValueError(
            "hard_counts=True with bag_factor='clique': the clique expands the soft penalty only; "
            "use bag_factor='count' for hard counts."
        )
    if s.temperature == 0.0 and s.bag_factor == "gaussian":
        raise ValueError(
            "temperature=0 (max-product) with bag_factor='gaussian': the Gaussian approximation has no "
            "max-product form; use bag_factor='count' or a temperature > 0."
        )


def build_problem(
    n_nodes: int,
    senders,
    receivers,
    weights,
    bag_members=None,
    bag_mask=None,
    bag_counts=None,
    settings: BPSettings | None = None,
    unary=None,
) -> BPProblem:
    """Check the inputs (arguments as in `run_bp`) and lay out the factor graph on the device.
    lambda_s, and lambda_b in clique mode, are baked into the problem."""
    settings = BPSettings() if settings is None else settings
    check_settings(settings)
    if not (isinstance(n_nodes, int | np.integer) and n_nodes >= 1):
        raise ValueError(f"n_nodes={n_nodes!r}; expected an integer >= 1.")
    senders, receivers, weights = _check_edges(n_nodes, senders, receivers, weights)
    members, mask, counts = _check_bags(n_nodes, bag_members, bag_mask, bag_counts, settings.hard_counts)
    field = np.zeros(n_nodes, np.float64)
    if unary is not None:
        unary = np.asarray(unary, np.float64)
        if unary.shape != (n_nodes,) or not np.all(np.isfinite(unary)):
            raise ValueError(f"unary has shape {unary.shape}; expected finite float32[{n_nodes}] log-odds.")
        field += unary
    # -lambda_s w (y_i - y_j)^2 = -lambda_s w y_i - lambda_s w y_j + 2 lambda_s w y_i y_j
    field -= settings.lambda_s * (
        np.bincount(senders, weights, n_nodes) + np.bincount(receivers, weights, n_nodes)
    )
    couplings = 2.0 * settings.lambda_s * weights
    if settings.bag_factor == "clique":
        field, senders, receivers, couplings = _expand_cliques(
            field, senders, receivers, couplings, members, mask, counts, settings.lambda_b
        )
        members, mask, counts = members[:0], mask[:0], counts[:0]
    elif settings.bag_factor == "count" and members.shape[1] > 0:
        width = max(2, 1 << (members.shape[1] - 1).bit_length())
        members = np.pad(members, ((0, 0), (0, width - members.shape[1])))
        mask = np.pad(mask, ((0, 0), (0, width - mask.shape[1])))
    return BPProblem(
        field=jnp.asarray(field, jnp.float32),
        senders=jnp.asarray(np.stack([senders, receivers]), jnp.int32),
        receivers=jnp.asarray(np.stack([receivers, senders]), jnp.int32),
        couplings=jnp.asarray(np.stack([couplings, couplings]), jnp.float32),
        bag_members=jnp.asarray(members, jnp.int32),
        bag_mask=jnp.asarray(mask, bool),
        bag_counts=jnp.asarray(counts, jnp.float32),
    )


def _check_edges(n_nodes, senders, receivers, weights):
    senders, receivers = np.asarray(senders), np.asarray(receivers)
    weights = np.asarray(weights, np.float64)
    if not (senders.ndim == 1 and senders.shape == receivers.shape == weights.shape):
        raise ValueError(
            f"senders {senders.shape}, receivers {receivers.shape} and weights {weights.shape} must be "
            "1-D arrays of the same length n_edges."
        )
    for name, idx in (("senders", senders), ("receivers", receivers)):
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(f"{name} has dtype {idx.dtype}; expected integer node indices.")
        bad = np.flatnonzero((idx < 0) | (idx >= n_nodes))
        if bad.size:
            raise ValueError(f"{name}[{bad[0]}]={idx[bad[0]]} is outside [0, n_nodes={n_nodes}).")
    bad = np.flatnonzero(senders >= receivers)
    if bad.size:
        e = bad[0]
        raise ValueError(
            f"edge {e} has senders[{e}]={senders[e]} >= receivers[{e}]={receivers[e]}; list every undirected "
            "edge once with senders < receivers and no self loops (BP makes both directions)."
        )
    if not np.all(np.isfinite(weights)):
        raise ValueError(f"weights[{np.flatnonzero(~np.isfinite(weights))[0]}] is not finite.")
    return senders.astype(np.int64), receivers.astype(np.int64), weights


def _check_bags(n_nodes, members, mask, counts, hard):
    if members is None and mask is None and counts is None:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), bool), np.zeros(0, np.float64)
    if members is None or mask is None or counts is None:
        raise ValueError("pass all of bag_members, bag_mask and bag_counts, or none of them.")
    members, mask, counts = np.asarray(members), np.asarray(mask), np.asarray(counts, np.float64)
    if members.ndim != 2 or mask.shape != members.shape or counts.shape != members.shape[:1]:
        raise ValueError(
            f"bag_members {members.shape}, bag_mask {mask.shape}, bag_counts {counts.shape}; expected "
            "int32[n_bags, max_size], bool[n_bags, max_size], float32[n_bags]."
        )
    if members.size and not np.issubdtype(members.dtype, np.integer):
        raise ValueError(f"bag_members has dtype {members.dtype}; expected integer node indices.")
    mask = mask.astype(bool)
    real = members[mask]
    if real.size and (real.min() < 0 or real.max() >= n_nodes):
        bad = real[(real < 0) | (real >= n_nodes)][0]
        raise ValueError(f"bag_members holds node {bad}, outside [0, n_nodes={n_nodes}).")
    sizes = mask.sum(axis=1)
    if np.any(sizes == 0):
        raise ValueError(f"bag {np.flatnonzero(sizes == 0)[0]} has no members; drop empty bags.")
    repeated = np.flatnonzero(np.bincount(real, minlength=n_nodes) > 1)
    if repeated.size:
        raise ValueError(f"node {repeated[0]} is in more than one bag slot; bags must be disjoint.")
    bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0) | (counts > sizes))
    if bad.size:
        b = bad[0]
        raise ValueError(f"bag_counts[{b}]={counts[b]} is outside [0, size={sizes[b]}] of bag {b}.")
    if hard and np.any(counts != np.round(counts)):
        b = np.flatnonzero(counts != np.round(counts))[0]
        raise ValueError(
            f"hard_counts=True needs integer counts, but bag_counts[{b}]={counts[b]}; round the counts or "
            "use soft counts (hard_counts=False)."
        )
    return members.astype(np.int64), mask, counts


def _expand_cliques(field, senders, receivers, couplings, members, mask, counts, lambda_b):
    """The soft bag penalty as pairwise factors: field_i += -lambda_b (1 - 2 k_b) for every member and
    J_ij = -2 lambda_b for every pair of members."""
    field = field + np.bincount(
        members[mask], np.repeat(-lambda_b * (1.0 - 2.0 * counts), mask.sum(axis=1)), len(field)
    )
    first, second = np.triu_indices(members.shape[1], k=1)
    pair_mask = mask[:, first] & mask[:, second]
    a, b = members[:, first][pair_mask], members[:, second][pair_mask]
    return (
        field,
        np.concatenate([senders, np.minimum(a, b)]),
        np.concatenate([receivers, np.maximum(a, b)]),
        np.concatenate([couplings, np.full(a.shape, -2.0 * lambda_b)]),
    )
