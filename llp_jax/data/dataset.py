"""The in-memory form every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from llp_jax.streams import stream_seed

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """One split of a dataset.

    x: float32[n, *feature_shape]   features (tabular: (n, d); images: (n, 28, 28, 1))
    y: int32[n] or None             instance labels, the classes 0..n_classes-1 of the Dataset ({0, 1}
                                    for binary data); None where the data have none (the training split
                                    of the `files` dataset)
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

    given_counts: for data that arrive bagged, bag id -> its count per split name
                  ({"train": {id: count}, "val": {...}}); empty otherwise. The count is the number of
                  positive rows (a float) for binary data, the count vector float64[n_classes] (rows of
                  each class, summing to the bag size) when n_classes > 2.
    n_classes:    the number of label classes K >= 2; Split.y holds 0..K-1.
    """

    name: str
    train: Split
    val: Split
    test: Split
    given_counts: dict[str, dict[int, float | np.ndarray]] = field(default_factory=dict)
    n_classes: int = 2

    def __post_init__(self):
        check_n_classes(self.n_classes)
        for name in SPLITS:
            _check_finite(getattr(self, name).x, name)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])


def check_n_classes(n_classes: int, key: str = "n_classes") -> int:
    """n_classes as an int; ValueError naming `key` unless it is an integer >= 2 (the number of label
    classes: 2 for a binary task)."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise ValueError(
            f"{key}={n_classes!r} must be an integer >= 2 (the number of label classes; 2 is the binary "
            f"task), e.g. {key}=5"
        )
    return int(n_classes)


def _check_finite(x: np.ndarray, name: str) -> None:
    """ValueError naming the split `name`, how many rows of x (float[n, *feature_shape]) hold a NaN or
    an infinite feature and the first of them; every dataset passes here when it is built."""
    bad = np.flatnonzero(~np.isfinite(x).all(axis=tuple(range(1, x.ndim))))
    if len(bad):
        raise ValueError(
            f"the {name} split has {len(bad)} row(s) with NaN or infinite features, the first is row "
            f"{bad[0]} of the split; remove or impute those values in the source data"
        )


def holdout_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded hold-out of round(val_fraction * n) items (at least 1) out of n.

    Returns (train_index, val_index): int64[n - n_val], int64[n_val], each in increasing order.
    """
    if n < 2:
        raise ValueError(f"cannot hold out a validation part of {n} item(s); at least 2 are needed")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(
            f"dataset.val_fraction={val_fraction} must lie strictly between 0 and 1 (the share held out "
            "for validation), e.g. dataset.val_fraction=0.1"
        )
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def _take(split: Split, rows: np.ndarray) -> Split:
    """The rows `rows` (int[m]) of every per-row field of `split`, in that order."""
    return Split(
        x=split.x[rows],
        y=None if split.y is None else split.y[rows],
        categorical={name: column[rows] for name, column in split.categorical.items()},
        bag_ids=None if split.bag_ids is None else split.bag_ids[rows],
    )


def thin_positives(split: Split, rate: float, rng: np.random.Generator, name: str = "split") -> Split:
    """`split` less a random subset of its positive rows, so that its positive rate becomes `rate`.

    Keeps every negative and k = round(rate * n_neg / (1 - rate)) positives drawn by `rng` (so k is
    within one row of rate * (n_neg + k)); kept rows stay in their order, with x, y, categorical columns
    and bag_ids alike. `rate` must lie in (0, current rate]; `name` names the split in that error.
    """
    if split.y is None:
        raise ValueError(f"cannot thin the positives of the {name} split: it has no labels (y is None)")
    positives = np.flatnonzero(split.y == 1)
    current = len(positives) / split.n
    if not 0.0 < rate <= current:
        raise ValueError(
            f"dataset.positive_rate={rate} is outside (0, {current:.4f}], the {name} split's current "
            f"positive rate ({len(positives)} of {split.n} rows): thinning only removes positives, so "
            f"choose a rate above 0 and at most {current:.4f}, or positive_rate=null to keep every row"
        )
    n_negative = split.n - len(positives)
    n_keep = len(positives) if rate == current else round(rate * n_negative / (1.0 - rate))
    kept = np.ones(split.n, dtype=bool)
    kept[rng.choice(positives, size=len(positives) - n_keep, replace=False)] = False
    return _take(split, np.flatnonzero(kept))


def thin_dataset(dataset: Dataset, rate: float | None, seed: int) -> Dataset:
    """`dataset` with thin_positives(rate) applied to its train, val and test splits, each from its own
    stream ("thin_positives", split) of `seed`, apart from the loaders' hold-out (same seed, same rows);
    unchanged when rate is None. Binary data only: a dataset of more classes has no positives to thin."""
    if rate is None:
        return dataset
    if dataset.n_classes > 2:
        raise ValueError(
            f"dataset.positive_rate={rate} thins the positive class of a binary task, but the "
            f"{dataset.name} data have {dataset.n_classes} classes; set dataset.positive_rate=null"
        )
    thinned = {
        name: thin_positives(
            getattr(dataset, name),
            rate,
            np.random.default_rng(stream_seed(seed, "thin_positives", name)),
            name,
        )
        for name in SPLITS
    }
    return replace(dataset, **thinned)
