"""The in-memory form every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    x: float32[n, *feature_shape]   features (tabular: (n, d); images: (n, 28, 28, 1))
    y: int32[n] or None             instance labels in {0, 1}; None where the data have none
                                    (the training split of the `files` dataset)
    categorical: raw categorical columns, name -> object[n], for feature bags (tabular data only)
    bag_ids: int64[n] or None       bag id of every row where the data come already bagged
    """

    x: np.ndarray
    y: np.ndarray | None
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    bag_ids: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.x)
        for name, column in [("y", self.y), ("bag_ids", self.bag_ids), *self.categorical.items()]:
            if column is not None and len(column) != n:
                raise ValueError(f"column {name!r} has {len(column)} rows but x has {n}; they must match")

    @property
    def n(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Dataset:
    """train / validation / test splits plus what the loader knows of the data.

    given_counts: for data that arrive bagged, bag id -> positive count per split name
                  ({"train": {id: count}, "val": {...}}); empty otherwise.
    """

    name: str
    train: Split
    val: Split
    test: Split
    given_counts: dict[str, dict[int, float]] = field(default_factory=dict)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def holdout_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded hold-out of round(val_fraction * n) items (at least 1) out of n.

    Returns (train_index, val_index): int64[n - n_val], int64[n_val], each in increasing order.
    """
    if n < 2:
        raise ValueError(f"cannot hold out a validation part of {n} item(s); at least 2 are needed")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
