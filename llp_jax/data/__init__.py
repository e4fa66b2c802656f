"""Datasets and bags.

    load_dataset(name, data_dir=None, seed=0, **options) -> Dataset
    make_bags(split, BaggingSettings(kind, ...), seed) -> Bags

Datasets: synthetic (built in), bank_marketing, adult, fashion_mnist (public files in the data
directory, see llp_jax.data.paths) and files (the researcher's own tables).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from llp_jax.data import adult, bank_marketing, fashion_mnist, files, synthetic
from llp_jax.data.bags import (
    BaggingSettings,
    BagKind,
    Bags,
    check_bagging,
    feature_bags,
    given_bags,
    make_bags,
    random_bags,
)
from llp_jax.data.dataset import Dataset, Split
from llp_jax.data.paths import resolve_data_dir

LOADERS: dict[str, Callable[..., Dataset]] = {
    "synthetic": synthetic.load,
    "bank_marketing": bank_marketing.load,
    "adult": adult.load,
    "fashion_mnist": fashion_mnist.load,
    "files": files.load,
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, seed: int = 0, **options) -> Dataset:
    """The dataset `name` with its loader's `options` (see each module's `load`)."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {sorted(LOADERS)}")
    accepted = [p for p in inspect.signature(LOADERS[name]).parameters if p not in ("data_dir", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"dataset {name!r} has no option(s) {unknown}; its options are {accepted}")
    return LOADERS[name](data_dir=data_dir, seed=seed, **options)


__all__ = [
    "LOADERS",
    "BagKind",
    "Bags",
    "BaggingSettings",
    "Dataset",
    "Split",
    "check_bagging",
    "feature_bags",
    "given_bags",
    "load_dataset",
    "make_bags",
    "random_bags",
    "resolve_data_dir",
]
