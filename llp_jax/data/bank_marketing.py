"""UCI Bank Marketing as preprocessed by the LLP-BP authors: 16 numeric features, label = subscribed.

Files (folder bank_marketing/ of the data directory): x_train.csv, x_val.csv, x_test.csv, each with a
header row of column indices and one row per client; y_train.csv, y_val.csv, y_test.csv, a header line
then one 0/1 label per row. Rows: train 27,126, val 9,042, test 9,043; 11.6% positive.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from llp_jax.data.dataset import Dataset, Split, thin_dataset
from llp_jax.data.paths import dataset_file
from llp_jax.data.tabular import TabularEncoder

NAME = "bank_marketing"
SOURCE = "the data/ folder of the public repository github.com/google-deepmind/llp_bp"
SPLITS = ("train", "val", "test")


def _read_split(data_dir: str | os.PathLike | None, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Features (DataFrame, n rows) and labels (int32[n]) of one split, with their row counts checked."""
    x_path = dataset_file(data_dir, NAME, f"x_{split}.csv", SOURCE)
    y_path = dataset_file(data_dir, NAME, f"y_{split}.csv", SOURCE)
    features = pd.read_csv(x_path)
    labels = pd.read_csv(y_path).iloc[:, 0].to_numpy()
    if len(labels) != len(features):
        raise ValueError(
            f"{y_path} has {len(labels)} labels but {x_path} has {len(features)} rows; "
            f"the files are not a matching pair, get them again from {SOURCE}"
        )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{y_path}: labels must be 0 or 1, found {sorted(set(labels.tolist()))[:10]}")
    return features, labels.astype(np.int32)


def load(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    standardize: bool = True,
    positive_rate: float | None = None,
) -> Dataset:
    """The shipped train / val / test splits; x: float32[n, 16], y: int32[n].

    The shipped features are not standardised (column standard deviations around 0.01, a few
    columns constant): with `standardize` each column is centred and scaled by its training
    statistics (constant columns become 0); standardize=False keeps them as shipped. The splits are
    fixed by the files; `seed` seeds only the thinning below.
    With `positive_rate` (in (0, the split's rate]) each split keeps all its negatives and a seeded random
    subset of its positives so that its positive rate becomes positive_rate (thin_positives); None keeps
    every row.
    """
    frames = {split: _read_split(data_dir, split) for split in SPLITS}
    encoder = TabularEncoder.fit(frames["train"][0], list(frames["train"][0].columns))
    splits = {
        split: Split(
            x=encoder.transform(features) if standardize else features.to_numpy(np.float32), y=labels
        )
        for split, (features, labels) in frames.items()
    }
    return thin_dataset(Dataset(name=NAME, **splits), positive_rate, seed)
