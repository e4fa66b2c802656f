"""llp_jax: Learning from Label Proportions by belief propagation, in JAX."""

__version__ = "0.1.0"
