"""BP settings and their checks. The bag factors' names and what each supports come from the registry
(llp_jax.bp.registry.BAG_FACTORS)."""

from __future__ import annotations

import enum
from typing import NamedTuple

import numpy as np

from llp_jax.bp.registry import BAG_FACTORS

BagFactorName = enum.StrEnum("BagFactorName", {name: name for name in BAG_FACTORS})
"""The names of BAG_FACTORS. A str subclass: a member equals its name (BagFactorName.count == "count") and
hashes as a jit static argument; the config schema turns it into a checked choice."""


class BPSettings(NamedTuple):
    """lambda_s: weight of the similarity term; lambda_b: weight of the soft bag penalty.
    bag_factor: a BagFactorName or its string: "count" (exact message of f_b on the bag's count, O(|b|^2)
    per bag), "gaussian" (Gaussian approximation of the cavity count, O(|b|), for huge bags) or "clique"
    (the paper's |b|(|b|-1)/2 pairwise factors, soft counts only; for faithful reproduction).
    hard_counts: f_b(s) = 1[s = k_b] instead of exp(-lambda_b (s - k_b)^2) (needs integer counts).
    max_iters: iterations at most; damping in [0, 1); tol: convergence threshold on the largest |message
    change| of an iteration; marginal_tol: on the mean |change| of the marginals P(y_i = 1) over the nodes
    (the soft pseudo-labels; 0: off); early_stop: stop when either is met (while_loop) or always run
    max_iters (scan).
    The default tol is rarely met by LLP-BP's problems: after 100 iterations the largest message change was
    0.001 to 0.023 on bank marketing at bag 128 (4 rounds) and adult at bag 512 (2 rounds), and some
    marginals still move by up to 0.99 before iteration 300. Nor is the largest marginal change: below 1e-3
    only after 96 to 236 iterations (a looser threshold stopped where single marginals were up to 0.95 from
    their value at 300). marginal_tol = 1e-5 stops after 51 to 113 iterations (3 of the 6 before 100) with
    marginals within 1.5e-4 to 1.3e-3 on average of those at 300 (100 iterations: 5.6e-6 to 1.2e-3).

    temperature: 1 = sum-product, 0 = max-product, other T > 0 = sum-product on p^(1/T).
    joint_counts: K-class data only (`llp_jax.bp.run_potts_bp`): the exact factor of each bag's whole
    count vector (hard counts, small bags) instead of one `bag_factor` per class; the binary engine
    refuses it, its count factor being that exact factor already.
    """

    lambda_s: float = 10.0
    lambda_b: float = 10.0
    bag_factor: BagFactorName = BagFactorName("count")
    hard_counts: bool = False
    max_iters: int = 100
    damping: float = 0.5
    tol: float = 1e-4
    marginal_tol: float = 1e-5
    early_stop: bool = True
    temperature: float = 1.0
    joint_counts: bool = False


def check_settings(settings: BPSettings) -> BPSettings:
    """Raise ValueError naming the first bad setting as its config key (bp.<name>). Returns the settings
    with bag_factor as a BagFactorName member (a plain string is accepted)."""
    s = settings
    try:
        s = s._replace(bag_factor=BagFactorName(s.bag_factor))
    except ValueError:
        raise ValueError(f"bp.bag_factor={s.bag_factor!r}; expected one of {tuple(BAG_FACTORS)}.") from None
    for name in ("lambda_s", "lambda_b"):
        value = getattr(s, name)
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"bp.{name}={value}; expected a finite number >= 0.")
    if not (isinstance(s.max_iters, int | np.integer) and s.max_iters >= 1):
        raise ValueError(f"bp.max_iters={s.max_iters!r}; expected an integer >= 1.")
    if not 0.0 <= s.damping < 1.0:
        raise ValueError(f"bp.damping={s.damping}; expected 0 <= damping < 1 (0.5 is the paper's).")
    if not (np.isfinite(s.tol) and s.tol > 0):
        raise ValueError(
            f"bp.tol={s.tol}; expected a finite number > 0 (set early_stop=False to always run)."
        )
    if not (np.isfinite(s.marginal_tol) and 0 <= s.marginal_tol < 1):
        raise ValueError(
            f"bp.marginal_tol={s.marginal_tol}; expected 0 <= marginal_tol < 1 (0: messages only)."
        )
    if not (np.isfinite(s.temperature) and s.temperature >= 0):
        raise ValueError(f"bp.temperature={s.temperature}; expected >= 0 (1 sum-product, 0 max-product).")
    factor = BAG_FACTORS[s.bag_factor]
    if s.hard_counts and factor.no_hard_counts:
        raise ValueError(
            f"bp.hard_counts=True with bag_factor={s.bag_factor.value!r}: {factor.no_hard_counts}; "
            f"use bag_factor={_able('no_hard_counts')} for hard counts."
        )
    if s.temperature == 0.0 and factor.no_max_product:
        raise ValueError(
            f"bp.temperature=0 (max-product) with bag_factor={s.bag_factor.value!r}: "
            f"{factor.no_max_product}; use a temperature > 0 or bag_factor={_able('no_max_product')}."
        )
    return s


def _able(limit: str) -> str:
    """The bag factors without the limitation `limit` (a BagFactor field), as the fix of an error
    message: "'count' or 'gaussian'"."""
    return " or ".join(repr(name) for name, factor in BAG_FACTORS.items() if getattr(factor, limit) is None)
