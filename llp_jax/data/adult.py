"""UCI Adult (census income): 6 numeric and 8 categorical attributes, label = income >50K.

Files (folder adult/ of the data directory): adult.data (32,561 rows) and adult.test (16,281 rows,
after one extra first line; its labels end in "."). Values are comma separated with leading spaces;
missing values are written "?" and kept as a category of their own. About 24% of rows are positive.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from llp_jax.data.dataset import Dataset, Split, holdout_split, thin_dataset
from llp_jax.data.paths import dataset_file
from llp_jax.data.tabular import TabularEncoder, categorical_arrays

NAME = "adult"
SOURCE = "the UCI Machine Learning Repository, dataset 2: https://archive.ics.uci.edu/dataset/2/adult"
NUMERIC = ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week")
CATEGORICAL = (
    "workclass",
    "education",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native_country",
)
# Column order of the files (as listed in adult.names), then the label.
COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
)


def _read(
    data_dir: str | os.PathLike | None, filename: str, skiprows: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """The attribute table (n rows) and labels int32[n] (1 for income >50K) of one file."""
    path = dataset_file(data_dir, NAME, filename, SOURCE)
    frame = pd.read_csv(
        path,
        header=None,
        names=list(COLUMNS),
        skiprows=skiprows,
        skipinitialspace=True,
        keep_default_na=False,
    )
    income = frame.pop("income").str.rstrip(".")
    unknown = sorted(set(income) - {"<=50K", ">50K"})
    if unknown:
        raise ValueError(f"{path}: unexpected income values {unknown[:5]}; expected '<=50K' or '>50K'")
    return frame, (income == ">50K").to_numpy(dtype=np.int32)


def load(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    positive_rate: float | None = None,
) -> Dataset:
    """Train / val / test splits; x: float32[n, d] (6 standardised numeric columns then one-hot blocks).

    A seeded `val_fraction` of adult.data is held out as validation; adult.test is the test split.
    Standardisation and the one-hot categories are fitted on the training split only. Split.categorical
    keeps the raw categorical columns (object[n] of str, e.g. "education", "occupation") for feature bags.
    With `positive_rate` (in (0, the split's rate]) each split keeps all its negatives and a seeded random
    subset of its positives so that its positive rate becomes positive_rate (thin_positives); None keeps
    every row.
    """
    full_train, full_labels = _read(data_dir, "adult.data", skiprows=0)
    test, test_labels = _read(data_dir, "adult.test", skiprows=1)
    train_rows, val_rows = holdout_split(len(full_train), val_fraction, seed)
    train, val = full_train.iloc[train_rows], full_train.iloc[val_rows]
    encoder = TabularEncoder.fit(train, NUMERIC, CATEGORICAL)

    def split(frame: pd.DataFrame, labels: np.ndarray) -> Split:
        return Split(x=encoder.transform(frame), y=labels, categorical=categorical_arrays(frame, CATEGORICAL))

    data = Dataset(
        name=NAME,
        train=split(train, full_labels[train_rows]),
        val=split(val, full_labels[val_rows]),
        test=split(test, test_labels),
    )
    return thin_dataset(data, positive_rate, seed)
