"""The BP problem: host-side checks of the graph, bags and unary with clear messages, then the factor
graph laid out on the device. The bag factor's own layout (count: rows padded to a power of two; clique:
bags expanded into pairwise factors) is its `prepare` in the registry.

The edge arrays are padded to a size bucket (`edge_bucket`) so that graphs of nearby sizes share one
compiled loop: LLP-BP's rounds build kNN graphs of different edge counts (bank marketing at bag 128: 88,061,
88,019, 87,757 and 88,033 symmetrised edges in four rounds), and each new count compiled the loop again
(8.8 to 11.6 s on the 2-core CPU, against 100 iterations in about 1 s). A padding edge joins node 0 to
itself with coupling 0: both its messages are exactly 0 (T softplus(c / T) - T softplus(c / T)), so it
changes no belief, delta or reach."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from llp_jax.bp.registry import BAG_FACTORS
from llp_jax.bp.settings import BPSettings, check_settings

if TYPE_CHECKING:  # annotations only: importing llp_jax.data would load every dataset reader
    from llp_jax.data.bags import Bags
    from llp_jax.graph import SimilarityGraph


class BPProblem(NamedTuple):
    """The factor graph on the device. field: float32[n] unary log-odds (similarity unaries, clique
    unaries and the user's unary); senders, receivers: int32[2, n_slots] directed edges, row 0 the given
    edges, row 1 the same reversed, then padding edges 0 -> 0 up to `edge_bucket` slots;
    couplings: float32[2, n_slots] J of each (0 at padding);
    bag_members: int32[n_bags, width]; bag_mask: bool[n_bags, width]; bag_counts: float32[n_bags];
    reach: float32[n] how far the rest of each node's belief (its field and incoming pairwise messages,
    each between 0 and its J whatever the sender) can lie from 0, the scale a bag message must pass to
    decide the node. While `build_problem` prepares it, the same fields hold host numpy arrays (float64
    numbers) and reach is None (it comes from the prepared field and couplings)."""

    field: jax.Array
    senders: jax.Array
    receivers: jax.Array
    couplings: jax.Array
    bag_members: jax.Array
    bag_mask: jax.Array
    bag_counts: jax.Array
    reach: jax.Array | None


def edge_bucket(n_edges: int) -> int:
    """The padded edge count for n_edges >= 0: the smallest multiple of 2^(b - 3) at or above n_edges, b the
    bit length of n_edges - 1 (at least 8): rungs 5/4, 6/5, 7/6 and 8/7 apart, so at most 25% padding."""
    step = 1 << max(0, (max(n_edges, 8) - 1).bit_length() - 3)
    return max(8, -(-n_edges // step) * step)


def build_problem(
    graph: SimilarityGraph, bags: Bags | None, settings: BPSettings, unary=None, edge_capacity: int = 0
) -> BPProblem:
    """Check the inputs (as in `run_bp`) and lay out the factor graph on the device.
    lambda_s, and lambda_b in clique mode, are baked into the problem. The edges are padded to the bucket
    of max(graph.n_edges, edge_capacity) similarity edges (plus a bag factor's own, as the clique's):
    graphs up to edge_capacity edges (e.g. n k for any kNN graph of n points) give problems of one shape,
    which one compiled loop serves."""
    settings = check_settings(settings)
    if settings.joint_counts:
        raise ValueError(
            "bp.joint_counts=true is for K-class count vectors (run_potts_bp); binary counts already get the "
            "exact factor from bag_factor='count'. Set joint_counts=false."
        )
    n_nodes, senders, receivers, weights = check_edges(graph)
    members, mask, counts = _check_bags(n_nodes, bags, settings.hard_counts)
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
    edges = np.stack([senders, receivers])
    problem = BPProblem(
        field, edges, edges[::-1], np.stack([couplings, couplings]), members, mask, counts, reach=None
    )
    problem = BAG_FACTORS[settings.bag_factor].prepare(problem, settings)
    slots = problem.senders.shape[1]
    pad = ((0, 0), (0, edge_bucket(slots + max(0, edge_capacity - len(senders))) - slots))
    problem = problem._replace(
        senders=np.pad(problem.senders, pad),
        receivers=np.pad(problem.receivers, pad),
        couplings=np.pad(problem.couplings, pad),
    )
    into = problem.receivers.ravel()
    lowest = problem.field + np.bincount(into, np.minimum(problem.couplings, 0.0).ravel(), n_nodes)
    highest = problem.field + np.bincount(into, np.maximum(problem.couplings, 0.0).ravel(), n_nodes)
    return BPProblem(
        field=jnp.asarray(problem.field, jnp.float32),
        senders=jnp.asarray(problem.senders, jnp.int32),
        receivers=jnp.asarray(problem.receivers, jnp.int32),
        couplings=jnp.asarray(problem.couplings, jnp.float32),
        bag_members=jnp.asarray(problem.bag_members, jnp.int32),
        bag_mask=jnp.asarray(problem.bag_mask, bool),
        bag_counts=jnp.asarray(problem.bag_counts, jnp.float32),
        reach=jnp.asarray(np.maximum(np.abs(lowest), np.abs(highest)), jnp.float32),
    )


def check_edges(graph: SimilarityGraph) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """n_nodes, and the edges as int64, int64 and float64 host arrays."""
    n_nodes = graph.n_nodes
    if not (isinstance(n_nodes, int | np.integer) and n_nodes >= 1):
        raise ValueError(f"graph.n_nodes={n_nodes!r}; expected an integer >= 1.")
    senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
    weights = np.asarray(graph.weights, np.float64)
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
    return n_nodes, senders.astype(np.int64), receivers.astype(np.int64), weights


def _check_bags(n_nodes: int, bags: Bags | None, hard: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """members, mask and counts as int64, bool and float64 host arrays (empty for bags=None). The bag
    sizes come from the mask."""
    if bags is None:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), bool), np.zeros(0, np.float64)
    members, mask = check_bag_members(n_nodes, bags)
    sizes = mask.sum(axis=1)
    counts = np.asarray(bags.counts, np.float64)
    if counts.shape != members.shape[:1]:
        raise ValueError(
            f"bags.members {members.shape}, bags.counts {counts.shape}; expected int32[n_bags, max_size] "
            "and float32[n_bags] (K-class count vectors go to llp_jax.bp.run_potts_bp)."
        )
    bad = np.flatnonzero(~np.isfinite(counts) | (counts < 0) | (counts > sizes))
    if bad.size:
        b = bad[0]
        raise ValueError(f"bags.counts[{b}]={counts[b]} is outside [0, size={sizes[b]}] of bag {b}.")
    if hard and np.any(counts != np.round(counts)):
        b = np.flatnonzero(counts != np.round(counts))[0]
        raise ValueError(
            f"hard_counts=True needs integer counts, but bags.counts[{b}]={counts[b]}; round the counts or "
            "use soft counts (hard_counts=False)."
        )
    return members, mask, counts


def check_bag_members(n_nodes: int, bags: Bags) -> tuple[np.ndarray, np.ndarray]:
    """members int64[n_bags, width] and mask bool[n_bags, width] of `bags` (which must also have counts),
    checked: node indices in range, no empty bag, no node in two slots. Raises ValueError naming the first
    fault."""
    for name in ("members", "mask", "counts"):
        if getattr(bags, name) is None:
            raise ValueError(f"bags.{name} is None; pass bags with members, mask and counts, or bags=None.")
    members, mask = np.asarray(bags.members), np.asarray(bags.mask)
    if members.ndim != 2 or mask.shape != members.shape:
        raise ValueError(
            f"bags.members {members.shape}, bags.mask {mask.shape}; expected int32[n_bags, max_size] and "
            "bool[n_bags, max_size]."
        )
    if members.size and not np.issubdtype(members.dtype, np.integer):
        raise ValueError(f"bags.members has dtype {members.dtype}; expected integer node indices.")
    mask = mask.astype(bool)
    real = members[mask]
    if real.size and (real.min() < 0 or real.max() >= n_nodes):
        bad = real[(real < 0) | (real >= n_nodes)][0]
        raise ValueError(f"bags.members holds node {bad}, outside [0, n_nodes={n_nodes}).")
    sizes = mask.sum(axis=1)
    if np.any(sizes == 0):
        raise ValueError(f"bag {np.flatnonzero(sizes == 0)[0]} has no members; drop empty bags.")
    repeated = np.flatnonzero(np.bincount(real, minlength=n_nodes) > 1)
    if repeated.size:
        raise ValueError(f"node {repeated[0]} is in more than one bag slot; bags must be disjoint.")
    return members.astype(np.int64), mask
