"""Loopy belief propagation for LLP: binary variables, log-odds messages, pairwise and bag factors.

    from llp_jax.bp import BPSettings, run_bp
    result = run_bp(graph, bags, BPSettings(bag_factor="count"))  # SimilarityGraph, Bags (None: no bags)
    result.marginals                                               # float32[n_nodes] P(y_i = 1)

    problem = build_problem(graph, bags, settings, unary)  # host checks and device layout, once
    result = solve(problem, settings)                      # the compiled loop, as often as wanted

Layout: settings.py (BPSettings, BagFactorName, check_settings), registry.py (BAG_FACTORS: each bag
factor's preparation, message function and supported settings), problem.py (input checks, BPProblem,
build_problem), loop.py (the compiled loop: solve, run_bp), factors.py (the message maths); K classes:
potts.py (run_potts_bp, the K-state engine on the same loop) and potts_factors.py (its message maths).

    result = run_potts_bp(graph, bags_with_count_vectors)  # bags.counts float[n_bags, K]
    result.marginals                                        # float32[n_nodes, K] P(y_i = a)
"""

from llp_jax.bp.factors import bag_count_messages, bag_gaussian_messages, pairwise_messages
from llp_jax.bp.loop import COUNT_GAP_WARNING, BPResult, CountGapWarning, run_bp, solve
from llp_jax.bp.potts import (
    MAX_JOINT_STATES,
    PottsProblem,
    PottsResult,
    build_potts_problem,
    run_potts_bp,
    solve_potts,
)
from llp_jax.bp.problem import BPProblem, build_problem
from llp_jax.bp.registry import BAG_FACTORS, BagFactor
from llp_jax.bp.settings import BagFactorName, BPSettings, check_settings

__all__ = [
    "BAG_FACTORS",
    "COUNT_GAP_WARNING",
    "MAX_JOINT_STATES",
    "BPProblem",
    "BPResult",
    "BPSettings",
    "BagFactor",
    "BagFactorName",
    "PottsProblem",
    "PottsResult",
    "CountGapWarning",
    "bag_count_messages",
    "bag_gaussian_messages",
    "build_potts_problem",
    "build_problem",
    "check_settings",
    "pairwise_messages",
    "run_bp",
    "run_potts_bp",
    "solve",
    "solve_potts",
]
