"""Factor-to-variable messages of K-state loopy BP (DESIGN.md section 8), pure JAX over whole arrays.

Units and normalisation. A message or belief is a K-vector of log-potentials in energy units (at
temperature T the belief B_i gives the marginal softmax(B_i / T)), held relative to class 0: entry 0 is
0 and entry a is log phi(a) - log phi(0). For K = 2 entry 1 is the binary engine's log-odds
(llp_jax/bp/factors.py), so the binary engine is the K = 2 case.

Pairwise (Potts) factor exp(-J [y_i != y_j]), J = lambda_s w_ij >= 0:
    m_{i->j}(a) = T log( e^{c(a)/T} (1 - e^{-J/T}) + e^{-J/T} sum_b e^{c(b)/T} ),
O(K) a message instead of the O(K^2) of a general pairwise table.

Bag factor. The count vector k_b factorises into one binary count factor per class c = 1..K-1 on the
indicators z_i^c = [y_i = c] (class 0's count follows from the bag size): `class_indicator_cavities`
gives each factor's cavity log-odds, and llp_jax/bp/factors.py's count (or Gaussian) messages do the
rest; the message of factor c to member i is its log-odds on z_i^c, that is entry c of the K-vector.
`joint_count_messages` is the exact factor of the whole vector for small bags: a dynamic program over the
count vectors u <= k_b (prod_c (k_{b,c} + 1) states), the oracle against which the per-class factors'
error is measured.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def potts_pairwise_messages(
    beliefs: jax.Array,
    messages: jax.Array,
    senders: jax.Array,
    couplings: jax.Array,
    temperature: jax.Array,
    max_product: bool,
) -> jax.Array:
    """New messages of the Potts factors exp(-J [y_i != y_j]), both directions of every edge at once.

    beliefs: float32[n, K]; messages: float32[2, n_edges, K] current messages (row 0 along the edges,
    row 1 against them, as the binary engine's); senders: int32[2, n_edges]; couplings: float32[2, n_edges]
    J >= 0 (0 at padding edges, whose messages are then exactly 0). Returns float32[2, n_edges, K]
    relative to class 0.

    Stability: with x = c / T and M = max_b x(b), m(a) = T logaddexp(x(a) - M + log(1 - e^{-J/T}),
    log sum_b e^{x(b) - M} - J/T) + T M, whose second term is finite whatever the cavity, so no class's
    message underflows to -inf (e^{x(a)} of a class far below the others would). Max-product (T -> 0):
    m(a) = max(c(a), max_b c(b) - J).
    """
    cavity = beliefs[senders] - messages[::-1]
    coupling = couplings[..., None]
    if max_product:
        new = jnp.maximum(cavity, jnp.max(cavity, axis=-1, keepdims=True) - coupling)
    else:
        x = cavity / temperature
        shifted = x - jnp.max(x, axis=-1, keepdims=True)
        log_rest = jnp.log(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True)) - coupling / temperature
        keep = jnp.log(-jnp.expm1(-coupling / temperature))  # -inf at J = 0: the message is then constant
        new = temperature * jnp.logaddexp(shifted + keep, log_rest)
    return new - new[..., :1]


def class_indicator_cavities(
    beliefs: jax.Array, bag_messages: jax.Array, temperature: jax.Array, max_product: bool
) -> jax.Array:
    """The cavity log-odds of z_i^c = [y_i = c], c = 1..K-1, that the bag's factor c receives.

    Factor c's cavity is the member's belief without factor c's own message, which is entry c of the
    bag's K-vector message: l_c = B(c) - mu(c) - T log sum_{a != c} e^{B(a) / T} (energy units; in
    max-product B(c) - mu(c) - max_{a != c} B(a)).
    beliefs: float32[..., K] the members' beliefs; bag_messages: float32[..., K] the bag's message to each.
    Returns float32[..., K - 1].

    The sum over a != c without cancellation: for the class of the largest belief it is taken afresh
    relative to the second largest; for every other class it is the whole sum minus its own term, which
    leaves at least the largest's term e^0 = 1, so the subtraction loses nothing beyond rounding.
    """
    k = beliefs.shape[-1]
    x = beliefs if max_product else beliefs / temperature
    top = jnp.argmax(x, axis=-1)[..., None]
    is_top = jnp.arange(k) == top
    first = jnp.max(x, axis=-1, keepdims=True)
    second = jnp.max(jnp.where(is_top, -jnp.inf, x), axis=-1, keepdims=True)
    if max_product:
        rest = jnp.where(is_top, second, first)
    else:
        second = jnp.where(jnp.isfinite(second), second, first)  # K = 1 never reaches here; guards K = 2 ties
        without_top = jnp.sum(jnp.where(is_top, 0.0, jnp.exp(x - second)), axis=-1, keepdims=True)
        whole = jnp.sum(jnp.exp(x - first), axis=-1, keepdims=True)
        rest = jnp.where(
            is_top,
            second + jnp.log(without_top),
            first + jnp.log(jnp.maximum(whole - jnp.exp(x - first), 0.0)),
        )
        rest = temperature * rest
    return (beliefs - rest - bag_messages)[..., 1:]


class JointLayout(NamedTuple):
    """The count vectors u <= k_b of each bag in mixed radix (radix k_{b,c} + 1 for class c), padded to
    the largest bag's number of states S. digits: int32[n_bags, K, S] u_c of state s; strides:
    int32[n_bags, K] the index step of one more member of class c; target: int32[n_bags] the index of k_b;
    states: bool[n_bags, S] s is a count vector of the bag (s < prod_c (k_{b,c} + 1)); counts:
    int32[n_bags, K] k_b."""

    digits: jax.Array
    strides: jax.Array
    target: jax.Array
    states: jax.Array
    counts: jax.Array


def joint_layout(counts: np.ndarray) -> JointLayout:
    """The layout of `joint_count_messages` for integer count vectors counts: int[n_bags, K] (host)."""
    counts = np.asarray(counts, np.int64)
    radices = counts + 1
    sizes = np.prod(radices, axis=1)
    strides = np.concatenate([np.ones((len(counts), 1), np.int64), np.cumprod(radices, axis=1)[:, :-1]], 1)
    n_states = int(sizes.max(initial=1))
    index = np.arange(n_states)
    digits = (index[None, None, :] // strides[:, :, None]) % radices[:, :, None]
    return JointLayout(
        digits=jnp.asarray(digits, jnp.int32),
        strides=jnp.asarray(strides, jnp.int32),
        target=jnp.asarray((counts * strides).sum(axis=1), jnp.int32),
        states=jnp.asarray(index[None, :] < sizes[:, None]),
        counts=jnp.asarray(counts, jnp.int32),
    )


def joint_count_messages(
    cavity: jax.Array, mask: jax.Array, layout: JointLayout, temperature: jax.Array
) -> jax.Array:
    """Exact sum-product messages of the hard count-vector factor [sum_{i in b} e_{y_i} = k_b].

    mu_{b->i}(a) = T log sum over labelings of the other members with count vector k_b - e_a of the
    product of their cavity probabilities, for all i at once: a forward and a backward pass over the
    members, each a distribution over the count vectors u <= k_b (`JointLayout`), then for member i and
    class a the sum over u of prefix_i(u) suffix_{i+1}(k_b - e_a - u). Each pass step is rescaled by
    its max (a factor common to every class of a member's message, so it cancels). O(width K S) per bag.

    cavity: float32[n_bags, width, K] energy units (any normalisation); mask: bool[n_bags, width] real
    members (padding members are skipped). Returns float32[n_bags, width, K] in energy units relative to
    the member's largest entry: 0 at the most likely class, -inf where the class cannot complete the
    count (k_{b,a} = 0, or the others' cavities make it impossible); 0 at padding slots.
    """
    n_bags, width, k = cavity.shape
    n_states = layout.states.shape[1]
    prob = jax.nn.softmax(cavity / temperature, axis=-1)
    # source[b, a, s]: the state one member of class a below s (clipped where there is none, then masked)
    source = jnp.maximum(jnp.arange(n_states) - layout.strides[:, :, None], 0)
    has_source = (layout.digits >= 1) & layout.states[:, None, :]

    def add_member(dist, member):  # dist: float32[n_bags, S] -> the distribution with one more member
        p, real = member
        moved = jnp.take_along_axis(dist[:, None, :], source, axis=2) * has_source
        new = jnp.einsum("ba,bas->bs", p, moved)
        new = jnp.where(real[:, None], new, dist)
        return new / jnp.maximum(jnp.max(new, axis=1, keepdims=True), np.finfo(np.float32).tiny), dist

    start = jnp.zeros((n_bags, n_states), cavity.dtype).at[:, 0].set(1.0)
    members = (jnp.swapaxes(prob, 0, 1), jnp.swapaxes(mask, 0, 1))
    _, prefix = jax.lax.scan(add_member, start, members)  # prefix[i]: members before i
    _, suffix = jax.lax.scan(add_member, start, members, reverse=True)  # suffix[i]: members after i
    # member i, class a: sum_u prefix_i(u) suffix_i(target - stride_a - u), u_a <= k_a - 1
    rest = layout.target[:, None, None] - layout.strides[:, :, None] - jnp.arange(n_states)
    valid = (layout.digits < layout.counts[:, :, None]) & layout.states[:, None, :] & (rest >= 0)
    partner = jnp.take_along_axis(
        suffix[:, :, None, :], jnp.broadcast_to(jnp.maximum(rest, 0), (width, *rest.shape)), axis=3
    )
    total = jnp.einsum("ibs,ibas->iba", prefix, partner * valid)
    log_total = jnp.log(jnp.swapaxes(total, 0, 1))
    best = jnp.max(log_total, axis=-1, keepdims=True)
    message = temperature * (log_total - jnp.where(jnp.isfinite(best), best, 0.0))
    return jnp.where(mask[..., None], message, 0.0)
