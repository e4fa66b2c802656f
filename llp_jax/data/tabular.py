"""Tabular encoding shared by the adult and files loaders (and the standardising of bank marketing).

Numeric columns are standardised and categorical ones one-hot encoded, with statistics and category
lists fitted on the training rows only. A category unseen in training encodes as all zeros. Categorical
values are compared as strings, so a missing-value marker such as "?" is a category of its own.

The statistics are computed in float64 on each column divided by its largest magnitude where that lies
beyond 1e±150, so that a column of 1e200s or 1e-300s keeps its spread (squared, its values overflowed or
underflowed, and the column became 0). A value more than _OUTLIER_SPREADS robust spreads (interquartile
ranges) from its column's training median is refused, in the training rows and every other split alike:
one such cell would dominate the standard deviation and squash the rest of its column to 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from llp_jax.degenerate import warn_degenerate

# A numeric column whose training standard deviation is below this (relative to its magnitude) is
# treated as constant: it is centred but not scaled, so it encodes as zeros instead of blowing up.
_CONSTANT_RTOL = 1e-7
# A value this many interquartile ranges from its column's training median is refused (ValueError naming
# the column and the row): a cell of 1e300 among values of 1 to 5 made the whole column 0.0.
_OUTLIER_SPREADS = 1e6
# A categorical column of more levels than this warns (llp_jax.degenerate): one-hot encoding a number
# column listed among the categorical ones (1,080 levels of 1,400 rows) gives a feature per value.
MANY_LEVELS = 100
# Magnitudes outside (1e-150, 1e150) are divided out before the moments are taken (squares stay finite).
_SAFE_MAGNITUDE = 1e150


def categorical_arrays(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """The raw categorical columns as strings: name -> object[n] (for Split.categorical)."""
    return {name: frame[name].astype(str).to_numpy(dtype=object) for name in columns}


def _numeric_matrix(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """float64[n, len(columns)]; fails on non-numeric or missing values, naming the column."""
    for name in columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            raise ValueError(
                f"column {name!r} is not numeric (dtype {frame[name].dtype}); list it among the "
                "categorical columns or convert it to numbers"
            )
        missing = int(frame[name].isna().sum())
        if missing:
            raise ValueError(
                f"numeric column {name!r} has {missing} missing values; impute them or list the "
                "column among the categorical columns"
            )
    return frame[list(columns)].to_numpy(dtype=np.float64).reshape(len(frame), len(columns))


def _moments(finite: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std, magnitude), float64[c] each, of `finite` (float64[n, c], NaN where not finite), each
    column divided by its largest magnitude first where that lies outside (1/_SAFE_MAGNITUDE,
    _SAFE_MAGNITUDE), so that its squares neither overflow nor underflow."""
    magnitude = np.max(np.where(np.isnan(finite), 0.0, np.abs(finite)), axis=0, initial=0.0)
    safe = (magnitude > 1 / _SAFE_MAGNITUDE) & (magnitude < _SAFE_MAGNITUDE)
    unit = np.where(safe | (magnitude == 0), 1.0, magnitude)
    scaled = finite / unit
    return np.nanmean(scaled, axis=0) * unit, np.nanstd(scaled, axis=0) * unit, magnitude


def _robust_spread(column: np.ndarray) -> tuple[float, float]:
    """(median, spread) of `column` (float64[n], NaN where not finite): the spread is its interquartile
    range, or where that is 0 (a column mostly of one value) that of the values other than the median;
    inf where neither is above float rounding (the column is not checked for outliers)."""
    values = column[~np.isnan(column)]
    if len(values) == 0:
        return 0.0, np.inf
    median = float(np.median(values))
    low, high = np.percentile(values, [25, 75])
    others = values[values != median]
    if high - low == 0 and len(others) >= 2:
        low, high = np.percentile(others, [25, 75])
    spread = float(high - low)
    return median, spread if spread > _CONSTANT_RTOL * abs(median) and np.isfinite(spread) else np.inf


@dataclass(frozen=True)
class TabularEncoder:
    """Standardise numeric columns, one-hot encode categorical ones; fitted with `TabularEncoder.fit`.

    numeric_columns: names of the standardised columns, in output order
    mean, scale:     float64[n_numeric]   training mean and standard deviation (1 for constant columns)
    categories:      column -> str[n_levels], the levels seen in training, in one-hot order
    median, spread:  float64[n_numeric]   training median and robust spread (`_robust_spread`), against
                                          which every split's values are checked for outliers
    Output columns: the numeric ones, then each categorical column's one-hot block.
    """

    numeric_columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    categories: dict[str, np.ndarray]
    median: np.ndarray | None = None
    spread: np.ndarray | None = None

    @classmethod
    def fit(
        cls, train: pd.DataFrame, numeric_columns: Sequence[str], categorical_columns: Sequence[str] = ()
    ) -> TabularEncoder:
        """Fit on the training rows only; infinite values are left out of the statistics, so that they
        stay in their own rows (where Dataset rejects them) instead of spreading to the whole column.
        A column whose standard deviation is below _CONSTANT_RTOL of its largest magnitude is constant
        (scale 1). A categorical column of more than MANY_LEVELS levels warns (warn_degenerate)."""
        values = _numeric_matrix(train, numeric_columns)
        finite = np.where(np.isfinite(values), values, np.nan)
        mean, std, magnitude = _moments(finite)
        scale = np.where(std > _CONSTANT_RTOL * magnitude, std, 1.0)
        robust = [_robust_spread(finite[:, j]) for j in range(finite.shape[1])]
        median = np.array([center for center, _ in robust], dtype=np.float64)
        spread = np.array([width for _, width in robust], dtype=np.float64)
        categories = {
            name: np.unique(train[name].astype(str).to_numpy(dtype=str)) for name in categorical_columns
        }
        for name, levels in categories.items():
            if len(levels) > MANY_LEVELS:
                warn_degenerate(
                    f"categorical column {name!r} has {len(levels)} levels in {len(train)} training rows "
                    f"(more than {MANY_LEVELS}): one-hot encoding gives it {len(levels)} features, most of "
                    "them seen in few rows; if it holds numbers, drop it from the categorical columns"
                )
        return cls(tuple(numeric_columns), mean, scale, categories, median, spread)

    @property
    def n_features(self) -> int:
        return len(self.numeric_columns) + sum(len(levels) for levels in self.categories.values())

    @property
    def feature_names(self) -> list[str]:
        """Names of the output columns: numeric names, then "column=level" for each one-hot column."""
        one_hot = [f"{name}={level}" for name, levels in self.categories.items() for level in levels]
        return [*self.numeric_columns, *one_hot]

    def _check_outliers(self, values: np.ndarray, rows: pd.Index) -> None:
        """ValueError naming the first column of `values` (float64[n, n_numeric], of the rows `rows`) that
        holds a finite value more than _OUTLIER_SPREADS robust spreads from its training median."""
        if self.median is None or self.spread is None:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            distance = np.abs(values - self.median) / self.spread
        far = np.isfinite(values) & (distance > _OUTLIER_SPREADS)
        for j in np.flatnonzero(far.any(axis=0)):
            i = int(np.flatnonzero(far[:, j])[0])
            raise ValueError(
                f"numeric column {self.numeric_columns[j]!r} holds {int(far[:, j].sum())} value(s) more than "
                f"{_OUTLIER_SPREADS:g} times its typical spread from its median, e.g. row {rows[i]}: "
                f"{values[i, j]:.6g} (training median {self.median[j]:.6g}, interquartile range "
                f"{self.spread[j]:.6g}); standardising would squash the column's other values to 0: remove "
                "or correct such values"
            )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """float32[n, n_features]: the encoded rows of `frame`."""
        out = np.zeros((len(frame), self.n_features), dtype=np.float32)
        n_numeric = len(self.numeric_columns)
        values = _numeric_matrix(frame, self.numeric_columns)
        self._check_outliers(values, frame.index)
        with np.errstate(over="ignore"):  # beyond float32: inf, which Dataset rejects naming the split
            out[:, :n_numeric] = (values - self.mean) / self.scale
        offset = n_numeric
        for name, levels in self.categories.items():
            codes = pd.Index(levels).get_indexer(frame[name].astype(str))
            rows = np.flatnonzero(codes >= 0)
            out[rows, offset + codes[rows]] = 1.0
            offset += len(levels)
        return out
