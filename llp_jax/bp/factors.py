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

import jax
import jax.numpy as jnp
import numpy as np

FORCE_HANKEL = False
"""True: `_correlate` sums over the Hankel matrix (the accelerators' path) on every backend, so that tests
check that path on the CPU. Read when a function is traced: it reaches only functions traced afterwards."""

_NEG = -1e30  # log(0) of the max-plus semiring; finite so that differences of two of them are not NaN
_TILT_STEPS = 40  # bisection steps for the exponential tilt of a bag (the bracket shrinks by 2^-40)
_TINY = np.finfo(np.float32).tiny


def tempered_softplus(x: jax.Array, temperature: jax.Array, max_product: bool) -> jax.Array:
    """T softplus(x / T), or max(x, 0) when `max_product` (T -> 0). x: float32[...]."""
    if max_product:
        return jax.nn.relu(x)
    return temperature * jax.nn.softplus(x / temperature)


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
    Returns float32[2, n_edges]: m_{i->j} = T softplus((J + c)/T) - T softplus(c/T), c = B_i - m_{j->i}.
    """
    cavity = beliefs[senders] - messages[::-1]
    return tempered_softplus(couplings + cavity, temperature, max_product) - tempered_softplus(
        cavity, temperature, max_product
    )


def log_bag_factor(counts: jax.Array, lambda_b: jax.Array, hard: bool, max_count: int) -> jax.Array:
    """log f_b(s) for s = 0..max_count: -lambda_b (s - k_b)^2, or 0 at s = k_b and "-inf" elsewhere when
    `hard` (a large finite negative, so that arithmetic on it stays finite).
    counts: float32[n_bags] -> float32[n_bags, max_count + 1]."""
    s = jnp.arange(max_count + 1, dtype=jnp.float32)
    if hard:
        return jnp.where(s[None, :] == counts[:, None], 0.0, _NEG)
    return -lambda_b * (s[None, :] - counts[:, None]) ** 2


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
    pass over a binary tree of the bag's slots: O(|b|^2) work and O(|b| log |b|) memory per bag.
    The rows must be a power of two (at least 2) wide, as the count factor's preparation pads them;
    padding slots (mask False) are fixed at y = 0, which is exact.

    Stability (sum-product): each bag's problem is exponentially tilted, y_j's log-odds shifted by theta
    and f(s) multiplied by exp(-theta s), which leaves every message unchanged but centres all the
    tree's vectors near the most likely count; vectors are then rescaled by their max. Max-product works
    in the log domain (max-plus). Messages are not clipped (module docstring).

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
    logits = cavity / temperature
    log_f = log_bag_factor(counts, lambda_b / temperature, hard, size)
    theta = tilt(logits, mask, counts, lambda_b / temperature, hard)
    tilted = jnp.where(mask, logits + theta[:, None], -jnp.inf)
    leaves = jnp.stack([jnp.exp(-jax.nn.relu(tilted)), jnp.exp(-jax.nn.relu(-tilted))], axis=-1)
    log_root = log_f - theta[:, None] * jnp.arange(size + 1, dtype=jnp.float32)
    root = jnp.exp(log_root - jnp.max(log_root, axis=1, keepdims=True))
    g = _leaf_context(leaves, root, max_plus=False)
    g0, g1 = g[..., 0], g[..., 1]
    # +-inf where y_i = 1 or y_i = 0 is impossible (or below float32's range); 0 where both are
    message = temperature * (jnp.log(g1) - jnp.log(g0) + theta[:, None])
    return jnp.where((g0 > 0.0) | (g1 > 0.0), message, 0.0)


def _max_product_messages(cavity, mask, counts, lambda_b, hard):
    """Max-product (T -> 0) count messages of `bag_count_messages`, in the log domain."""
    size = cavity.shape[1]
    log_f = log_bag_factor(counts, lambda_b, hard, size)
    leaves = jnp.stack([-jax.nn.relu(cavity), -jax.nn.relu(-cavity)], axis=-1)
    # padding: y = 0 for sure. The array takes the leaves' dtype: a bare jnp.array is float64 under
    # jax_enable_x64, and promoted the messages, hence the while_loop's carry, out of float32.
    leaves = jnp.where(mask[..., None], leaves, jnp.array([0.0, _NEG], leaves.dtype))
    g = _leaf_context(leaves, _normalize(log_f, max_plus=True), max_plus=True)
    return g[..., 1] - g[..., 0]


def tilt(logits: jax.Array, mask: jax.Array, counts: jax.Array, lam: jax.Array, hard: bool) -> jax.Array:
    """theta: float32[n_bags], the shift of the members' log-odds that puts the tilted mean count at the
    most likely count s*: mean(theta) = k_b (hard) or theta = -2 lam (mean(theta) - k_b) (soft; the
    saddle point of log Q(s) + log f(s)), kept where the tilted mean lies in [1/2, |b| - 1/2].
    When every member is confident, float32 rounds the tilted mean to k_b exactly over a whole stretch of
    theta; the middle of the stretch is taken (two bisections find its ends), which keeps both the y = 0
    and the y = 1 members' tilted messages as far as can be from float32's limits. One end is not
    enough: on a bag of 4,096 members at +-60 and k_b their positives, the upper end, theta = +43.4, put
    the messages to the y = 0 members (-52.9) out of float32's range, and they came out at the cap.
    logits: float32[n_bags, width]; mask: bool[n_bags, width]; counts: float32[n_bags] k_b (fractional
    allowed); lam: float32 scalar lambda_b (unused when `hard`)."""
    sizes = jnp.sum(mask, axis=1).astype(jnp.float32)
    lo = -jnp.max(jnp.where(mask, logits, -jnp.inf), axis=1) + jnp.log(0.5 / (sizes - 0.5))
    hi = -jnp.min(jnp.where(mask, logits, jnp.inf), axis=1) + jnp.log((sizes - 0.5) / 0.5)

    def excess(theta):  # theta: float32[2, n_bags], one row per end of the stretch
        tilted = jax.nn.sigmoid(logits + theta[..., None])
        mean = jnp.sum(jnp.where(mask, tilted, 0.0), axis=-1)
        return mean - counts if hard else theta + 2.0 * lam * (mean - counts)

    def bisect(_, bracket):  # row 0 converges to the lowest root, row 1 to the highest
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        e = excess(mid)
        above = jnp.stack([e[0] >= 0.0, e[1] > 0.0])
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    lo, hi = jax.lax.fori_loop(0, _TILT_STEPS, bisect, (jnp.stack([lo, lo]), jnp.stack([hi, hi])))
    return 0.25 * jnp.sum(lo + hi, axis=0)


def _leaf_context(leaves: jax.Array, root: jax.Array, max_plus: bool) -> jax.Array:
    """Upward/downward pass over the binary tree of each bag's slots.

    leaves: float32[n_bags, size, 2] each slot's (P(y=0), P(y=1)) up to scale (log domain if max_plus);
    root: float32[n_bags, size + 1] the factor f(s), up to scale. Returns float32[n_bags, size, 2]:
    g_i(y) = sum_t f(y + t) Q_{-i}(t) (max over t if max_plus), up to a scale per slot.
    """
    n_bags = leaves.shape[0]
    levels, _ = upward_pass(leaves, max_plus, n_top=2)  # every tree node below the root
    g = root[:, None, :]
    for x in reversed(levels):  # g of a node: f convolved with the count of everything outside it
        n_nodes, length = x.shape[1], x.shape[2]
        sibling = x.reshape(n_bags, n_nodes // 2, 2, length)[:, :, ::-1].reshape(x.shape)
        g = _normalize(_correlate(jnp.repeat(g, 2, axis=1), sibling, max_plus), max_plus)
    return g


def upward_pass(leaves: jax.Array, max_plus: bool, n_top: int = 1) -> tuple[list[jax.Array], jax.Array]:
    """Count distributions of the nodes of the binary tree over each bag's slots, from the leaves up.

    leaves: float32[n_bags, size, 2] each slot's (P(y=0), P(y=1)) up to scale (log domain if max_plus),
    size a power of two; n_top: the number of nodes of the last level built (1: the root).
    Returns levels, levels[j]: float32[n_bags, size / 2^j, 2^j + 1] the count distribution of each node
    of level j (levels[0] = leaves), every vector of levels[1:] rescaled so that its largest entry is 1
    (0 in the log domain) to stay in float32 range; and log_scale: float32[n_bags] the log of the product
    of all the scales divided out (their sum if max_plus). Convolution being bilinear, the product of the
    top level's unscaled distributions is the product of its scaled ones times exp(log_scale).
    """
    levels, log_scale = [leaves], jnp.zeros(leaves.shape[0], leaves.dtype)
    while levels[-1].shape[1] > n_top:
        x = levels[-1]
        joint = _convolve(x[:, 0::2], x[:, 1::2], max_plus)
        scale = _scale(joint, max_plus)
        log_scale += jnp.sum(scale if max_plus else jnp.log(scale), axis=(1, 2))
        levels.append(_normalize(joint, max_plus))
    return levels, log_scale


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


def _convolve(a: jax.Array, b: jax.Array, max_plus: bool) -> jax.Array:
    """Full convolution out[s] = sum_u a[u] b[s - u] (max_u a[u] + b[s - u] if max_plus).
    a, b: float32[..., m + 1] -> float32[..., 2 m + 1]."""
    m = a.shape[-1] - 1
    zero = _NEG if max_plus else 0.0
    padded = jnp.pad(b, [(0, 0)] * (b.ndim - 1) + [(m, m)], constant_values=zero)
    return _correlate(padded, a[..., ::-1], max_plus)


def _correlate(x: jax.Array, k: jax.Array, max_plus: bool) -> jax.Array:
    """Valid correlation out[s] = sum_v x[s + v] k[v] (max_v x[s + v] + k[v] if max_plus), for each
    vector of a batch with its own kernel. x: float32[..., n_out + n_k - 1], k: float32[..., n_k] ->
    float32[..., n_out]. On CPU the sum is a grouped convolution; elsewhere, for max-plus and with
    FORCE_HANKEL, a fused reduction over the Hankel matrix of x (XLA fuses its reshapes into the reduction
    on accelerators)."""
    if not (max_plus or FORCE_HANKEL) and jax.default_backend() == "cpu":
        return _grouped_correlate(x, k)
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


def _grouped_correlate(x: jax.Array, k: jax.Array) -> jax.Array:
    """`_correlate` (sum) as one convolution with a group per vector."""
    batch = x.shape[:-1]
    groups = int(np.prod(batch))
    out = jax.lax.conv_general_dilated(
        x.reshape(1, groups, x.shape[-1]),
        k.reshape(groups, 1, k.shape[-1]),
        window_strides=(1,),
        padding="VALID",
        dimension_numbers=("NCH", "OIH", "NCH"),
        feature_group_count=groups,
        precision=jax.lax.Precision.HIGHEST,
    )
    return out.reshape(*batch, out.shape[-1])
