"""Fashion-MNIST: 28x28 grey images, as a binary task (classes="binary": positive = a chosen set of the 10
classes) or as the 10-class task (classes="all").

Files (folder fashion_mnist/ of the data directory), the four original IDX gzip files:
train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz (60,000), t10k-images-idx3-ubyte.gz,
t10k-labels-idx1-ubyte.gz (10,000).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llp_jax.data.dataset import Dataset, Split, holdout_split, thin_dataset
from llp_jax.data.paths import dataset_file

NAME = "fashion_mnist"
SOURCE = "github.com/zalandoresearch/fashion-mnist (folder data/fashion/)"
N_CLASSES = 10
CLASS_TASKS = ("binary", "all")
# IDX magic numbers: unsigned bytes, with 1 dimension (labels) or 3 dimensions (images).
_MAGIC = {1: 0x00000801, 3: 0x00000803}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """uint8[n] (ndim=1) or uint8[n, rows, cols] (ndim=3) from a gzipped IDX file."""
    with gzip.open(path, "rb") as file:
        data = file.read()
    magic = int.from_bytes(data[:4], "big")
    if magic != _MAGIC[ndim]:
        raise ValueError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (magic {magic:#010x})")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != np.prod(shape):
        raise ValueError(
            f"{path}: header announces shape {shape} but holds {values.size} values; file truncated?"
        )
    return values.reshape(shape)


def _read_split(data_dir: str | os.PathLike | None, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Images float32[n, 28, 28, 1] in [0, 1] and class labels uint8[n] of the 'train' or 't10k' files."""
    images = read_idx(dataset_file(data_dir, NAME, f"{prefix}-images-idx3-ubyte.gz", SOURCE), ndim=3)
    classes = read_idx(dataset_file(data_dir, NAME, f"{prefix}-labels-idx1-ubyte.gz", SOURCE), ndim=1)
    if len(images) != len(classes):
        raise ValueError(f"{prefix} files hold {len(images)} images but {len(classes)} labels")
    return (images[..., None] / np.float32(255)).astype(np.float32), classes


def load(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    positive_classes: Sequence[int] = (0, 2, 4, 6),
    val_fraction: float = 0.1,
    positive_rate: float | None = None,
    classes: str = "binary",
) -> Dataset:
    """Train / val / test splits; x: float32[n, 28, 28, 1] in [0, 1], y: int32[n].

    classes="binary" (n_classes=2): y = 1 for images whose class is in `positive_classes` (default
    T-shirt, pullover, coat, shirt: 40%). classes="all" (n_classes=10): y = the original class 0..9;
    positive_classes is then ignored, and positive_rate must be None.
    A seeded `val_fraction` of the training files is held out as validation (54,000 / 6,000 / 10,000).
    With `positive_rate` (in (0, the split's rate]) each split keeps all its negatives and a seeded random
    subset of its positives so that its positive rate becomes positive_rate (thin_positives); None keeps
    every row.
    """
    if classes not in CLASS_TASKS:
        raise ValueError(
            f"dataset.classes={classes!r}; choose 'binary' (positive_classes against the rest) or 'all' "
            f"(the {N_CLASSES} classes), e.g. dataset.classes=all"
        )
    positive = sorted(set(int(c) for c in positive_classes))
    if classes == "binary" and (
        not positive or len(positive) == N_CLASSES or not set(positive) <= set(range(N_CLASSES))
    ):
        raise ValueError(
            f"positive_classes={list(positive_classes)} must be a non-empty proper subset of the classes "
            f"0..{N_CLASSES - 1}"
        )
    images, labels = _read_split(data_dir, "train")
    test_images, test_labels = _read_split(data_dir, "t10k")
    train_rows, val_rows = holdout_split(len(images), val_fraction, seed)

    def split(x: np.ndarray, c: np.ndarray) -> Split:
        return Split(x=x, y=(np.isin(c, positive) if classes == "binary" else c).astype(np.int32))

    data = Dataset(
        name=NAME,
        train=split(images[train_rows], labels[train_rows]),
        val=split(images[val_rows], labels[val_rows]),
        test=split(test_images, test_labels),
        n_classes=2 if classes == "binary" else N_CLASSES,
    )
    return thin_dataset(data, positive_rate, seed)
