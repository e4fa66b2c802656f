"""Factor-to-variable messages of binary loopy BP in log-odds form (DESIGN.md section 3).

Pure JAX over whole arrays: one call computes the messages of every factor of one kind at once.

Units. Messages and beliefs are in energy units: at temperature T the belief B_i gives the marginal
sigmoid(B_i / T) of the tempered distribution p(y)^(1/T). At T = 1 they are log-odds; `max_product=True`
is the limit T -> 0 (max-product BP: beliefs are max-marginal log-ratios).

Temperature. A factor phi enters as phi^(1/T): the pairwise message becomes
T softplus((J + c)/T) - T softplus(c/T), and the bag message is T times the exact sum-product message of
the factor f_b^(1/T) to a member whose cavity log-odds are c/T (a hard count constraint is unchanged by
the power). Tree-structured graphs therefore give the exact marginals of p^(1/T) for every T > 0.

Forced members. The bag messages come unclipped: a member that a hard count forces (or whose message lies
beyond float32's reach) gets -inf or +inf (about -1e30 or +1e30 in max-product). The loop clips them to
the problem's cap (llp_jax/bp/loop.py), which outweighs everything else in a member's belief.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

FORCE_HANKEL = False
"""True: `_correlate` sums over the Hankel matrix (the accelerators' path) on every backend, so that tests
check that path on the CPU. Read when a function is traced: it reaches only functions traced afterwards."""

_NEG = -1e30  # log(0) of the max-plus semiring; finite so that differences of two of them are not NaN
FULL_WINDOWS = False
"""True: every tree node keeps its whole count support (the exact O(|b|^2) tree) instead of a window
around its tilted mean, for checking the windows. Read when a function is traced, like FORCE_HANKEL."""

_TILT_STEPS = 40  # at most, safeguarded Newton steps for the exponential tilt of a bag
_TILT_TOL = 1e-4  # |last step| of the tilt; it centres the windows, which have _WINDOW_MARGIN to spare
_WINDOW_TAIL = 2.0**-31  # the mass a window may neglect: ~2 log2|b| windows touch a message: < 2^-26
_WINDOW_MARGIN = 2  # counts: the rounding of the mean, the member held at y = 1, the tilt's last step
_UNROLL = 8  # steps of `_shifted_correlate` per loop iteration
_TINY = np.finfo(np.float32).tiny


def pairwise_messages(
    beliefs: jax.Array,
    messages: jax.Array,
    senders: jax.Array,
    couplings: jax.Array,
    temperature: jax.Array,
    max_product: bool,
) -> jax.Array:
    """New messages of the pairwise factors exp(J_e y_i y_j), both directions of every edge at once.

    beliefs: float32[n]; messages: float32[2, n_edges] current messages, row 0 along the edges
    (i -> j), row 1 against them (j -> i), so that messages[::-1] holds the reverse of each;
    senders: int32[2, n_edges] the node each message leaves; couplings: float32[2, n_edges] J of its edge.
    Returns float32[2, n_edges]: m_{i->j} = T softplus((J + c)/T) - T softplus(c/T), c = B_i - m_{j->i}
    (max(J + c, 0) - max(c, 0) when `max_product`).

    With softplus(z) = max(z, 0) + log(1 + exp(-|z|)), the two logs are taken as one log of their ratio,
    which lies in [1/2, 2] (absolute error ~1e-7 T, as each softplus's), and 1/T multiplies: 2 exp and
    1 log per message instead of 2 exp, 2 log1p and 2 divisions. At 10.5 M messages (bench_bp.py, n = 1e6,
    k = 5) the messages with damping took 99 instead of 210 ms on one CPU core.
    """
    cavity = beliefs[senders] - messages[::-1]
    if max_product:
        return jax.nn.relu(couplings + cavity) - jax.nn.relu(cavity)
    inverse = 1.0 / temperature
    x, y = (couplings + cavity) * inverse, cavity * inverse
    tails = (1.0 + jnp.exp(-jnp.abs(x))) / (1.0 + jnp.exp(-jnp.abs(y)))
    return temperature * (jax.nn.relu(x) - jax.nn.relu(y) + jnp.log(tails))


def log_bag_factor(s: jax.Array, counts: jax.Array, lambda_b: jax.Array, hard: bool) -> jax.Array:
    """log f_b(s): -lambda_b (s - k_b)^2, or 0 at s = k_b and "-inf" elsewhere when `hard` (a large finite
    negative, so that arithmetic on it stays finite).
    s: float32[n_bags, n] the counts at which to take it; counts: float32[n_bags] -> float32[n_bags, n]."""
    if hard:  # s's dtype: two Python constants alone come out float64 under jax_enable_x64
        return jnp.where(s == counts[:, None], 0.0, _NEG).astype(s.dtype)
    return -lambda_b * (s - counts[:, None]) ** 2


def bag_gaussian_messages(
    cavity: jax.Array,
    mask: jax.Array,
    counts: jax.Array,
    lambda_b: jax.Array,
    temperature: jax.Array,
    hard: bool,
) -> jax.Array:
    """Bag messages with the cavity count approximated by N(m_{-i}, v_{-i}), O(|b|) per bag.

    mu_{b->i} = -lambda (2 (m_{-i} - k_b) + 1) / (1 + 2 lambda v_{-i}) (DESIGN.md section 3), and its
    limit -(2 (m_{-i} - k_b) + 1) / (2 v_{-i}) for a hard count; at temperature T, lambda -> lambda / T,
    cavity -> cavity / T and the message is multiplied by T.
    The Gaussian puts mass on counts below 0 and above |b| - 1, which the other members cannot hold, so
    the message is then held to what the exact one must satisfy: a hard count k_b = 0 (k_b = |b|) forces
    every member to 0 (to 1), -inf (+inf); a soft message, the log of a weighted mean of f(s + 1) / f(s)
    over s = 0..|b| - 1, lies in [-lambda (2 (|b| - k_b) - 1), lambda (2 k_b - 1)] (clipping to bounds
    that the exact message obeys never moves the approximation away from it). Without this an all-zero
    bag of 1,000 members at lambda_b = 1e4 got messages of about -1 (the Gaussian's m / v ~ 1 for
    confident members) and kept 11% of its members positive.
    cavity: float32[n_bags, width] cavity log-odds of the members; mask: bool[n_bags, width];
    counts: float32[n_bags]. Returns float32[n_bags, width], 0 at padding slots.
    """
    p = jnp.where(mask, jax.nn.sigmoid(cavity / temperature), 0.0)
    var = p * (1.0 - p)
    mean_rest = jnp.sum(p, axis=1, keepdims=True) - p
    var_rest = jnp.maximum(jnp.sum(var, axis=1, keepdims=True) - var, 0.0)
    count = counts[:, None]
    size = jnp.sum(mask, axis=1, keepdims=True).astype(cavity.dtype)
    excess = 2.0 * (mean_rest - count) + 1.0
    if hard:
        scaled = -excess / (2.0 * jnp.maximum(var_rest, _TINY))
        scaled = jnp.where(count <= 0.0, -jnp.inf, jnp.where(count >= size, jnp.inf, scaled))
    else:
        lam = lambda_b / temperature
        scaled = -lam * excess / (1.0 + 2.0 * lam * var_rest)
        scaled = jnp.clip(scaled, -lam * (2.0 * (size - count) - 1.0), lam * (2.0 * count - 1.0))
    return jnp.where(mask, temperature * scaled, 0.0)


# ----------------------------------------------------------------------------------------------------
# Exact bag messages: up/down pass over a binary tree of the members, all bags at once.


def bag_count_messages(
    cavity: jax.Array,
    mask: jax.Array,
    counts: jax.Array,
    lambda_b: jax.Array,
    temperature: jax.Array,
    hard: bool,
    max_product: bool,
    bags_per_chunk: int | None = None,
) -> jax.Array:
    """Exact messages of the count factors f_b(sum_{i in b} y_i) to their members, every bag at once.

    mu_{b->i} = log sum_s f(s+1) Q_{-i}(s) - log sum_s f(s) Q_{-i}(s), Q_{-i} the count distribution of
    the other members under their cavity log-odds (DESIGN.md section 3), for all i by an upward/downward
    pass over a binary tree of the bag's slots. The rows must be a power of two (at least 2) wide, as the
    count factor's preparation pads them; padding slots (mask False) are fixed at y = 0, which is exact.

    Stability (sum-product): each bag's problem is exponentially tilted, y_j's log-odds shifted by theta
    and f(s) multiplied by exp(-theta s), which leaves every message unchanged but centres all the
    tree's vectors near the most likely count; vectors are then rescaled by their max. Max-product works
    in the log domain (max-plus). Messages are not clipped (module docstring).

    Windows (sum-product): under the tilt, each subtree's count lies within a few sqrt(members) of its
    tilted mean, so each tree node keeps only window_length(members) counts around it (the neglected mass
    below 2^-31 a window, `window_length`): O(|b|^1.5) work per bag instead of O(|b|^2), 1.1 M instead of
    6.3 M multiply-adds at |b| = 2,048 (FULL_WINDOWS: the exact tree, for checking). Max-product keeps
    whole supports, O(|b|^2).

    cavity: float32[n_bags, width] cavity log-odds (beliefs minus this bag's message) of each slot;
    mask: bool[n_bags, width] True at real members; counts: float32[n_bags] k_b; lambda_b, temperature:
    float32 scalars; hard: the constraint s = k_b instead of the soft penalty; max_product: T -> 0;
    bags_per_chunk: bags processed together (bounds memory; None: all). Returns float32[n_bags, width],
    0 at padding slots.
    """
    n_bags, width = cavity.shape
    if width < 2 or width & (width - 1):  # shapes are static: checked once per trace
        raise ValueError(
            f"bag rows are {width} slots wide; expected a power of two >= 2 (pad with masked slots)."
        )

    def one_chunk(args):
        cav, msk, cnt = args
        if max_product:
            return _max_product_messages(cav, msk, cnt, lambda_b, hard)
        return _sum_product_messages(cav, msk, cnt, lambda_b, temperature, hard)

    if bags_per_chunk is None or bags_per_chunk >= n_bags:
        messages = one_chunk((cavity, mask, counts))
    else:  # chunks run one after another; filler bags (one member, k = 0) are dropped at the end
        n_chunks = -(-n_bags // bags_per_chunk)
        filler = n_chunks * bags_per_chunk - n_bags
        cavity = jnp.pad(cavity, ((0, filler), (0, 0)))
        mask = jnp.pad(mask, ((0, filler), (0, 0))).at[n_bags:, 0].set(True)
        counts = jnp.pad(counts, (0, filler))
        chunked = [a.reshape(n_chunks, bags_per_chunk, *a.shape[1:]) for a in (cavity, mask, counts)]
        messages = jax.lax.map(one_chunk, tuple(chunked)).reshape(-1, width)[:n_bags]
        mask = mask[:n_bags]
    return jnp.where(mask, messages, 0.0)


def _sum_product_messages(cavity, mask, counts, lambda_b, temperature, hard):
    """Sum-product count messages of `bag_count_messages` (rows already a power of two wide)."""
    size = cavity.shape[1]
    logits, lam = cavity / temperature, lambda_b / temperature
    theta = tilt(logits, mask, counts, lam, hard)
    tilted = jnp.where(mask, logits + theta[:, None], -jnp.inf)
    leaves = jnp.stack([jnp.exp(-jax.nn.relu(tilted)), jnp.exp(-jax.nn.relu(-tilted))], axis=-1)
    levels, _ = upward_pass(leaves, max_plus=False, n_top=2, means=jax.nn.sigmoid(tilted))
    whole, part, carry = _merged_means(levels[-1])  # the root's window, around the tilted mean count
    length = window_length(size)
    start = window_start(whole, size, length)
    s = (start + jnp.arange(length)).astype(jnp.float32)
    log_root = log_bag_factor(s, counts, lam, hard) - theta[:, None] * s
    log_root = jnp.where((s >= 0.0) & (s <= size), log_root, _NEG)  # windows may reach beyond 0 .. size
    root = jnp.exp(log_root - jnp.max(log_root, axis=1, keepdims=True))[:, None]
    root = Window(root, whole, part, carry)
    g = _leaf_context(levels, root, max_plus=False)
    g0, g1 = g[..., 0], g[..., 1]
    # +-inf where y_i = 1 or y_i = 0 is impossible (or below float32's range); 0 where both are
    message = temperature * (jnp.log(g1) - jnp.log(g0) + theta[:, None])
    return jnp.where((g0 > 0.0) | (g1 > 0.0), message, 0.0)


def _max_product_messages(cavity, mask, counts, lambda_b, hard):
    """Max-product (T -> 0) count messages of `bag_count_messages`, in the log domain, over whole
    supports (no tilt, so no window)."""
    n_bags, size = cavity.shape
    s = jnp.broadcast_to(jnp.arange(size + 1, dtype=jnp.float32), (n_bags, size + 1))
    log_f = _normalize(log_bag_factor(s, counts, lambda_b, hard), max_plus=True)
    leaves = jnp.stack([-jax.nn.relu(cavity), -jax.nn.relu(-cavity)], axis=-1)
    # padding: y = 0 for sure. The array takes the leaves' dtype: a bare jnp.array is float64 under
    # jax_enable_x64, and promoted the messages, hence the while_loop's carry, out of float32.
    leaves = jnp.where(mask[..., None], leaves, jnp.array([0.0, _NEG], leaves.dtype))
    levels, _ = upward_pass(leaves, max_plus=True, n_top=2)
    nowhere = jnp.zeros((n_bags, 1), jnp.int32)
    g = _leaf_context(levels, Window(log_f[:, None], nowhere, nowhere, nowhere), max_plus=True)
    return g[..., 1] - g[..., 0]


def tilt(logits: jax.Array, mask: jax.Array, counts: jax.Array, lam: jax.Array, hard: bool) -> jax.Array:
    """theta: float32[n_bags], the shift of the members' log-odds that puts the tilted mean count at the
    most likely count s*: mean(theta) = k_b (hard) or theta = -2 lam (mean(theta) - k_b) (soft; the
    saddle point of log Q(s) + log f(s)), kept where the tilted mean lies in [1/2, |b| - 1/2].

    Safeguarded Newton steps on the excess (mean(theta) - k_b, or theta + 2 lam (mean(theta) - k_b)),
    monotone in theta with derivative V = sum_i q_i (1 - q_i) (1 + 2 lam V): a step that leaves the
    bracket of the root, or shrinks slower than bisection would, bisects it instead, and the bracket's ends
    are tried before the tilt is kept at one (Numerical Recipes' rtsafe). Until every bag's step falls
    below _TILT_TOL, at most _TILT_STEPS steps: 40 bisection steps cost 80 sigmoid passes over the
    members and were 12 to 29% of the count factor (issue 13); 4 Newton steps sufficed on every bag of
    bench_bp.py's problem after 1, 5 and 20 BP iterations.

    The excess is summed without cancellation: mean(theta) - k_b = (#{z_i >= 0} - k_b) + sum over z_i < 0
    of q_i - sum over z_i >= 0 of (1 - q_i), z_i = logit_i + theta. An exact integer and each member's
    distance from its nearer label: when every member is confident the root is where these tiny terms
    balance, and a float32 mean rounded to k_b lost them over a whole stretch of theta (+-43 on a bag of
    4,096 members at +-60, whose ends put one side's messages beyond float32's range).
    logits: float32[n_bags, width]; mask: bool[n_bags, width]; counts: float32[n_bags] k_b (fractional
    allowed); lam: float32 scalar lambda_b (unused when `hard`)."""
    sizes = jnp.sum(mask, axis=1).astype(jnp.float32)
    lo = -jnp.max(jnp.where(mask, logits, -jnp.inf), axis=1) + jnp.log(0.5 / (sizes - 0.5))
    hi = -jnp.min(jnp.where(mask, logits, jnp.inf), axis=1) + jnp.log((sizes - 0.5) / 0.5)

    def excess(theta):  # the excess and its derivative at theta: float32[n_bags] each
        z = logits + theta[:, None]
        near = jax.nn.sigmoid(-jnp.abs(z))  # q_i below 1/2, 1 - q_i above
        upper = mask & (z >= 0.0)
        surplus = (
            jnp.sum(upper, axis=1) - counts + jnp.sum(jnp.where(mask, near, 0.0) * (1 - 2 * upper), axis=1)
        )
        var = jnp.sum(jnp.where(mask, near * (1.0 - near), 0.0), axis=1)
        return (surplus, var) if hard else (theta + 2.0 * lam * surplus, 1.0 + 2.0 * lam * var)

    def newton(state):
        it, theta, below, above, lo_open, hi_open, last, done = state
        e, slope = excess(theta)
        below, lo_open = jnp.where(e < 0.0, theta, below), lo_open & (e >= 0.0) & (theta > lo)
        above, hi_open = jnp.where(e > 0.0, theta, above), hi_open & (e <= 0.0) & (theta < hi)
        step = e / slope
        proposal = theta - step
        inside = (proposal > below) & (proposal < above) & (jnp.abs(2.0 * e) <= jnp.abs(last * slope))
        # a root beyond an end not yet tried: try the end, where the tilt is kept if the root lies beyond
        end = jnp.where(
            (proposal <= below) & lo_open, lo, jnp.where((proposal >= above) & hi_open, hi, jnp.nan)
        )
        bisect = jnp.where(jnp.isnan(end), 0.5 * (below + above), end)
        # a Newton step below the tolerance ends the search (it may round to theta, outside the bracket)
        close = (e == 0.0) | (jnp.abs(step) <= _TILT_TOL)
        nxt = jnp.where(done, theta, jnp.where(close | inside, proposal, bisect))
        nxt = jnp.where(e == 0.0, theta, nxt)
        return it + 1, nxt, below, above, lo_open, hi_open, nxt - theta, done | close

    target = jnp.clip(counts, 0.5, sizes - 0.5)
    mean_logit = jnp.sum(jnp.where(mask, logits, 0.0), axis=1) / sizes
    start = jnp.clip(jnp.log(target) - jnp.log(sizes - target) - mean_logit, lo, hi)
    closed = jnp.zeros_like(lo, bool)
    state = (0, start, lo, hi, ~closed, ~closed, hi - lo, closed)
    state = jax.lax.while_loop(lambda s: (s[0] < _TILT_STEPS) & ~jnp.all(s[-1]), newton, state)
    return state[1]


class Window(NamedTuple):
    """The count distribution (or the downward pass's g) of each node of a tree level on a window of
    counts, and the node's tilted mean count in whole and part.

    values: float32[n_bags, n_nodes, length] the entries at counts window_start(whole, members, length)
    onwards, up to a scale per node (counts outside are taken as 0; with length = members + 1, 0 ..
    members); whole: int32[n_bags, n_nodes] floor of the mean count; part: float32[n_bags, n_nodes] the
    mean minus whole, in [0, 1); carry: int32[n_bags, n_nodes] whole minus the wholes of its two children
    (0 or 1; 0 at the leaves). Means summed as whole and part are exact in their whole, so that the
    offset between two windowed levels is a static number plus the carry (`_offset_shift`, `_shifted`).
    """

    values: jax.Array
    whole: jax.Array
    part: jax.Array
    carry: jax.Array


def window_length(members: int) -> int:
    """The static number of counts kept for a subtree of `members` slots: all members + 1 with
    FULL_WINDOWS or where the window would be as long, else 2 h + 2 from floor(mean) - h, which holds
    every count within h of the mean, h = ceil(sqrt(members ln(2 / _WINDOW_TAIL) / 2)) + _WINDOW_MARGIN.
    By Hoeffding's inequality, the count of any `members` independent Bernoulli variables lies
    h - _WINDOW_MARGIN or more from its mean with probability below _WINDOW_TAIL."""
    if FULL_WINDOWS:
        return members + 1
    half = math.ceil(math.sqrt(members * math.log(2.0 / _WINDOW_TAIL) / 2.0)) + _WINDOW_MARGIN
    return min(members + 1, 2 * half + 2)


def _half(members: int, length: int) -> int:
    """h of a window of `length` over `members` slots (`window_length`); 0 for the whole support."""
    return 0 if length == members + 1 else (length - 2) // 2


def window_start(whole: jax.Array, members: int, length: int) -> jax.Array:
    """int32[...]: the first count of each window of `length` (`window_length`) over `members` slots:
    floor(mean) - h; 0 for the whole support. whole: int32[...] floor(mean), the Window's field."""
    half = _half(members, length)
    return whole - half if half else jnp.zeros_like(whole)


def _merged_means(child: Window) -> tuple[jax.Array, jax.Array, jax.Array]:
    """whole, part and carry (Window's fields) of the parents of the nodes of `child`: int32, float32,
    int32[n_bags, n_nodes / 2]. part_l + part_r - 1 is exact when at least 1 (Sterbenz)."""
    summed = child.part[:, 0::2] + child.part[:, 1::2]
    carry = (summed >= 1.0).astype(jnp.int32)
    return child.whole[:, 0::2] + child.whole[:, 1::2] + carry, summed - carry, carry


def _offset_shift(parent: Window, half: int, child_half: int) -> jax.Array | None:
    """The part of the offset between a parent's window (h = half) and its children's windows
    (h = child_half) that varies from node to node: the carry (0 or 1) where both are windows, the
    parent's whole where only the parent is, none (0) between whole supports. (A parent of whole-support
    children has start = whole - half; one of windowed children start_l + start_r + carry - half +
    2 child_half.)"""
    if half == 0:
        return None
    return parent.whole if child_half == 0 else parent.carry


def _leaf_context(levels: list[Window], root: Window, max_plus: bool) -> jax.Array:
    """Downward pass over the binary tree of each bag's slots.

    levels: the windows of every tree node below the root (`upward_pass` with n_top=2), levels[0] the
    leaves; root: the factor f(s) on the root's window (one node, the root's mean), up to scale. Returns
    float32[n_bags, size, 2]: g_i(y) = sum_t f(y + t) Q_{-i}(t) (max over t if max_plus), up to a scale
    per slot, the sum over the counts within every ancestor's and every sibling's window.
    """
    size = levels[0].values.shape[1]
    g = root
    for level in reversed(levels):  # g of a node: f convolved with the count of everything outside it
        n_nodes, length = level.values.shape[1:]
        members = size // n_nodes
        half, parent_half = _half(members, length), _half(2 * members, g.values.shape[2])
        shift = _offset_shift(g, parent_half, half)
        shift = None if shift is None else -jnp.repeat(shift, 2, axis=1)
        # g(s) = sum_t g_parent(s + t) P_sibling(t): the parent's g from its count start + sibling_start on,
        # which lies parent_half - 2 half - (carry or whole) from its own start
        base = parent_half - 2 * half
        parent = _shifted(jnp.repeat(g.values, 2, axis=1), shift, base, 2 * length - 1, max_plus)
        g = level._replace(values=_correlate(parent, _siblings(level.values), max_plus))
        if level is not levels[0]:  # the leaves' g is only read as g(1) / g(0)
            g = g._replace(values=_normalize(g.values, max_plus))
    return g.values


def _siblings(x: jax.Array) -> jax.Array:
    """Each node's sibling: x[:, 2 i] and x[:, 2 i + 1] swapped. x: [n_bags, n_nodes, ...]."""
    return x.reshape(x.shape[0], x.shape[1] // 2, 2, *x.shape[2:])[:, :, ::-1].reshape(x.shape)


def upward_pass(
    leaves: jax.Array, max_plus: bool, n_top: int = 1, means: jax.Array | None = None
) -> tuple[list[Window], jax.Array]:
    """Count distributions of the nodes of the binary tree over each bag's slots, from the leaves up.

    leaves: float32[n_bags, size, 2] each slot's (P(y=0), P(y=1)) up to scale (log domain if max_plus),
    size a power of two; n_top: the number of nodes of the last level built (1: the root); means:
    float32[n_bags, size] each slot's P(y = 1) under `leaves` (sum-product, tilted so that the bag's
    count sits near its mean): each node keeps window_length(its slots) counts around its mean count, the
    neglected mass below _WINDOW_TAIL (`window_length`); None: the whole support 0 .. slots.
    Returns levels, levels[j] the Window of each node of level j (levels[0] = leaves), every vector of
    levels[1:] rescaled so that its largest entry is 1 (0 in the log domain) to stay in float32 range; and
    log_scale: float32[n_bags] the log of the product of all the scales divided out (their sum if
    max_plus). Convolution being bilinear, the product of the top level's unscaled distributions is the
    product of its scaled ones times exp(log_scale).
    """
    n_bags, size = leaves.shape[:2]
    windowed = means is not None
    means = means if windowed else jnp.zeros((n_bags, size), leaves.dtype)
    whole = (means >= 1.0).astype(jnp.int32)
    levels = [Window(leaves, whole, means - whole, jnp.zeros_like(whole))]
    log_scale = jnp.zeros(n_bags, leaves.dtype)
    while levels[-1].values.shape[1] > n_top:
        child = levels[-1]
        child_members, child_length = size // child.values.shape[1], child.values.shape[2]
        members = 2 * child_members
        length = window_length(members) if windowed else members + 1
        half, child_half = _half(members, length), _half(child_members, child_length)
        parent = Window(None, *_merged_means(child))
        shift = _offset_shift(parent, half, child_half)
        left, right = child.values[:, 0::2], child.values[:, 1::2]
        # P(s) = sum_u left(u) right(s - u): right from s - (left's last count) on, against left reversed;
        # from the parent's start that is start - start_l - start_r - (child_length - 1) into right
        base = 2 * child_half - half - (child_length - 1)
        shifted = _shifted(right, shift, base, length + child_length - 1, max_plus)
        joint = _correlate(shifted, left[..., ::-1], max_plus)
        scale = _scale(joint, max_plus)
        log_scale += jnp.sum(scale if max_plus else jnp.log(scale), axis=(1, 2))
        levels.append(parent._replace(values=_normalize(joint, max_plus)))
    return levels, log_scale


def _shifted(x: jax.Array, shift: jax.Array | None, base: int, length: int, max_plus: bool) -> jax.Array:
    """out[..., i] = x[..., base + shift + i] for i < length, 0 (_NEG if max_plus) where that lies outside
    x. x: float32[..., n]; shift: int32[...] (None: 0) -> float32[..., length]. Without shift a static slice
    of x padded; with one a gather along the last axis (`_correlate` reads its output many times over).
    A barrel shifter (a select between two slices per bit of the largest shift) was 1.3x slower where the
    shift is a carry (0 or 1) and 8x where it is a mean count (45 against 6 ms between the whole-support
    and the windowed levels of bags of 2,048: 7 bits; bench_bp.py, n = 1e6)."""
    fill = _NEG if max_plus else 0.0
    n = x.shape[-1]
    if shift is None:
        before, after = max(0, -base), max(0, base + length - n)
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(before, after)], constant_values=fill)
        return x[..., base + before : base + before + length]
    index = base + shift[..., None] + jnp.arange(length)
    inside = (index >= 0) & (index < n)
    return jnp.where(inside, jnp.take_along_axis(x, jnp.clip(index, 0, n - 1), axis=-1), fill)


def _scale(x: jax.Array, max_plus: bool) -> jax.Array:
    """float32[..., 1]: the largest entry of every vector (last axis), which `_normalize` divides out
    (subtracts in the log domain); 1 (0) for a vector of zeros (of _NEG), which is left as it is."""
    top = jnp.max(x, axis=-1, keepdims=True)
    if max_plus:
        return jnp.where(top > 0.5 * _NEG, top, 0.0)
    return jnp.where(top > 0.0, top, 1.0)


def _normalize(x: jax.Array, max_plus: bool) -> jax.Array:
    """Rescale every vector (last axis) so that its largest entry is 1 (0 in the log domain)."""
    if max_plus:
        return jnp.maximum(x - _scale(x, max_plus), _NEG)
    return x / _scale(x, max_plus)


def _correlate(x: jax.Array, k: jax.Array, max_plus: bool) -> jax.Array:
    """Valid correlation out[s] = sum_v x[s + v] k[v] (max_v x[s + v] + k[v] if max_plus), for each
    vector of a batch with its own kernel. x: float32[..., n_out + n_k - 1], k: float32[..., n_k] ->
    float32[..., n_out]. On CPU a loop over v of shifted slices (`_shifted_correlate`); elsewhere, and with
    FORCE_HANKEL, a fused reduction over the Hankel matrix of x (XLA fuses its reshapes into the reduction
    on accelerators)."""
    if not FORCE_HANKEL and jax.default_backend() == "cpu":
        return _shifted_correlate(x, k, max_plus)
    hankel = _hankel(x, k.shape[-1])
    if max_plus:
        return jnp.max(hankel + k[..., :, None], axis=-2)
    return jnp.sum(hankel * k[..., :, None], axis=-2)


def _hankel(x: jax.Array, n_k: int) -> jax.Array:
    """H[..., v, s] = x[..., s + v], without a gather: rows of length N tiled and re-cut at length N + 1.
    x: float32[..., N] -> float32[..., n_k, N - n_k + 1]."""
    batch, n = x.shape[:-1], x.shape[-1]
    tiled = jnp.broadcast_to(x[..., None, :], (*batch, n_k, n)).reshape(*batch, n_k * n)
    skewed = jnp.pad(tiled, [(0, 0)] * len(batch) + [(0, n_k)]).reshape(*batch, n_k, n + 1)
    return skewed[..., : n - n_k + 1]


def _shifted_correlate(x: jax.Array, k: jax.Array, max_plus: bool) -> jax.Array:
    """`_correlate` as a loop over the kernel's entries, each adding (max-ing) one shifted slice of x times
    (plus) one entry of k: every step one fused pass over the outputs. On the CPU, at the windows' shapes
    (bags of 2,048, kernels of 17 to 219), it ran 12 to 14 G multiply-adds/s, where a grouped convolution
    with a group per vector (the earlier path) ran 0.002 to 0.3 (64 bags, one level at a time)."""
    n_k = k.shape[-1]
    n_out = x.shape[-1] - n_k + 1

    def add(v, out):
        term = jax.lax.dynamic_slice_in_dim(x, v, n_out, axis=-1)
        entry = jax.lax.dynamic_slice_in_dim(k, v, 1, axis=-1)
        return jnp.maximum(out, term + entry) if max_plus else out + term * entry

    out = jnp.full((*x.shape[:-1], n_out), _NEG if max_plus else 0.0, x.dtype)
    if n_k <= _UNROLL:  # static slices: one fusion, no loop (the tree's lowest levels)
        for v in range(n_k):
            out = add(v, out)
        return out
    return jax.lax.fori_loop(0, n_k, add, out, unroll=_UNROLL)
