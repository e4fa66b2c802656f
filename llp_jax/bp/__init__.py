"""Loopy belief propagation for LLP: binary variables, log-odds messages, pairwise and bag-count factors.

from llp_jax.bp import BPSettings, run_bp
result = run_bp(n, senders, receivers, weights, bags.members, bags.mask, bags.counts, BPSettings())
result.marginals  # P(y_i = 1)
"""

from llp_jax.bp.factors import (
    MESSAGE_CAP,
    bag_count_messages,
    bag_gaussian_messages,
    pairwise_messages,
)
from llp_jax.bp.run import (
    BAG_FACTORS,
    BPProblem,
    BPResult,
    BPSettings,
    build_problem,
    check_settings,
    run_bp,
    solve,
)

__all__ = [
    "BAG_FACTORS",
    "MESSAGE_CAP",
    "BPProblem",
    "BPResult",
    "BPSettings",
    "bag_count_messages",
    "bag_gaussian_messages",
    "build_problem",
    "check_settings",
    "pairwise_messages",
    "run_bp",
    "solve",
]
