"""The Hydra configs of llp_jax, shipped in the package (a package so that Hydra finds it by module)."""
