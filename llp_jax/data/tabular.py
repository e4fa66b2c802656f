"""Tabular encoding shared by the adult and files loaders (and the standardising of bank marketing).

Numeric columns are standardised and categorical ones one-hot encoded, with statistics and category
lists fitted on the training rows only. A category unseen in training encodes as all zeros. Categorical
values are compared as strings, so a missing-value marker such as "?" is a category of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

# A numeric column whose training standard deviation is below this (relative to its magnitude) is
# treated as constant: it is centred but not scaled, so it encodes as zeros instead of blowing up.
_CONSTANT_RTOL = 1e-7


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


@dataclass(frozen=True)
class TabularEncoder:
    """Standardise numeric columns, one-hot encode categorical ones; fitted with `TabularEncoder.fit`.

    numeric_columns: names of the standardised columns, in output order
    mean, scale:     float64[n_numeric]   training mean and standard deviation (1 for constant columns)
    categories:      column -> str[n_levels], the levels seen in training, in one-hot order
    Output columns: the numeric ones, then each categorical column's one-hot block.
    """

    numeric_columns: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    categories: dict[str, np.ndarray]

    @classmethod
    def fit(
        cls, train: pd.DataFrame, numeric_columns: Sequence[str], categorical_columns: Sequence[str] = ()
    ) -> TabularEncoder:
        """Fit on the training rows only; infinite values are left out of the statistics, so that they
        stay in their own rows (where Dataset rejects them) instead of spreading to the whole column."""
        values = _numeric_matrix(train, numeric_columns)
        finite = np.where(np.isfinite(values), values, np.nan)
        mean = np.nanmean(finite, axis=0)
        std = np.nanstd(finite, axis=0)
        scale = np.where(std > _CONSTANT_RTOL * np.maximum(np.abs(mean), 1.0), std, 1.0)
        categories = {
            name: np.unique(train[name].astype(str).to_numpy(dtype=str)) for name in categorical_columns
        }
        return cls(tuple(numeric_columns), mean, scale, categories)

    @property
    def n_features(self) -> int:
        return len(self.numeric_columns) + sum(len(levels) for levels in self.categories.values())

    @property
    def feature_names(self) -> list[str]:
        """Names of the output columns: numeric names, then "column=level" for each one-hot column."""
        one_hot = [f"{name}={level}" for name, levels in self.categories.items() for level in levels]
        return [*self.numeric_columns, *one_hot]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """float32[n, n_features]: the encoded rows of `frame`."""
        out = np.zeros((len(frame), self.n_features), dtype=np.float32)
        n_numeric = len(self.numeric_columns)
        out[:, :n_numeric] = (_numeric_matrix(frame, self.numeric_columns) - self.mean) / self.scale
        offset = n_numeric
        for name, levels in self.categories.items():
            codes = pd.Index(levels).get_indexer(frame[name].astype(str))
            rows = np.flatnonzero(codes >= 0)
            out[rows, offset + codes[rows]] = 1.0
            offset += len(levels)
        return out
