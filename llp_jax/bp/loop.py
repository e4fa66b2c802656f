"""Loopy BP on the LLP Gibbs distribution: one jit-compiled loop over a problem from `build_problem`.

    log p(y) = -lambda_s sum_{(i,j) in E} w_ij (y_i - y_j)^2 + sum_b log f_b(sum_{i in b} y_i)
               + sum_i unary_i y_i + const

All messages update in parallel every iteration (DESIGN.md section 3), with damping
m <- damping m_old + (1 - damping) m_new. The iterations run in one `jax.lax.while_loop` (stop when the
largest message change falls below `tol` or the mean marginal change below `marginal_tol`) or, with
`early_stop=False`, one `jax.lax.scan` of exactly `max_iters` iterations (differentiable).
`progress=True` runs the same compiled loop in 20 chunks of iterations on the host and shows a tqdm bar
per chunk; without it there is no per-iteration output.

Bag messages are clipped to +-cap, cap = max_i reach_i + 1e3 max(1, T) (BPProblem.reach: how far the rest
of a belief can lie from 0). A message at the cap decides its member whatever the rest of its belief says,
so clipping a larger one changes no marginal and no other message beyond float32 rounding, and a member
that a hard count forces gets a marginal of exactly 0 or 1. A fixed cap of 1e3 did not: at lambda_s = 1e4
the similarity field of a kNN graph reaches ~1e4 times the weighted degree, and the counts could pull no
member positive (synthetic data, bags of 128 and 4,096: 0 predicted positives of 4,194). A count message
beyond float32's range in its bag's tilted frame (factors.py) comes out infinite, so at the cap too.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from llp_jax.bp.factors import pairwise_messages
from llp_jax.bp.problem import BPProblem, build_problem
from llp_jax.bp.registry import BAG_FACTORS
from llp_jax.bp.settings import BagFactorName, BPSettings, check_settings
from llp_jax.compile_clock import compile_stage
from llp_jax.sharding import shard_problem

if TYPE_CHECKING:  # annotations only: importing llp_jax.data would load every dataset reader
    from llp_jax.data.bags import Bags
    from llp_jax.graph import SimilarityGraph

_PROGRESS_CHUNKS = 20
_CHUNK_FLOATS = 1 << 28  # count mode: bags per chunk such that a chunk's largest level is ~1 GiB
_FORCING_MARGIN = 1e3  # cap - max reach, times max(1, T): |belief| / T >= 1e3 > 89, where sigmoid is 0 or 1
COUNT_GAP_WARNING = 0.1
"""`run_bp` warns (CountGapWarning) when |count_gap| exceeds it."""


class CountGapWarning(UserWarning):
    """BP's marginals miss the bags' total count by more than COUNT_GAP_WARNING, with the likely causes.
    warnings.simplefilter("error", CountGapWarning) turns it into an error."""


class BPResult(NamedTuple):
    """marginals: float32[n] P(y_i = 1) (at T = 0: 1, 0 or 1/2 by the sign of log_odds).
    log_odds: float32[n] the beliefs B_i; log-odds of the marginal at T = 1, sigmoid(B_i / T) otherwise.
    deltas: float32[max_iters] largest |message change| of each iteration; NaN for iterations not run.
    marginal_deltas: float32[max_iters] mean over the nodes of |change of sigmoid(B_i / T)| in each
    iteration (in max-product of sigmoid(B_i)); NaN for iterations not run.
    n_iters: int32[] iterations run; converged: bool[] the last delta is below tol, or the last marginal
    delta below marginal_tol with the last delta below _SETTLED_MESSAGES.
    count_gap: float32[] (sum of the marginals of the bags' members - sum_b k_b) / max(sum_b k_b, 1): 0 when
    the pseudo-labels hold the bags' total count, -1 when they mark every member negative (0 without bags).
    """

    marginals: jax.Array
    log_odds: jax.Array
    deltas: jax.Array
    marginal_deltas: jax.Array
    n_iters: jax.Array
    converged: jax.Array
    count_gap: jax.Array


class _Static(NamedTuple):
    """The settings that change the compiled program."""

    bag_factor: BagFactorName
    hard_counts: bool
    max_product: bool
    early_stop: bool
    max_iters: int
    bags_per_chunk: int | None


class _Numbers(NamedTuple):
    """The settings that are traced numbers (float32 scalars), and the bag messages' cap that the problem
    and the temperature set: changing them does not recompile."""

    lambda_b: jax.Array
    damping: jax.Array
    tol: jax.Array
    marginal_tol: jax.Array
    temperature: jax.Array
    message_cap: jax.Array


class _State(NamedTuple):
    """pair: float32[2, n_slots]; bag: float32[n_bags, width]; beliefs: float32[n] those of pair and bag;
    it: int32[]; deltas, marginal_deltas: float32[max_iters]; last_delta, last_marginal_delta: float32[]
    (inf before the first iteration)."""

    pair: jax.Array
    bag: jax.Array
    beliefs: jax.Array
    it: jax.Array
    deltas: jax.Array
    marginal_deltas: jax.Array
    last_delta: jax.Array
    last_marginal_delta: jax.Array


def run_bp(
    graph: SimilarityGraph,
    bags: Bags | None = None,
    settings: BPSettings | None = None,
    unary=None,
    progress: bool = False,
    edge_capacity: int = 0,
) -> BPResult:
    """Marginals of the LLP Gibbs distribution by loopy BP.

    graph: the similarity graph (`llp_jax.graph.SimilarityGraph`: n_nodes variables y_i, each undirected
    edge once with senders < receivers, weights w_ij; distances are not used). bags: `llp_jax.data.Bags`
    (members, mask and counts k_b; the sizes come from the mask); bags must be disjoint; None: no bags.
    settings: None for BPSettings(). unary: float32[n_nodes] extra log-odds added to every node
    (None: 0). progress: tqdm bar over chunks of iterations. edge_capacity: the most similarity edges
    of the graphs that should share one compiled loop (`build_problem`; e.g. n k for kNN graphs).
    Warns (CountGapWarning) when the marginals miss the bags' total count by more than
    COUNT_GAP_WARNING (BPResult.count_gap), naming the likely causes.
    """
    settings = BPSettings() if settings is None else settings
    with compile_stage("bp"):  # a block, not a decorator, so that the warning's stacklevel holds
        problem = build_problem(graph, bags, settings, unary, edge_capacity)
        result = solve(problem, settings, progress)
    if abs(float(result.count_gap)) > COUNT_GAP_WARNING:
        warnings.warn(_count_gap_causes(problem, check_settings(settings), result), CountGapWarning, 2)
    return result


def _count_gap_causes(problem: BPProblem, settings: BPSettings, result: BPResult) -> str:
    """The CountGapWarning's text: the totals, and the causes that are cheap to check: no convergence, and
    soft bag messages too weak to move their members against the rest of their beliefs."""
    gap, counts = float(result.count_gap), np.asarray(problem.bag_counts, np.float64)
    total = counts.sum()
    text = f"BP's marginals over the bags' members sum to {total + gap * max(total, 1.0):.6g}; "
    text += f"the bags' counts to {total:.6g}."
    if not bool(result.converged):
        n_iters = int(result.n_iters)
        text += (
            f" BP did not converge: the largest message change was {float(result.deltas[n_iters - 1]):.3g} "
            f"and the mean marginal change {float(result.marginal_deltas[n_iters - 1]):.3g} after "
            f"{n_iters} iterations (more iterations, more damping or a smaller lambda_s may help)."
        )
    if settings.hard_counts or BAG_FACTORS[settings.bag_factor].messages is None:
        return text
    # A soft message is a weighted mean of log f(s + 1) - log f(s) over s = 0..|b| - 1: towards y = 1 it
    # is at most lambda_b (2 k_b - 1), towards y = 0 at most lambda_b (2 (|b| - k_b) - 1).
    mask = np.asarray(problem.bag_mask)
    room = counts if gap < 0 else mask.sum(axis=1) - counts
    pull = settings.lambda_b * (2.0 * room - 1.0)
    pulled = mask & (pull[:, None] > 0.0)  # members of the bags that would move them the missing way
    reach = np.asarray(problem.reach)[np.asarray(problem.bag_members)]
    outweighed = pulled & (reach > pull[:, None])
    if outweighed.any():
        side, bound = ("1", "2 k_b - 1") if gap < 0 else ("0", "2 (|b| - k_b) - 1")
        text += (
            f" At {outweighed.sum() / pulled.sum():.0%} of the members of the bags that could move them "
            f"towards y = {side}, the rest of the belief (up to lambda_s times the weighted degree plus "
            f"|unary|; median {np.median(reach[pulled]):.3g}) outweighs the strongest such pull of their "
            f"bag, lambda_b ({bound}) (median {np.median(pull[pulled.any(axis=1)]):.3g}): lower lambda_s, "
            "raise lambda_b or use hard_counts."
        )
    return text


def solve(problem: BPProblem, settings: BPSettings | None = None, progress: bool = False) -> BPResult:
    """Run BP on a problem from `build_problem` (built with the same settings; None: BPSettings())."""
    settings = check_settings(BPSettings() if settings is None else settings)
    problem = shard_problem(problem)  # several devices: edges and whole bags split over them
    static, numbers = _split_settings(settings, problem)
    state = _initial_state(problem, settings.max_iters)
    state = iterate(problem, numbers, state, static, _step, progress)
    return _result(problem, numbers, state, static)


def iterate(problem, numbers: _Numbers, state, static, step, progress: bool):
    """Run `step(problem, numbers, static, state) -> state` up to static.max_iters times in one compiled
    loop (until `_stopped` when static.early_stop), or with `progress` in _PROGRESS_CHUNKS chunks under a
    tqdm bar. Shared by the binary engine and the K-state one (llp_jax/bp/potts.py): `problem` is any
    pytree of arrays, `state` any pytree with the fields of `_State` that `_stopped` reads (it,
    last_delta, last_marginal_delta), `static` hashable with early_stop and max_iters."""
    if not progress:
        return _advance(problem, numbers, state, static.max_iters, static, step)
    chunk = math.ceil(static.max_iters / _PROGRESS_CHUNKS)
    with tqdm(total=static.max_iters, desc="BP iterations", unit="it") as bar:
        while int(state.it) < static.max_iters:
            steps = min(chunk, static.max_iters - int(state.it))
            before = int(state.it)
            state = _advance(problem, numbers, state, steps, static, step)
            bar.update(int(state.it) - before)
            bar.set_postfix(
                delta=f"{float(state.last_delta):.2e}", dp=f"{float(state.last_marginal_delta):.2e}"
            )
            if static.early_stop and bool(_stopped(state, numbers)):
                break
    return state


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
    floats = (settings.lambda_b, settings.damping, settings.tol, settings.marginal_tol, settings.temperature)
    numbers = _Numbers(
        *map(jnp.float32, floats),
        message_cap=jnp.max(problem.reach) + _FORCING_MARGIN * max(1.0, settings.temperature),
    )
    return static, numbers


def _initial_state(problem: BPProblem, max_iters: int) -> _State:
    """No messages yet: every belief is its node's field."""
    return _State(
        pair=jnp.zeros(problem.senders.shape, jnp.float32),
        bag=jnp.zeros(problem.bag_members.shape, jnp.float32),
        beliefs=problem.field,
        it=jnp.int32(0),
        deltas=jnp.full((max_iters,), jnp.nan, jnp.float32),
        marginal_deltas=jnp.full((max_iters,), jnp.nan, jnp.float32),
        last_delta=jnp.float32(jnp.inf),
        last_marginal_delta=jnp.float32(jnp.inf),
    )


def _beliefs(problem: BPProblem, pair: jax.Array, bag: jax.Array) -> jax.Array:
    """B_i = field_i + sum of incoming pairwise messages + the message of i's bag. float32[n]."""
    n = problem.field.shape[0]
    beliefs = problem.field + jax.ops.segment_sum(pair.ravel(), problem.receivers.ravel(), n)
    bag_in = jnp.where(problem.bag_mask, bag, 0.0).ravel()
    return beliefs + jax.ops.segment_sum(bag_in, problem.bag_members.ravel(), n)


def _tempered_marginals(beliefs: jax.Array, numbers: _Numbers, static: _Static) -> jax.Array:
    """sigmoid(B_i / T): float32[n] from beliefs float32[n], the marginals at T > 0; in max-product
    sigmoid(B_i), whose change tells when the beliefs settle (its marginals, 0, 1 or 1/2, only jump)."""
    return jax.nn.sigmoid(beliefs if static.max_product else beliefs / numbers.temperature)


# The marginals' rule needs the messages settled too: saturated marginals (|B| beyond ~17) do not move
# while their messages still change by thousands. At lambda_s = 1e4 and bags of 4,096 the first iteration
# changed messages by 8.5e4 and no marginal (every one at 0), and BP "converged" at count_gap -1 (issue 12).
# A change below one nat moves no marginal by more than 0.25 at the next iteration.
_SETTLED_MESSAGES = 1.0


def _stopped(state: _State, numbers: _Numbers) -> jax.Array:
    """bool[]: the last iteration changed no message by tol or more, or the marginals by less than
    marginal_tol on average while no message changed by _SETTLED_MESSAGES (marginal_tol = 0: messages
    only)."""
    settled = (state.last_marginal_delta < numbers.marginal_tol) & (state.last_delta < _SETTLED_MESSAGES)
    return (state.last_delta < numbers.tol) | settled


def _step(problem: BPProblem, numbers: _Numbers, static: _Static, state: _State) -> _State:
    """One parallel, damped update of every message, and the beliefs they give."""
    beliefs = state.beliefs
    keep = numbers.damping
    pair = pairwise_messages(
        beliefs, state.pair, problem.senders, problem.couplings, numbers.temperature, static.max_product
    )
    pair = keep * state.pair + (1.0 - keep) * pair
    delta = jnp.max(jnp.abs(pair - state.pair), initial=0.0)
    bag = state.bag
    messages = BAG_FACTORS[static.bag_factor].messages
    if messages is not None and problem.bag_members.shape[0] > 0:
        cavity = beliefs[problem.bag_members] - state.bag
        new = messages(
            cavity, problem.bag_mask, problem.bag_counts, numbers.lambda_b, numbers.temperature,
            static.hard_counts, static.max_product, static.bags_per_chunk,
        )  # fmt: skip
        new = jnp.clip(new, -numbers.message_cap, numbers.message_cap)
        bag = keep * state.bag + (1.0 - keep) * new
        delta = jnp.maximum(delta, jnp.max(jnp.abs(bag - state.bag)))
    new_beliefs = _beliefs(problem, pair, bag)
    change = _tempered_marginals(new_beliefs, numbers, static) - _tempered_marginals(beliefs, numbers, static)
    marginal_delta = jnp.mean(jnp.abs(change))
    return _next_state(state, pair, bag, new_beliefs, delta, marginal_delta)


def _next_state(state: _State, pair, bag, beliefs, delta: jax.Array, marginal_delta: jax.Array) -> _State:
    """The state after one iteration of either engine: its messages and beliefs, the iteration counted,
    its largest message change and mean marginal change recorded."""
    return _State(
        pair,
        bag,
        beliefs,
        state.it + 1,
        state.deltas.at[state.it].set(delta),
        state.marginal_deltas.at[state.it].set(marginal_delta),
        delta,
        marginal_delta,
    )


def _advance_impl(problem, numbers: _Numbers, state, steps: int, static, step):
    """Run `steps` iterations of `step` (fewer if static.early_stop and `_stopped`)."""
    if not static.early_stop:
        state, _ = jax.lax.scan(lambda s, _: (step(problem, numbers, static, s), None), state, length=steps)
        return state
    stop = state.it + steps
    return jax.lax.while_loop(
        lambda s: (s.it < stop) & ~_stopped(s, numbers),
        lambda s: step(problem, numbers, static, s),
        state,
    )


_advance = jax.jit(_advance_impl, static_argnums=(3, 4, 5))


def _result_impl(problem: BPProblem, numbers: _Numbers, state: _State, static: _Static) -> BPResult:
    beliefs = state.beliefs
    if static.max_product:
        # the belief's dtype: Python constants alone come out float64 under jax_enable_x64
        marginals = jnp.where(beliefs > 0, 1.0, jnp.where(beliefs < 0, 0.0, 0.5)).astype(beliefs.dtype)
    else:
        marginals = _tempered_marginals(beliefs, numbers, static)
    counts = jnp.sum(problem.bag_counts)
    in_bags = jnp.sum(jnp.where(problem.bag_mask, marginals[problem.bag_members], 0.0))
    count_gap = (in_bags - counts) / jnp.maximum(counts, 1.0)
    return BPResult(
        marginals,
        beliefs,
        state.deltas,
        state.marginal_deltas,
        state.it,
        _stopped(state, numbers),
        count_gap,
    )


# One program rather than a dozen eager operations, each compiled anew for every new problem shape.
_result = jax.jit(_result_impl, static_argnums=3)
