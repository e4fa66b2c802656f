"""Edge weights of the similarity graph: a kernel applied to the distance between the two endpoints.

  matern12  exp(-d / lengthscale)                  (default, as in the paper's code)
  rbf       exp(-d^2 / (2 lengthscale^2))
  cosine    1 - d, the raw cosine similarity; d must be the cosine distance, lengthscale is unused.
            It is negative for points more than 90 degrees apart.

The lengthscale is a positive number or "median": the median of the kNN edge distances.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

KERNELS = ("matern12", "rbf", "cosine")


def check_kernel(kernel: str, weight_distance: str, lengthscale: float | str) -> None:
    """Raise ValueError for an unknown kernel, a cosine kernel on a non-cosine distance, or a
    lengthscale that is neither a positive finite number nor "median"."""
    if kernel not in KERNELS:
        raise ValueError(f"graph.kernel={kernel!r} is not a known kernel; use one of {KERNELS}.")
    if kernel == "cosine" and weight_distance != "cosine":
        raise ValueError(
            f"graph.kernel='cosine' weighs edges by cosine similarity, so it needs weight_distance='cosine'; "
            f"got weight_distance={weight_distance!r}. Use kernel='matern12' or 'rbf' for that distance."
        )
    if lengthscale == "median":
        return
    if isinstance(lengthscale, bool) or not isinstance(lengthscale, int | float):
        raise ValueError(f"graph.lengthscale={lengthscale!r} must be a positive number or 'median'.")
    if not (math.isfinite(lengthscale) and lengthscale > 0):
        raise ValueError(f"graph.lengthscale={lengthscale!r} must be positive and finite (or 'median').")


def median_lengthscale(distances) -> float:
    """The median of the edge distances float32[n_edges] (numpy or JAX), as a lengthscale: jnp.median's
    value, found on the host (np.partition; no program compiled for each edge count). The mean of the
    two middle values of an even count is 0.5 a + 0.5 b rounded once to float32, as jnp.median rounds it.

    Raises ValueError when it is 0 (half the edges join duplicate points), which no kernel can use.
    """
    values = np.asarray(distances, np.float32).reshape(-1)
    if values.size == 0:
        raise ValueError("the graph has no edges, so lengthscale='median' has nothing to measure")
    low, high = (values.size - 1) // 2, values.size // 2
    middle = np.partition(values, [low, high])
    half = np.float32(0.5)
    median = float(middle[low] if low == high else middle[low] * half + middle[high] * half)
    if not median > 0:
        raise ValueError(
            f"the median kNN distance is {median:g} (many duplicate points), so lengthscale='median' "
            "cannot be used; pass a positive number as lengthscale."
        )
    return median


def matern12(distances: jax.Array, lengthscale: float) -> jax.Array:
    """float32[...] -> float32[...]: exp(-d / lengthscale)."""
    return jnp.exp(-distances / lengthscale)


def rbf(distances: jax.Array, lengthscale: float) -> jax.Array:
    """float32[...] -> float32[...]: exp(-d^2 / (2 lengthscale^2))."""
    return jnp.exp(-jnp.square(distances / lengthscale) / 2.0)


def cosine_similarity(distances: jax.Array) -> jax.Array:
    """float32[...] cosine distances -> float32[...] cosine similarities 1 - d."""
    return 1.0 - distances


def edge_weights(distances: jax.Array, kernel: str = "matern12", lengthscale: float = 1.0) -> jax.Array:
    """Kernel weights float32[n_edges] of edges with distances float32[n_edges].

    kernel: "matern12", "rbf" or "cosine" (see the module docstring); lengthscale: a positive float
    (already resolved from "median" by the caller; unused by "cosine").
    """
    distances = jnp.asarray(distances, jnp.float32)
    if kernel == "matern12":
        return matern12(distances, lengthscale)
    if kernel == "rbf":
        return rbf(distances, lengthscale)
    if kernel == "cosine":
        return cosine_similarity(distances)
    raise ValueError(f"kernel={kernel!r} is not a known kernel; use one of {KERNELS}.")
