"""The researcher's own bagged data, read from CSV or parquet tables.

Tables (paths absolute or relative to the data directory; the format follows the extension,
.csv or .parquet / .pq):
  train_path      feature columns plus a bag-id column (integer); no instance labels needed
  bags_path       bag id -> positive count (count_column, whole numbers) or proportion in [0, 1]
                  (proportion_column); or, for K >= 3 classes, the count of each class: one column per
                  class (count_columns, wide) or one row per bag and class (class_column, long)
  val_path        optional, like train_path, with its own bag table val_bags_path; without it a seeded
                  `val_fraction` (dataset.val_fraction, default 0.1) of the training bags (whole
                  bags) is held out as validation
  test_path       feature columns plus an instance label column (0/1; K-class: 0..K-1 for the wide
                  form, the class values of the bag table for the long form)
Numeric feature columns are standardised and categorical ones one-hot encoded exactly as for adult
(llp_jax.data.tabular), fitted on the training split only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

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


class CountForm(NamedTuple):
    """How a bag table gives each bag's counts (with its bag ids in id_column): binary, a positive count
    (count_column) or a proportion (proportion_column, when set); K-class wide, one count column per class
    in class order (count_columns) or one proportion column per class (proportion_columns); K-class long,
    rows (bag id, class_column, count_column)."""

    id_column: str
    count_column: str
    proportion_column: str | None = None
    count_columns: tuple[str, ...] | None = None
    class_column: str | None = None
    proportion_columns: tuple[str, ...] | None = None

    @property
    def wide_columns(self) -> tuple[str, ...] | None:
        """The columns of a wide K-class table, one per class (counts or proportions), or None."""
        return self.count_columns or self.proportion_columns

    def check(self) -> None:
        """ValueError naming the options when they mix the forms or give a K-class table fewer than 3
        classes."""
        forms = {
            "count_columns": self.count_columns,
            "proportion_columns": self.proportion_columns,
            "class_column": self.class_column,
        }
        given = [
            f"dataset.{key}={list(value) if isinstance(value, tuple) else value!r}"
            for key, value in forms.items()
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"{' and '.join(given)} are two forms of K-class bag table; set one of them (count_columns: "
                "a count column per class; proportion_columns: a proportion column per class; class_column: "
                "one row per bag and class)"
            )
        if self.proportion_column is not None and given:
            raise ValueError(
                f"dataset.proportion_column={self.proportion_column!r} is for binary bag tables; K-class "
                "tables take proportion_columns, one per class: set proportion_column=null"
            )
        key = "count_columns" if self.count_columns is not None else "proportion_columns"
        if self.wide_columns is not None and len(self.wide_columns) < 3:
            raise ValueError(
                f"dataset.{key}={list(self.wide_columns)} gives {len(self.wide_columns)} class(es); K-class "
                "tables need 3 or more: for two classes give the positive class's counts as count_column "
                f"(or proportions as proportion_column) and leave {key} null"
            )


def _read_counts(
    path: Path, bag_ids: np.ndarray, form: CountForm, classes: np.ndarray | None = None
) -> tuple[dict[int, float | np.ndarray], np.ndarray | None]:
    """(bag id -> count, classes) for every bag of `bag_ids` (int64[n]), validated against the bag sizes.

    The count is the positive count (a float) of a binary table, the count vector float64[K] of a K-class
    one; classes: None for binary, else the K class values in class order (wide: 0..K-1; long: the sorted
    distinct values of the table's class column, or `classes` when given, the training table's).
    """
    table = _read_table(path)
    if form.class_column is not None:
        ids, values, classes = _long_counts(table, form, path, classes)
    elif form.wide_columns is not None:
        _require_columns(table, form.wide_columns, path)
        ids = _unique_bag_ids(table, form.id_column, path)
        values = np.stack([_numbers(table[name], ids, name, path) for name in form.wide_columns], axis=1)
        if form.proportion_columns is not None:
            values = _class_proportions_as_counts(values, ids, bag_ids, path)
        classes = np.arange(len(form.wide_columns))
    else:
        ids, values = _binary_counts(table, bag_ids, form, path)
    rows = values.tolist() if values.ndim == 1 else list(values)  # floats, or float64[K] vectors
    counts = dict(zip((int(i) for i in ids), rows, strict=True))
    try:
        given_bags(bag_ids, counts, n_classes=2 if classes is None else len(classes))
    except ValueError as error:
        raise ValueError(f"{path} does not fit its data table: {error}") from error
    return {bag: counts[bag] for bag in np.unique(bag_ids).tolist()}, classes


# Class proportions written with a few decimals (1/3 as 0.333) sum to 1 within this; their row is then
# normalised before it is multiplied by the bag size, so that the counts sum to the size exactly.
_PROPORTION_SUM_ATOL = 1e-3


def _class_proportions_as_counts(
    proportions: np.ndarray, ids: np.ndarray, bag_ids: np.ndarray, path: Path
) -> np.ndarray:
    """float64[m, K]: the class proportions float64[m, K] of the bags `ids` (int64[m]) times each bag's
    rows among `bag_ids` (int64[n], the data table's); each row normalised to sum to 1. ValueError naming
    the bag of a proportion outside [0, 1] or a row whose sum is off 1 by more than _PROPORTION_SUM_ATOL."""
    outside = np.argwhere(~((proportions >= 0) & (proportions <= 1)))
    if len(outside):
        bag, column = outside[0]
        raise ValueError(
            f"{path}: {len(outside)} class proportion(s) lie outside [0, 1], e.g. bag {ids[bag]}: "
            f"{proportions[bag, column]} for class {column}"
        )
    sums = proportions.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > _PROPORTION_SUM_ATOL)
    if len(off):
        raise ValueError(
            f"{path}: {len(off)} bag(s) have class proportions that do not sum to 1, e.g. bag {ids[off[0]]}: "
            f"{proportions[off[0]].tolist()} sum to {sums[off[0]]:.6g}; give every class's share of the bag"
        )
    return proportions / sums[:, None] * _rows_of(ids, bag_ids)[:, None]


def _rows_of(ids: np.ndarray, bag_ids: np.ndarray) -> np.ndarray:
    """int64[m]: how many rows of the data table (bag ids int64[n]) each bag of `ids` (int64[m]) has; 0 for
    a bag with none."""
    present, sizes = np.unique(bag_ids, return_counts=True)
    size_of = dict(zip(present.tolist(), sizes.tolist(), strict=True))
    return np.array([size_of.get(int(i), 0) for i in ids], dtype=np.int64)


def _unique_bag_ids(table: pd.DataFrame, id_column: str, path: Path) -> np.ndarray:
    """int64[m]: the bag-id column of a table of one row per bag; ValueError naming repeated ids."""
    ids = _bag_ids(table, id_column, path)
    duplicated = pd.unique(ids[pd.Series(ids).duplicated().to_numpy()])
    if len(duplicated):
        raise ValueError(
            f"{path}: bag id(s) {duplicated[:5].tolist()} appear more than once; keep one row per bag"
        )
    return ids


def _binary_counts(
    table: pd.DataFrame, bag_ids: np.ndarray, form: CountForm, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64[m], positive counts float64[m]) of a binary bag table: whole counts, or proportions
    times the bag sizes of `bag_ids` (int64[n])."""
    value_column = form.proportion_column or form.count_column
    _require_columns(table, [value_column], path)
    ids = _unique_bag_ids(table, form.id_column, path)
    values = _numbers(table[value_column], ids, value_column, path)
    if form.proportion_column is None:
        return ids, _whole_counts(values, ids, form.count_column, path)
    bad = np.flatnonzero(~((values >= 0) & (values <= 1)))
    if len(bad):
        raise ValueError(
            f"{path}: {len(bad)} proportion(s) in column {form.proportion_column!r} lie outside [0, 1], "
            f"e.g. bag {ids[bad[0]]}: {values[bad[0]]}"
        )
    return ids, values * _rows_of(ids, bag_ids)


def _long_counts(
    table: pd.DataFrame, form: CountForm, path: Path, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids int64[m], count vectors float64[m, K], classes object-or-number[K]) of a long bag table, rows
    (bag id, class, count); a class a bag has no row for counts 0. classes: the sorted distinct values of
    the class column, or the given ones (the training table's), which then must hold every value."""
    _require_columns(table, [form.class_column, form.count_column], path)
    ids = _bag_ids(table, form.id_column, path)
    values = table[form.class_column]
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValueError(
            f"{path}: class column {form.class_column!r} has {int(values.isna().sum())} missing value(s), "
            f"e.g. for bag {ids[row]} (data row {row + 1}); write every row's class"
        )
    if classes is None:
        classes = np.sort(pd.unique(values))
        if len(classes) < 3:
            raise ValueError(
                f"{path}: class column {form.class_column!r} holds {len(classes)} class(es) "
                f"{classes.tolist()}; K-class tables need 3 or more: for two classes write one row per bag "
                "with the positive class's count (count_column) and leave class_column null"
            )
    codes = _class_codes(values, classes, f"{path}: class column {form.class_column!r} holds class(es)")
    repeated = pd.Series(list(zip(ids, codes, strict=True))).duplicated().to_numpy()
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        raise ValueError(
            f"{path}: bag {ids[row]} has more than one row for class {values.iloc[row]!r} (data row "
            f"{row + 1}); keep one row per bag and class"
        )
    counts = _numbers(table[form.count_column], ids, form.count_column, path)
    bags, bag_row = np.unique(ids, return_inverse=True)
    vectors = np.zeros((len(bags), len(classes)))
    vectors[bag_row, codes] = counts
    return bags, vectors, classes


def _test_labels(labels: pd.Series, column: str, path: Path, classes: np.ndarray | None) -> np.ndarray:
    """int32[n]: the test table's labels as classes 0..K-1: 0/1 for binary data (classes None), else the
    index of each label among `classes` (its K class values); ValueError naming the labels that are not."""
    if classes is None:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(
                f"{path}: label column {column!r} must hold 0 or 1, found {np.unique(labels)[:10]}"
            )
        return labels.to_numpy().astype(np.int32)
    return _class_codes(labels, classes, f"{path}: label column {column!r} holds label(s)")


def _class_codes(values: pd.Series, classes: np.ndarray, where: str) -> np.ndarray:
    """int32[n]: the index of each of `values` among `classes` (the K class values of the training bag
    table); ValueError naming the values that are not, after `where` (the table, its column and what it
    holds)."""
    codes = pd.Index(classes).get_indexer(values)
    if (codes < 0).any():
        unknown = pd.unique(values[codes < 0])
        raise ValueError(
            f"{where} {unknown[:10].tolist()} that are not among the bag tables' classes {classes.tolist()}; "
            "use the class values of the training bag table"
        )
    return codes.astype(np.int32)


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


class _Part(NamedTuple):
    """The bagged rows of one split: the table, its bag ids int64[n], bag id -> count, the file."""

    frame: pd.DataFrame
    ids: np.ndarray
    counts: dict[int, float | np.ndarray]
    path: Path


def _feature_columns(
    train: pd.DataFrame,
    path: Path,
    feature_columns: Sequence[str] | None,
    categorical_columns: Sequence[str],
    excluded: Sequence[str],
) -> list[str]:
    """The feature columns, by default every column of `train` but the `excluded` (bag-id and label)
    columns; ValueError when there are none, or a categorical column is not among them."""
    if feature_columns is None:
        feature_columns = [name for name in train.columns if name not in excluded]
    feature_columns = list(feature_columns)
    if not feature_columns:
        raise ValueError(
            f"{path}: no feature columns (dataset.feature_columns={feature_columns}, its columns "
            f"{list(train.columns)}); a model needs at least one: list them, or leave feature_columns null "
            f"to take every column but {excluded[0]!r} and {excluded[1]!r}"
        )
    unknown = sorted(set(categorical_columns) - set(feature_columns))
    if unknown:
        raise ValueError(f"categorical_columns {unknown} are not among the feature columns {feature_columns}")
    _require_columns(train, feature_columns, path)
    return feature_columns


def _hold_out(part: _Part, val_fraction: float, seed: int) -> tuple[_Part, _Part]:
    """(train, val): a seeded `val_fraction` of the bags of `part` (whole bags) held out as validation."""
    bags = np.unique(part.ids)
    train_bags, val_bags = holdout_split(len(bags), val_fraction, seed)
    is_val = np.isin(part.ids, bags[val_bags])
    counts = dict(part.counts)
    val_counts = {bag: counts.pop(bag) for bag in bags[val_bags].tolist()}
    return (
        _Part(part.frame[~is_val], part.ids[~is_val], counts, part.path),
        _Part(part.frame[is_val], part.ids[is_val], val_counts, part.path),
    )


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
    count_columns: Sequence[str] | None = None,
    class_column: str | None = None,
    proportion_columns: Sequence[str] | None = None,
    label_column: str = "label",
    feature_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] = (),
    val_fraction: float = 0.1,
) -> Dataset:
    """Train / val splits with bag_ids and y=None, a labelled test split; x: float32[n, d].

    Binary bag tables give a count per bag (count_column), or a proportion (proportion_column, when set)
    turned into a count with the bag size from the data table. K-class tables (K >= 3) give a count per
    class: wide, one column per class (count_columns, in class order: classes 0..K-1, which the test
    labels then are; or proportion_columns, each bag's class shares, summing to 1 within 1e-3, times its
    rows in the data table), or long, one row per bag and class (class_column, with the count in count_column;
    the classes are the sorted distinct values of the training bag table's class column, mapped to
    0..K-1 and the test labels with them; a class a bag has no row for counts 0). A bag's class counts
    must sum to its rows in the data table (fractions are allowed when they do). Rows of a bag table whose
    id is not in the data are ignored. feature_columns default to every column but the bag-id and label
    columns. Returns Dataset.given_counts = {"train": {bag id: count}, "val": {bag id: count}} (the count a
    float for binary tables, a float64[K] vector for K-class ones) and Dataset.n_classes = K (2 if binary).
    """
    _required(train_path=train_path, bags_path=bags_path, test_path=test_path)
    if (val_path is None) != (val_bags_path is None):
        raise ValueError(
            "give both val_path and val_bags_path, or neither (then validation bags are held out)"
        )
    form = CountForm(
        bag_id_column,
        count_column,
        proportion_column,
        None if count_columns is None else tuple(count_columns),
        class_column,
        None if proportion_columns is None else tuple(proportion_columns),
    )
    form.check()
    train_file = user_file(data_dir, train_path, "train_path")
    frame = _read_table(train_file)
    feature_columns = _feature_columns(
        frame, train_file, feature_columns, categorical_columns, (bag_id_column, label_column)
    )
    train_ids = _bag_ids(frame, bag_id_column, train_file)
    counts, classes = _read_counts(user_file(data_dir, bags_path, "bags_path"), train_ids, form)
    train = _Part(frame, train_ids, counts, train_file)

    if val_path is None:
        train, val = _hold_out(train, val_fraction, seed)
    else:
        val_file = user_file(data_dir, val_path, "val_path")
        frame = _read_table(val_file)
        _require_columns(frame, feature_columns, val_file)
        val_ids = _bag_ids(frame, bag_id_column, val_file)
        val_counts, _ = _read_counts(
            user_file(data_dir, val_bags_path, "val_bags_path"), val_ids, form, classes
        )
        val = _Part(frame, val_ids, val_counts, val_file)

    test_file = user_file(data_dir, test_path, "test_path")
    test = _read_table(test_file)
    _require_columns(test, [*feature_columns, label_column], test_file)
    labels = _test_labels(test[label_column], label_column, test_file, classes)

    categorical = list(categorical_columns)
    numeric = [name for name in feature_columns if name not in categorical]
    with _naming(train_file):
        encoder = TabularEncoder.fit(train.frame, numeric, categorical)

    def split(frame: pd.DataFrame, y: np.ndarray | None, bag_ids: np.ndarray | None, path: Path) -> Split:
        with _naming(path):
            x = encoder.transform(frame)
        return Split(x, y, categorical_arrays(frame, categorical), bag_ids)

    return Dataset(
        name=NAME,
        train=split(train.frame, None, train.ids, train.path),
        val=split(val.frame, None, val.ids, val.path),
        test=split(test, labels, None, test_file),
        given_counts={"train": train.counts, "val": val.counts},
        n_classes=2 if classes is None else len(classes),
    )
