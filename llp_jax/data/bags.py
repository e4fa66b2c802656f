"""Bags: which rows are grouped together and how many of them are positive (binary labels), or how many
of them fall in each of K classes (K > 2).

One representation for random, feature and given bags, padded so that bags of different sizes batch
together on the device.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from llp_jax.data.dataset import Split, check_n_classes
from llp_jax.degenerate import warn_degenerate

# Fewer training bags than this is a degenerate setup (warn_degenerate): a bag-level loss learns from the
# differences between bags' proportions, which one or two bags hardly have.
MIN_TRAIN_BAGS = 3
# A bag's class counts must sum to its size within this share of it (float rounding of given counts).
COUNT_SUM_RTOL = 1e-6


class Bags(NamedTuple):
    """members: int32[n_bags, max_size]   row indices into the split; padding slots hold 0
    mask:    bool[n_bags, max_size]     True where the slot is a real member
    sizes:   int32[n_bags]              number of members of each bag
    counts:  float32[n_bags]            binary labels: the number of positives k_b (may be fractional for
                                        given proportions)
             float32[n_bags, K]         K > 2 classes: the count vector k_b, rows of each class (each row
                                        sums to the bag's size; may be fractional for given counts)
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
    def n_classes(self) -> int:
        """K: 2 for binary counts (float32[n_bags]), else counts.shape[1]."""
        return 2 if self.counts.ndim == 1 else self.counts.shape[1]

    @property
    def class_counts(self) -> np.ndarray:
        """float32[n_bags, K]: the rows of each class in each bag; binary: [size - k_b, k_b]."""
        if self.counts.ndim == 2:
            return self.counts
        return np.stack([self.sizes - self.counts, self.counts], axis=1).astype(np.float32)

    @property
    def proportions(self) -> np.ndarray:
        """k_b / |b|: float32[n_bags] (binary, the positive share) or float32[n_bags, K] (class shares)."""
        sizes = self.sizes if self.counts.ndim == 1 else self.sizes[:, None]
        return (self.counts / sizes).astype(np.float32)

    @property
    def positive_rate(self) -> float:
        """sum_b k_b / sum_b |b|: the positive rate over all bags (binary counts only; see class_rates)."""
        if self.counts.ndim != 1:
            raise ValueError(
                f"positive_rate is defined for binary bags; these have {self.n_classes} classes, "
                "use class_rates"
            )
        return float(self.counts.sum() / self.sizes.sum())

    @property
    def class_rates(self) -> np.ndarray:
        """float64[K]: each class's share of all rows in bags, sum_b k_b / sum_b |b| class by class."""
        return self.class_counts.sum(axis=0, dtype=np.float64) / float(self.sizes.sum())


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


def _check_labels(labels: np.ndarray, n: int, what: str, n_classes: int = 2) -> np.ndarray:
    """labels as int32[n] in 0..n_classes-1; fails if their length is not n, or naming the values that are
    not classes."""
    n_classes = check_n_classes(n_classes)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels have shape {labels.shape} but {what} has {n} rows; pass one label per row")
    outside = ~np.isin(labels, np.arange(n_classes))
    if outside.any():
        classes = "0 or 1" if n_classes == 2 else f"classes 0..{n_classes - 1}"
        raise ValueError(
            f"labels must be {classes}, found values {np.unique(labels[outside])[:10].tolist()} "
            f"({int(outside.sum())} row(s)); map the labels to {classes} or set n_classes"
        )
    return labels.astype(np.int32)


def _pack(order: np.ndarray, sizes: np.ndarray, counts: np.ndarray) -> Bags:
    """Padded Bags from rows listed bag after bag.

    order:  int[sum(sizes)]  row indices, the members of bag 0, then of bag 1, ...
    sizes:  int[n_bags]      every size >= 1
    counts: float[n_bags] or float[n_bags, K]
    """
    n_bags = len(sizes)
    bag_of = np.repeat(np.arange(n_bags), sizes)
    slot = np.arange(len(order)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    members = np.zeros((n_bags, int(sizes.max())), dtype=np.int32)
    mask = np.zeros(members.shape, dtype=bool)
    members[bag_of, slot] = order
    mask[bag_of, slot] = True
    return Bags(members, mask, sizes.astype(np.int32), np.asarray(counts, dtype=np.float32))


def _label_counts(labels: np.ndarray, order: np.ndarray, sizes: np.ndarray, n_classes: int = 2) -> np.ndarray:
    """The counts of each bag (rows in `order`, bag after bag) from labels (int32[n] in 0..n_classes-1):
    float32[n_bags], the positive members, for 2 classes; float32[n_bags, K], the members of each class,
    for K = n_classes > 2."""
    if n_classes == 2:
        starts = np.cumsum(sizes) - sizes
        return np.add.reduceat(labels[order].astype(np.float64), starts).astype(np.float32)
    bag_of = np.repeat(np.arange(len(sizes)), sizes)
    cells = np.bincount(bag_of * n_classes + labels[order], minlength=len(sizes) * n_classes)
    return cells.reshape(len(sizes), n_classes).astype(np.float32)


def random_bags(
    n: int, bag_size: int, labels: np.ndarray, seed: int, drop_last: bool = False, n_classes: int = 2
) -> Bags:
    """Bags of `bag_size` rows from a seeded shuffle of rows 0..n-1; counts from `labels` (int[n] in
    0..n_classes-1; float32[n_bags] positive counts for 2 classes, float32[n_bags, K] for K > 2).

    When n is not a multiple of bag_size the last bag holds the n % bag_size leftover rows, or is
    dropped (its rows then belong to no bag) if drop_last. A bag_size larger than n gives a single bag
    of all n rows. Same seed, same bags.
    """
    _check_bag_size(bag_size)
    if n < 1:
        raise ValueError(f"cannot make bags of a split with {n} rows")
    labels = _check_labels(labels, n, "the split", n_classes)
    size = min(int(bag_size), n)
    n_full, remainder = divmod(n, size)
    sizes = np.full(n_full + (remainder > 0 and not drop_last), size, dtype=np.int64)
    sizes[n_full:] = remainder
    return _shuffled_bags(labels, sizes, np.random.default_rng(seed).permutation(n), n_classes)


def _shuffled_bags(labels: np.ndarray, sizes: np.ndarray, order: np.ndarray, n_classes: int) -> Bags:
    """Bags of the given sizes (int[n_bags]) filled in turn from the shuffled rows `order` (int[n],
    n >= sum(sizes)); counts from labels (int32[n] in 0..n_classes-1)."""
    order = order[: sizes.sum()]
    return _pack(order, sizes, _label_counts(labels, order, sizes, n_classes))


def sized_random_bags(
    n: int,
    size_range: Sequence[int],
    labels: np.ndarray,
    seed: int,
    drop_last: bool = False,
    n_classes: int = 2,
) -> Bags:
    """Bags of rows 0..n-1 from a seeded shuffle, each of a size drawn uniformly from low..high
    (size_range = (low, high), inclusive); counts from `labels` (int[n] in 0..n_classes-1, as for
    random_bags). Same seed, same bags.

    Sizes are drawn until they cover n rows; the last bag holds the rows left over. If fewer than low
    rows are left over, they join the previous bag (which then has up to high + low - 1 rows), or are
    left out (in no bag) if drop_last. A split of fewer than low rows is refused: its one bag would lie
    outside the range.
    """
    _check_size_range(size_range)
    if n < 1:
        raise ValueError(f"cannot make bags of a split with {n} rows")
    labels = _check_labels(labels, n, "the split", n_classes)
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
    return _shuffled_bags(labels, sizes, order, n_classes)


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
    n_classes: int = 2,
) -> Bags:
    """One bag per distinct value (or pair of values) of 1 or 2 categorical columns, LLP-Bench style.

    categorical: name -> array[n] (Split.categorical); labels: int[n] in 0..n_classes-1 (counts as for
    random_bags).
    Only groups of min_size..max_size rows (inclusive) become bags; the rows of the other groups are
    in no bag (the rows covered are `members[mask]`). Bags come in sorted order of the group values,
    members in row order.
    """
    _check_grouping(columns, min_size, max_size)
    groups, group_of, group_sizes = np.unique(
        _group_codes(categorical, columns), return_inverse=True, return_counts=True
    )
    labels = _check_labels(labels, len(group_of), f"column {columns[0]!r}", n_classes)
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
    return _pack(order, sizes, _label_counts(labels, order, sizes, n_classes))


def given_bags(
    bag_ids: np.ndarray,
    counts: dict[int, float | np.ndarray] | None = None,
    labels: np.ndarray | None = None,
    n_classes: int = 2,
) -> Bags:
    """Bags from a bag id per row (int[n]), in increasing bag-id order; members in row order.

    counts: bag id -> its count, used when given: for 2 classes the positive count, a float within
    [0, its size]; for K = n_classes > 2 the count vector float[K], entries >= 0 summing to the bag's size
    (within COUNT_SUM_RTOL of it: fractions are allowed when they add up). Without counts they are summed
    from labels (int[n] in 0..n_classes-1).
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
        if check_n_classes(n_classes) > 2:
            values = _count_vectors(counts, ids, sizes, n_classes)
        else:
            values = _positive_counts(counts, ids, sizes)
    elif labels is not None:
        labels = _check_labels(labels, len(bag_ids), "bag_ids", n_classes)
        values = _label_counts(labels, order, sizes, n_classes)
    else:
        raise ValueError("given bags need their counts: pass counts (bag id -> count) or labels")
    return _pack(order, sizes, values)


def _positive_counts(counts: dict[int, float], ids: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """float64[n_bags]: the positive counts counts[id] of the bags `ids` (int[n_bags], of `sizes` rows),
    each within [0, its bag's size]."""
    values = np.array([counts[int(i)] for i in ids], dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(
            f"counts hold vectors of length {values.shape[1]} (e.g. bag {int(ids[0])}) but n_classes=2 takes "
            f"one positive count per bag; pass n_classes={values.shape[1]} for count vectors"
        )
    bad = np.flatnonzero(~((values >= 0) & (values <= sizes)))
    if len(bad):
        b = bad[0]
        raise ValueError(
            f"{len(bad)} bag(s) have a count outside [0, bag size], e.g. bag {int(ids[b])}: "
            f"count {values[b]} for {sizes[b]} rows"
        )
    return values


def _count_vectors(
    counts: dict[int, np.ndarray], ids: np.ndarray, sizes: np.ndarray, n_classes: int
) -> np.ndarray:
    """float64[n_bags, K]: the count vectors counts[id] (float[K], K = n_classes) of the bags `ids`
    (int[n_bags], of `sizes` rows); ValueError naming the first bag whose vector has another length, a
    negative or NaN entry, or entries whose sum is off its size by more than COUNT_SUM_RTOL of it."""
    vectors = [np.asarray(counts[int(i)], dtype=np.float64) for i in ids]
    wrong = [b for b, vector in enumerate(vectors) if vector.shape != (n_classes,)]
    if wrong:
        b = wrong[0]
        raise ValueError(
            f"{len(wrong)} bag(s) have a count vector of the wrong length, e.g. bag {int(ids[b])}: length "
            f"{vectors[b].size} for K={n_classes} classes; give one count per class, in class order"
        )
    values = np.stack(vectors)
    bad = np.flatnonzero(~(values >= 0).all(axis=1))
    if len(bad):
        b = bad[0]
        raise ValueError(
            f"{len(bad)} bag(s) have a negative or missing class count, e.g. bag {int(ids[b])}: counts "
            f"{values[b].tolist()}; every class count must be a number >= 0"
        )
    totals = values.sum(axis=1)
    bad = np.flatnonzero(~(np.abs(totals - sizes) <= COUNT_SUM_RTOL * sizes))
    if len(bad):
        b = bad[0]
        raise ValueError(
            f"{len(bad)} bag(s) have class counts that do not sum to the bag size, e.g. bag {int(ids[b])}: "
            f"counts {values[b].tolist()} sum to {totals[b]:g} for {sizes[b]} rows; each bag's class "
            "counts must add up to its number of rows"
        )
    return values


def check_classes_present(bags: Bags, split: str = "train") -> None:
    """ValueError, for K > 2 classes, naming every class that no bag of `split` contains (its counts sum
    to 0 over all bags): a model cannot learn a class it never sees. Binary bags of one class are
    check_bags_learnable's (a degenerate setup)."""
    if bags.n_classes == 2:
        return
    missing = np.flatnonzero(bags.counts.sum(axis=0, dtype=np.float64) == 0).tolist()
    if missing:
        raise ValueError(
            f"class(es) {missing} of the {bags.n_classes} classes appear in no bag of the {split} split "
            f"({bags.n_bags} bag(s) of {int(bags.sizes.sum())} rows): nothing teaches a model those "
            "classes; use more data (or other bags) that contain them, or fewer classes"
        )


def check_bags_learnable(bags: Bags, split: str = "train") -> None:
    """warn_degenerate (llp_jax.degenerate; an error under strict=true) when the bags of `split` leave
    nothing to learn: fewer than MIN_TRAIN_BAGS bags, or every bag of one class (binary: no positive
    row, or no negative row, in any bag; K classes: every count in one class's column)."""
    rows = int(bags.sizes.sum())
    if bags.n_bags < MIN_TRAIN_BAGS:
        warn_degenerate(
            f"the {split} split has {bags.n_bags} bag(s) of {rows} rows: a bag-level loss learns from the "
            f"differences between bags, so fewer than {MIN_TRAIN_BAGS} bags leave almost nothing to learn; "
            "use smaller bags (e.g. bagging.bag_size=32) or more bags in the data"
        )
    if bags.n_classes == 2:
        total = float(bags.counts.sum())
        one_class = total == 0 or total == rows
        kind = "negative (count 0)" if total == 0 else "positive (count = size)"
    else:
        present = np.flatnonzero(bags.counts.sum(axis=0, dtype=np.float64) > 0)
        one_class = len(present) == 1
        kind = f"of class {present[0]} (every count in its column)" if one_class else "mixed"
    if one_class:
        warn_degenerate(
            f"every bag of the {split} split is fully {kind}, {bags.n_bags} bag(s) of {rows} rows: one class "
            "only, nothing tells the classes apart; check the counts or the labels"
        )


def make_bags(
    split: Split,
    settings: BaggingSettings,
    seed: int = 0,
    counts: dict[int, float | np.ndarray] | None = None,
    n_classes: int = 2,
) -> Bags:
    """The bags of any split by `settings` (BaggingSettings): kind "random" (bag_size, seed, drop_last;
    sized_random_bags when size_range is set), "feature" (columns, min_size, max_size) or "given" (the
    split's bag_ids, with `counts`, e.g. Dataset.given_counts["train"], or else counts from the split's
    labels). n_classes (Dataset.n_classes): binary counts float32[n_bags] for 2, count vectors
    float32[n_bags, K] for K > 2.
    """
    kind = settings.kind
    if kind not in BAG_KINDS:
        raise ValueError(f"unknown bag kind {kind!r}; choose one of {list(BAG_KINDS)}")
    if kind == "given":
        if split.bag_ids is None:
            raise ValueError(
                "kind='given' needs a split with bag_ids; this dataset is not bagged, use random or feature"
            )
        return given_bags(split.bag_ids, counts, split.y, n_classes)
    if split.y is None:
        raise ValueError(
            f"kind={kind!r} computes bag counts from instance labels, but this split has none (y is None); "
            "use kind='given' with the dataset's given_counts"
        )
    if kind == "random" and settings.size_range is not None:
        return sized_random_bags(split.n, settings.size_range, split.y, seed, settings.drop_last, n_classes)
    if kind == "random":
        return random_bags(split.n, settings.bag_size, split.y, seed, settings.drop_last, n_classes)
    return feature_bags(
        split.categorical, list(settings.columns), split.y, settings.min_size, settings.max_size, n_classes
    )
