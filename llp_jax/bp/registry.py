"""The bag factors, one registry entry each (as PGMax's factor types): how the factor lays out the bags
of a problem, its device message function, and which settings it supports.

`check_settings`, `build_problem` and the compiled loop all read BAG_FACTORS, and `BagFactorName` (the
type of `BPSettings.bag_factor`) is generated from its keys: a new bag factor is its maths in factors.py
plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from llp_jax.bp.factors import bag_count_messages, bag_gaussian_messages

if TYPE_CHECKING:
    import jax

    from llp_jax.bp.problem import BPProblem
    from llp_jax.bp.settings import BPSettings


class BagFactor(NamedTuple):
    """One kind of bag factor.

    prepare: (problem, settings) -> problem on host (numpy, float64) arrays: the factor's layout of the
        bags; every factor keeps the bags' members, mask and counts (BPResult.count_gap reads them).
    messages: the new messages of every bag at once, called as
        messages(cavity, mask, counts, lambda_b, temperature, hard, max_product, bags_per_chunk)
        with the arguments of `bag_count_messages`, returning float32[n_bags, width] (0 at padding;
        unclipped, +-inf for a forced member: the loop clips); None for a factor without bag messages.
    no_hard_counts, no_max_product: why the factor cannot do hard_counts=True or temperature=0
        (max-product), for the error message; None where it can.
    """

    prepare: Callable[[BPProblem, BPSettings], BPProblem]
    messages: Callable[..., jax.Array] | None
    no_hard_counts: str | None = None
    no_max_product: str | None = None


def _unchanged(problem: BPProblem, settings: BPSettings) -> BPProblem:
    """Gaussian factor: the bags as given (its messages are sums over the row, any width)."""
    return problem


def _pad_to_power_of_two(problem: BPProblem, settings: BPSettings) -> BPProblem:
    """Count factor: rows padded to a power of two (at least 2) slots, the binary tree of
    `bag_count_messages`; padding slots are masked out and fixed at y = 0 there, which is exact."""
    width = problem.bag_members.shape[1]
    if width == 0:  # no bags
        return problem
    pad = ((0, 0), (0, max(2, 1 << (width - 1).bit_length()) - width))
    return problem._replace(
        bag_members=np.pad(problem.bag_members, pad), bag_mask=np.pad(problem.bag_mask, pad)
    )


def _expand_cliques(problem: BPProblem, settings: BPSettings) -> BPProblem:
    """Clique factor: the soft bag penalty as pairwise factors, field_i += -lambda_b (1 - 2 k_b) for every
    member and J_ij = -2 lambda_b for every pair of members; the bags send no messages of their own."""
    members, mask, counts = problem.bag_members, problem.bag_mask, problem.bag_counts
    lambda_b = settings.lambda_b
    field = problem.field + np.bincount(
        members[mask], np.repeat(-lambda_b * (1.0 - 2.0 * counts), mask.sum(axis=1)), len(problem.field)
    )
    first, second = np.triu_indices(members.shape[1], k=1)
    pair_mask = mask[:, first] & mask[:, second]
    a, b = members[:, first][pair_mask], members[:, second][pair_mask]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)])  # in both directions, as BPProblem's edges
    return problem._replace(
        field=field,
        senders=np.concatenate([problem.senders, pairs], axis=1),
        receivers=np.concatenate([problem.receivers, pairs[::-1]], axis=1),
        couplings=np.concatenate([problem.couplings, np.full(pairs.shape, -2.0 * lambda_b)], axis=1),
    )


def _gaussian_messages(cavity, mask, counts, lambda_b, temperature, hard, max_product, bags_per_chunk):
    """`bag_gaussian_messages` in the registry's signature. It has no max-product form (check_settings
    refuses temperature=0) and needs O(|b|) memory per bag, so it takes no chunks."""
    return bag_gaussian_messages(cavity, mask, counts, lambda_b, temperature, hard)


BAG_FACTORS: dict[str, BagFactor] = {
    "count": BagFactor(prepare=_pad_to_power_of_two, messages=bag_count_messages),
    "gaussian": BagFactor(
        prepare=_unchanged,
        messages=_gaussian_messages,
        no_max_product="the Gaussian approximation has no max-product form",
    ),
    "clique": BagFactor(
        prepare=_expand_cliques,
        messages=None,
        no_hard_counts="the clique expands the soft penalty only",
    ),
}
"""Every bag factor by its `BPSettings.bag_factor` name."""
