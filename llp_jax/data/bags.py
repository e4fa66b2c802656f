"""Bags: which rows are grouped together and how many of them are positive.

One representation for random, feature and given bags, padded so that bags of different sizes batch
together on the device.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from llp_jax.data.dataset import Split
from llp_jax.degenerate import warn_degenerate

# Fewer training bags than this is a degenerate setup (warn_degenerate): a bag-level loss learns from the
# differences between bags' proportions, which one or two bags hardly have.
MIN_TRAIN_BAGS = 3


class Bags(NamedTuple):
    """members: int32[n_bags, max_size]   row indices into the split; padding slots hold 0
    mask:    bool[n_bags, max_size]     True where the slot is a real member
    sizes:   int32[n_bags]              number of members of each bag
    counts:  float32[n_bags]            number of positives k_b (may be fractional for given proportions)
    """

    members: np.ndarray
    mask: np.ndarray
    sizes: np.ndarray
    counts: np.ndarray

    @property
    def n_bags(self) -> int:
        return len(self.sizes)

    @property
    def max_size(self) -> int:
        return self.members.shape[1]

    @property
    def proportions(self) -> np.ndarray:
        """float32[n_bags]: k_b / |b|."""
        return (self.counts / self.sizes).astype(np.float32)

    @property
    def positive_rate(self) -> float:
        """sum_b k_b / sum_b |b|: the positive rate over all bags."""
        return float(self.counts.sum() / self.sizes.sum())


BAG_KINDS = ("random", "feature", "given")
BagKind = enum.StrEnum("BagKind", {name: name for name in BAG_KINDS})


class BaggingSettings(NamedTuple):
    """How a split's rows are grouped into bags. kind: random (bag_size rows from a seeded shuffle; the
    last bag holds the leftover rows, or is dropped with drop_last; with size_range=(low, high) each bag
    size is instead drawn uniformly from low..high and bag_size is ignored, see sized_random_bags),
    feature (one bag per value of 1 or 2 categorical `columns`, keeping groups of min_size..max_size rows)
    or given (the data's bag ids)."""

    kind: BagKind = BagKind.random
    bag_size: int = 32
    drop_last: bool = False
    columns: tuple[str, ...] = ()
    min_size: int = 8
    max_size: int = 4096
    size_range: tuple[int, int] | None = None


def check_bagging(settings: BaggingSettings) -> None:
    """Raise ValueError naming the first bad setting that `settings.kind` reads, with its fix; the
    application checks it before any data is loaded."""
    if settings.kind == "random" and settings.size_range is not None:
        _check_size_range(settings.size_range)
    elif settings.kind == "random":
        _check_bag_size(settings.bag_size)
    elif settings.kind == "feature":
        _check_grouping(settings.columns, settings.min_size, settings.max_size)


def _check_bag_size(bag_size: int) -> None:
    if isinstance(bag_size, bool) or not isinstance(bag_size, int | np.integer) or bag_size < 1:
        raise ValueError(
            f"bagging.bag_size={bag_size!r} must be an integer >= 1 (rows per bag), e.g. bagging.bag_size=32"
        )


def _check_size_range(size_range: Sequence[int]) -> None:
    if len(size_range) != 2 or not 1 <= size_range[0] <= size_range[1]:
        raise ValueError(
            f"bagging.size_range={list(size_range)}; expected two integers [low, high] with "
            "1 <= low <= high, e.g. bagging.size_range=[500,1500]"
        )


def _check_grouping(columns: Sequence[str], min_size: int, max_size: int) -> None:
    if not 1 <= len(columns) <= 2:
        raise ValueError(
            f"bagging.columns={list(columns)}; feature bags group rows by 1 or 2 categorical columns, "
            "e.g. 'bagging.columns=[education,occupation]'"
        )
    if not 1 <= min_size <= max_size:
        raise ValueError(
            f"bagging.min_size={min_size} and bagging.max_size={max_size}: need 1 <= min_size <= max_size "
            "(the rows a group needs to become a bag), e.g. bagging.min_size=8 bagging.max_size=4096"
        )


def _check_labels(labels: np.ndarray, n: int, what: str) -> np.ndarray:
    """labels as int32[n] in {0, 1}; fails if their length is not n or a value is not 0/1."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels have shape {labels.shape} but {what} has {n} rows; pass one label per row")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, found values {np.unique(labels)[:10].tolist()}")
    return labels.astype(np.int32)


def _pack(order: np.ndarray, sizes: np.ndarray, counts: np.ndarray) -> Bags:
    """Padded Bags from rows listed bag after bag.

    order:  int[sum(sizes)]  row indices, the members of bag 0, then of bag 1, ...
    sizes:  int[n_bags]      every size >= 1
    counts: float[n_bags]
    """
    n_bags = len(sizes)
    bag_of = np.repeat(np.arange(n_bags), sizes)
    slot = np.arange(len(order)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    members = np.zeros((n_bags, int(sizes.max())), dtype=np.int32)
    mask = np.zeros(members.shape, dtype=bool)
    members[bag_of, slot] = order
    mask[bag_of, slot] = True
    return Bags(members, mask, sizes.astype(np.int32), np.asarray(counts, dtype=np.float32))


def _label_counts(labels: np.ndarray, order: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """float32[n_bags]: the number of positive members of each bag (rows in `order`, bag after bag)."""
    starts = np.cumsum(sizes) - sizes
    return np.add.reduceat(labels[order].astype(np.float64), starts).astype(np.float32)


def random_bags(n: int, bag_size: int, labels: np.ndarray, seed: int, drop_last: bool = False) -> Bags:
    """Bags of `bag_size` rows from a seeded shuffle of rows 0..n-1; counts from `labels` (int[n]).

    When n is not a multiple of bag_size the last bag holds the n % bag_size leftover rows, or is
    dropped (its rows then belong to no bag) if drop_last. A bag_size larger than n gives a single bag
    of all n rows. Same seed, same bags.
    """
    _check_bag_size(bag_size)
    if n < 1:
        raise ValueError(f"cannot make bags of a split with {n} rows")
    labels = _check_labels(labels, n, "the split")
    size = min(int(bag_size), n)
    n_full, remainder = divmod(n, size)
    sizes = np.full(n_full + (remainder > 0 and not drop_last), size, dtype=np.int64)
    sizes[n_full:] = remainder
    return _shuffled_bags(labels, sizes, np.random.default_rng(seed).permutation(n))


def _shuffled_bags(labels: np.ndarray, sizes: np.ndarray, order: np.ndarray) -> Bags:
    """Bags of the given sizes (int[n_bags]) filled in turn from the shuffled rows `order` (int[n],
    n >= sum(sizes)); counts from labels (int32[n])."""
    order = order[: sizes.sum()]
    return _pack(order, sizes, _label_counts(labels, order, sizes))


def sized_random_bags(
    n: int, size_range: Sequence[int], labels: np.ndarray, seed: int, drop_last: bool = False
) -> Bags:
    """Bags of rows 0..n-1 from a seeded shuffle, each of a size drawn uniformly from low..high
    (size_range = (low, high), inclusive); counts from `labels` (int[n]). Same seed, same bags.

    Sizes are drawn until they cover n rows; the last bag holds the rows left over. If fewer than low
    rows are left over, they join the previous bag (which then has up to high + low - 1 rows), or are
    left out (in no bag) if drop_last. A split of fewer than low rows is refused: its one bag would lie
    outside the range.
    """
    _check_size_range(size_range)
    if n < 1:
        raise ValueError(f"cannot make bags of a split with {n} rows")
    labels = _check_labels(labels, n, "the split")
    low, high = (int(bound) for bound in size_range)
    if n < low:
        raise ValueError(
            f"bagging.size_range={[low, high]}: a split of {n} rows cannot hold one bag of {low} rows or "
            f"more; give a range whose low end is at most {n}, "
            f"e.g. bagging.size_range=[{max(1, n // 8)},{max(1, n // 4)}]"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    sizes = rng.integers(low, high, size=-(-n // low), endpoint=True)
    n_bags = int(np.searchsorted(np.cumsum(sizes), n)) + 1  # the first n_bags sizes cover n rows
    sizes = sizes[:n_bags]
    sizes[-1] = n - sizes[:-1].sum()
    if sizes[-1] < low and n_bags > 1:
        sizes = sizes[:-1] if drop_last else np.append(sizes[:-2], sizes[-2] + sizes[-1])
    return _shuffled_bags(labels, sizes, order)


def _group_codes(categorical: dict[str, np.ndarray], columns: Sequence[str]) -> np.ndarray:
    """int64[n]: one code per distinct combination of the values of `columns`."""
    unknown = [name for name in columns if name not in categorical]
    if unknown:
        raise ValueError(f"unknown categorical column(s) {unknown}; available: {sorted(categorical)}")
    codes = np.zeros(len(categorical[columns[0]]), dtype=np.int64)
    for name in columns:
        column_codes, levels = pd.factorize(categorical[name], sort=True, use_na_sentinel=False)
        codes = codes * len(levels) + column_codes
    return codes


def feature_bags(
    categorical: dict[str, np.ndarray],
    columns: Sequence[str],
    labels: np.ndarray,
    min_size: int,
    max_size: int,
) -> Bags:
    """One bag per distinct value (or pair of values) of 1 or 2 categorical columns, LLP-Bench style.

    categorical: name -> array[n] (Split.categorical); labels: int[n] in {0, 1}.
    Only groups of min_size..max_size rows (inclusive) become bags; the rows of the other groups are
    in no bag (the rows covered are `members[mask]`). Bags come in sorted order of the group values,
    members in row order.
    """
    _check_grouping(columns, min_size, max_size)
    groups, group_of, group_sizes = np.unique(
        _group_codes(categorical, columns), return_inverse=True, return_counts=True
    )
    labels = _check_labels(labels, len(group_of), f"column {columns[0]!r}")
    keep = (group_sizes >= min_size) & (group_sizes <= max_size)
    if not keep.any():
        raise ValueError(
            f"no group of {list(columns)} has between {min_size} and {max_size} rows: the {len(groups)} "
            f"groups have {group_sizes.min()} to {group_sizes.max()} rows; widen min_size/max_size "
            "or group by other columns"
        )
    order = np.argsort(group_of, kind="stable")
    order = order[keep[group_of[order]]]
    sizes = group_sizes[keep]
    return _pack(order, sizes, _label_counts(labels, order, sizes))


def given_bags(
    bag_ids: np.ndarray, counts: dict[int, float] | None = None, labels: np.ndarray | None = None
) -> Bags:
    """Bags from a bag id per row (int[n]), in increasing bag-id order; members in row order.

    counts: bag id -> positive count, used when given; else the counts are summed from labels (int[n]).
    Every bag must have a count within [0, its size].
    """
    bag_ids = np.asarray(bag_ids)
    if bag_ids.ndim != 1 or not np.issubdtype(bag_ids.dtype, np.integer):
        raise ValueError(
            f"bag_ids must be a 1-d integer array, got dtype {bag_ids.dtype} shape {bag_ids.shape}"
        )
    if len(bag_ids) == 0:
        raise ValueError("bag_ids is empty: there are no rows to put in bags")
    ids, bag_of, sizes = np.unique(bag_ids, return_inverse=True, return_counts=True)
    order = np.argsort(bag_of, kind="stable")
    if counts is not None:
        missing = [int(i) for i in ids if int(i) not in counts]
        if missing:
            raise ValueError(
                f"{len(missing)} bag id(s) have no count, e.g. {missing[:5]}; add them to counts"
            )
        values = np.array([counts[int(i)] for i in ids], dtype=np.float64)
        bad = np.flatnonzero(~((values >= 0) & (values <= sizes)))
        if len(bad):
            b = bad[0]
            raise ValueError(
                f"{len(bad)} bag(s) have a count outside [0, bag size], e.g. bag {int(ids[b])}: "
                f"count {values[b]} for {sizes[b]} rows"
            )
    elif labels is not None:
        values = _label_counts(_check_labels(labels, len(bag_ids), "bag_ids"), order, sizes)
    else:
        raise ValueError("given bags need their counts: pass counts (bag id -> count) or labels")
    return _pack(order, sizes, values)


def check_bags_learnable(bags: Bags, split: str = "train") -> None:
    """warn_degenerate (llp_jax.degenerate; an error under strict=true) when the bags of `split` leave
    nothing to learn: fewer than MIN_TRAIN_BAGS bags, or every bag of one class (no positive row, or no
    negative row, in any bag)."""
    rows = int(bags.sizes.sum())
    if bags.n_bags < MIN_TRAIN_BAGS:
        warn_degenerate(
            f"the {split} split has {bags.n_bags} bag(s) of {rows} rows: a bag-level loss learns from the "
            f"differences between bags, so fewer than {MIN_TRAIN_BAGS} bags leave almost nothing to learn; "
            "use smaller bags (e.g. bagging.bag_size=32) or more bags in the data"
        )
    total = float(bags.counts.sum())
    if total == 0 or total == rows:
        kind = "negative (count 0)" if total == 0 else "positive (count = size)"
        warn_degenerate(
            f"every bag of the {split} split is fully {kind}, {bags.n_bags} bag(s) of {rows} rows: one class "
            "only, nothing tells the classes apart; check the counts or the labels"
        )


def make_bags(
    split: Split, settings: BaggingSettings, seed: int = 0, counts: dict[int, float] | None = None
) -> Bags:
    """The bags of any split by `settings` (BaggingSettings): kind "random" (bag_size, seed, drop_last;
    sized_random_bags when size_range is set), "feature" (columns, min_size, max_size) or "given" (the
    split's bag_ids, with `counts`, e.g. Dataset.given_counts["train"], or else counts from the split's
    labels).
    """
    kind = settings.kind
    if kind not in BAG_KINDS:
        raise ValueError(f"unknown bag kind {kind!r}; choose one of {list(BAG_KINDS)}")
    if kind == "given":
        if split.bag_ids is None:
            raise ValueError(
                "kind='given' needs a split with bag_ids; this dataset is not bagged, use random or feature"
            )
        return given_bags(split.bag_ids, counts, split.y)
    if split.y is None:
        raise ValueError(
            f"kind={kind!r} computes bag counts from instance labels, but this split has none (y is None); "
            "use kind='given' with the dataset's given_counts"
        )
    if kind == "random" and settings.size_range is not None:
        return sized_random_bags(split.n, settings.size_range, split.y, seed, settings.drop_last)
    if kind == "random":
        return random_bags(split.n, settings.bag_size, split.y, seed, settings.drop_last)
    return feature_bags(
        split.categorical, list(settings.columns), split.y, settings.min_size, settings.max_size
    )
