"""The researcher's own bagged data, read from CSV or parquet tables.

Tables (paths absolute or relative to the data directory; the format follows the extension,
.csv or .parquet / .pq):
  train_path      feature columns plus a bag-id column (integer); no instance labels needed
  bags_path       bag id -> positive count (count_column, whole numbers) or proportion in [0, 1]
                  (proportion_column)
  val_path        optional, like train_path, with its own bag table val_bags_path; without it a seeded
                  `val_fraction` (dataset.val_fraction, default 0.1) of the training bags (whole
                  bags) is held out as validation
  test_path       feature columns plus an instance label column (0/1)
Numeric feature columns are standardised and categorical ones one-hot encoded exactly as for adult
(llp_jax.data.tabular), fitted on the training split only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from llp_jax.data.bags import given_bags
from llp_jax.data.dataset import Dataset, Split, holdout_split
from llp_jax.data.paths import user_file
from llp_jax.data.tabular import TabularEncoder, categorical_arrays

NAME = "files"


# A count this close to a whole number is that number, written with float rounding.
_COUNT_ATOL = 1e-6


def _not_utf8(path: Path) -> ValueError:
    """The error for a .csv file that is not UTF-8 text: a parquet file, UTF-16 text, or another encoding
    (latin-1, cp1252), each with its fix; the last names the first byte that is not UTF-8 and its line."""
    data = path.read_bytes()
    start = data[:4]
    if start == b"PAR1":
        return ValueError(f"{path} is a parquet file, not a CSV; rename it to {path.with_suffix('.parquet')}")
    if start[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return ValueError(f"{path} is UTF-16 text; re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        where = f" (byte {data[error.start : error.start + 1]!r} on line {line})"
    return ValueError(
        f"{path} is not UTF-8 text{where}: likely latin-1 or cp1252; re-save it as UTF-8 "
        "(e.g. iconv -f LATIN1 -t UTF-8)"
    )


def _read_table(path: Path) -> pd.DataFrame:
    """The table at `path` (.csv, or .parquet / .pq); ValueError naming the file when it is empty, has a
    header but no rows, names a column twice (pandas would rename the second f1 to f1.1 silently), or is
    a .csv that is not UTF-8 text."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            frame = pd.read_csv(path)
            header = (
                pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
            )
        except pd.errors.EmptyDataError:
            raise ValueError(
                f"{path} is empty; write a header line of column names, then one line per row"
            ) from None
        except UnicodeDecodeError:
            raise _not_utf8(path) from None
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        header = list(frame.columns)
    else:
        raise ValueError(f"{path}: unknown table format {suffix!r}; use a .csv or .parquet file")
    repeated = sorted(name for name, times in Counter(header).items() if times > 1)
    if repeated:
        raise ValueError(
            f"{path}: column(s) {repeated} appear more than once in its header; give each column its own name"
        )
    if len(frame) == 0:
        raise ValueError(f"{path} has no rows, only its header; write its rows or point at the right file")
    return frame


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; its columns are {list(frame.columns)}")


def _bag_ids(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """int64[n]: the bag-id column, which must hold integers."""
    _require_columns(frame, [column], path)
    if not pd.api.types.is_integer_dtype(frame[column]):
        raise ValueError(
            f"{path}: bag-id column {column!r} must hold integers without missing values, found dtype "
            f"{frame[column].dtype}; map the ids to integers first"
        )
    return frame[column].to_numpy(dtype=np.int64)


def _whole_counts(values: np.ndarray, ids: np.ndarray, column: str, path: Path) -> np.ndarray:
    """float64[m]: the counts `values` (float64[m], of the bags `ids`, int64[m]) as whole numbers.

    ValueError naming a bag whose count is not whole beyond float rounding; when every value lies in
    [0, 1] they are proportions given as counts, and the error says to set proportion_column; when the
    fractions lie in [0, 1] beside counts above 1, the column mixes the two, and the error says so.
    """
    whole = np.round(values)
    bad = np.flatnonzero(np.abs(values - whole) > _COUNT_ATOL)
    if len(bad) == 0:
        return whole
    example = f"e.g. bag {ids[bad[0]]}: {values[bad[0]]}"
    in_unit = (values >= 0) & (values <= 1)
    if in_unit.all():
        raise ValueError(
            f"{path}: count column {column!r} holds fractions in [0, 1] ({example}), which look like "
            f"proportions; set proportion_column={column!r} to read them as proportions of the bag sizes"
        )
    if in_unit[bad].all() and (values > 1).any():
        above = np.flatnonzero(values > 1)[0]
        raise ValueError(
            f"{path}: count column {column!r} mixes counts and proportions: fractions in [0, 1] ({example}) "
            f"beside counts above 1 (bag {ids[above]}: {values[above]}); write every bag's count, or every "
            "bag's proportion with proportion_column"
        )
    raise ValueError(
        f"{path}: {len(bad)} count(s) in column {column!r} are not whole numbers, {example}; a count is the "
        "number of positive rows of its bag: write whole numbers, or proportions with proportion_column"
    )


def _numbers(column: pd.Series, ids: np.ndarray, name: str, path: Path) -> np.ndarray:
    """float64[m]: the count or proportion `column` of the bags `ids` (int64[m]); ValueError naming the
    file, the column, the bag and the row of a value that is not a number (a count "ten") or is missing."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(np.isnan(values))
    if len(bad):
        row = bad[0]
        raise ValueError(
            f"{path}: {len(bad)} value(s) in column {name!r} are not numbers, e.g. {column.iloc[row]!r} for "
            f"bag {ids[row]} (data row {row + 1}); write every bag's value as a number"
        )
    return values


def _read_counts(
    path: Path, bag_ids: np.ndarray, id_column: str, count_column: str, proportion_column: str | None
) -> dict[int, float]:
    """bag id -> positive count, for every bag of `bag_ids` (int64[n]); validated against the bag sizes."""
    table = _read_table(path)
    value_column = proportion_column or count_column
    _require_columns(table, [value_column], path)
    ids = _bag_ids(table, id_column, path)
    duplicated = pd.unique(ids[pd.Series(ids).duplicated().to_numpy()])
    if len(duplicated):
        raise ValueError(
            f"{path}: bag id(s) {duplicated[:5].tolist()} appear more than once; keep one row per bag"
        )
    values = _numbers(table[value_column], ids, value_column, path)
    if proportion_column is None:
        values = _whole_counts(values, ids, count_column, path)
    else:
        bad = np.flatnonzero(~((values >= 0) & (values <= 1)))
        if len(bad):
            raise ValueError(
                f"{path}: {len(bad)} proportion(s) in column {proportion_column!r} lie outside [0, 1], "
                f"e.g. bag {ids[bad[0]]}: {values[bad[0]]}"
            )
        present, sizes = np.unique(bag_ids, return_counts=True)
        size_of = dict(zip(present.tolist(), sizes.tolist(), strict=True))
        values = values * np.array([size_of.get(int(i), 0) for i in ids])
    counts = dict(zip((int(i) for i in ids), values.tolist(), strict=True))
    try:
        given_bags(bag_ids, counts)
    except ValueError as error:
        raise ValueError(f"{path} does not fit its data table: {error}") from error
    return {bag: counts[bag] for bag in np.unique(bag_ids).tolist()}


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A ValueError raised inside (a column the tabular encoder refuses) names the file of its rows."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def _required(**paths: str | os.PathLike | None) -> None:
    missing = [name for name, value in paths.items() if value is None]
    if missing:
        raise ValueError(f"the files dataset needs {missing}: paths to your tables (see llp_jax.data.files)")


def load(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    train_path: str | os.PathLike | None = None,
    bags_path: str | os.PathLike | None = None,
    test_path: str | os.PathLike | None = None,
    val_path: str | os.PathLike | None = None,
    val_bags_path: str | os.PathLike | None = None,
    bag_id_column: str = "bag_id",
    count_column: str = "count",
    proportion_column: str | None = None,
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] = (),
    val_fraction: float = 0.1,
) -> Dataset:
    """Train / val splits with bag_ids and y=None, a labelled test split; x: float32[n, d].

    The bag tables give a count per bag (count_column), or a proportion (proportion_column, when set)
    turned into a count with the bag size from the data table. Rows of a bag table whose id is not in
    the data are ignored. feature_columns default to every column but the bag-id and label columns.
    Returns Dataset.given_counts = {"train": {bag id: count}, "val": {bag id: count}}.
    """
    _required(train_path=train_path, bags_path=bags_path, test_path=test_path)
    if (val_path is None) != (val_bags_path is None):
        raise ValueError(
            "give both val_path and val_bags_path, or neither (then validation bags are held out)"
        )
    train_file = user_file(data_dir, train_path, "train_path")
    train = _read_table(train_file)
    if feature_columns is None:
        feature_columns = [name for name in train.columns if name not in (bag_id_column, label_column)]
    feature_columns = list(feature_columns)
    if not feature_columns:
        raise ValueError(
            f"{train_file}: no feature columns (dataset.feature_columns={feature_columns}, its columns "
            f"{list(train.columns)}); a model needs at least one: list them, or leave feature_columns null "
            f"to take every column but {bag_id_column!r} and {label_column!r}"
        )
    unknown = sorted(set(categorical_columns) - set(feature_columns))
    if unknown:
        raise ValueError(f"categorical_columns {unknown} are not among the feature columns {feature_columns}")
    _require_columns(train, feature_columns, train_file)
    train_ids = _bag_ids(train, bag_id_column, train_file)
    counts = _read_counts(
        user_file(data_dir, bags_path, "bags_path"), train_ids, bag_id_column, count_column, proportion_column
    )

    if val_path is None:
        bags = np.unique(train_ids)
        train_bags, val_bags = holdout_split(len(bags), val_fraction, seed)
        is_val = np.isin(train_ids, bags[val_bags])
        train, val, val_ids = train[~is_val], train[is_val], train_ids[is_val]
        val_file = train_file
        train_ids = train_ids[~is_val]
        val_counts = {bag: counts.pop(bag) for bag in bags[val_bags].tolist()}
    else:
        val_file = user_file(data_dir, val_path, "val_path")
        val = _read_table(val_file)
        _require_columns(val, feature_columns, val_file)
        val_ids = _bag_ids(val, bag_id_column, val_file)
        val_counts = _read_counts(
            user_file(data_dir, val_bags_path, "val_bags_path"),
            val_ids,
            bag_id_column,
            count_column,
            proportion_column,
        )

    test_file = user_file(data_dir, test_path, "test_path")
    test = _read_table(test_file)
    _require_columns(test, [*feature_columns, label_column], test_file)
    labels = test[label_column].to_numpy()
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(
            f"{test_file}: label column {label_column!r} must hold 0 or 1, found {np.unique(labels)[:10]}"
        )

    categorical = list(categorical_columns)
    numeric = [name for name in feature_columns if name not in categorical]
    with _naming(train_file):
        encoder = TabularEncoder.fit(train, numeric, categorical)

    def split(frame: pd.DataFrame, y: np.ndarray | None, bag_ids: np.ndarray | None, path: Path) -> Split:
        with _naming(path):
            x = encoder.transform(frame)
        return Split(x, y, categorical_arrays(frame, categorical), bag_ids)

    return Dataset(
        name=NAME,
        train=split(train, None, train_ids, train_file),
        val=split(val, None, val_ids, val_file),
        test=split(test, labels.astype(np.int32), None, test_file),
        given_counts={"train": counts, "val": val_counts},
    )
