"""Dataset loaders: shapes, label rates, errors, the files loader on fixture tables, synthetic data.

Tests of the real datasets read them from $LLP_JAX_DATA_DIR (the shared datasets folder in CI).
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from llp_jax.data import BaggingSettings, load_dataset, make_bags, resolve_data_dir
from llp_jax.data.dataset import Split, thin_positives
from llp_jax.data.synthetic import generate

FIXTURES = Path(__file__).parent / "fixtures" / "files"
FILES = dict(train_path="train.csv", bags_path="bags.csv", test_path="test.csv")


def assert_split(split, n: int, feature_shape: tuple, positive_rate: float, tol: float = 0.005):
    assert split.x.shape == (n, *feature_shape) and split.x.dtype == np.float32
    assert split.y.shape == (n,) and split.y.dtype == np.int32
    assert set(np.unique(split.y)) <= {0, 1}
    assert abs(split.y.mean() - positive_rate) < tol
    assert np.isfinite(split.x).all()


# ----------------------------------------------------------------------------------------- registry, paths


def test_unknown_dataset_and_option():
    with pytest.raises(
        ValueError, match=r"unknown dataset 'mnist'; known datasets: \['adult', 'bank_marketing'"
    ):
        load_dataset("mnist")
    with pytest.raises(
        ValueError, match=r"dataset 'synthetic' has no option\(s\) \['size'\]; its options are"
    ):
        load_dataset("synthetic", size=10)


def test_data_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("LLP_JAX_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("LLP_JAX_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "llp_jax"


@pytest.mark.parametrize(
    "name, filename, source",
    [
        ("bank_marketing", "x_train.csv", "google-deepmind/llp_bp"),
        ("adult", "adult.data", "archive.ics.uci.edu/dataset/2/adult"),
        ("fashion_mnist", "train-images-idx3-ubyte.gz", "zalandoresearch/fashion-mnist"),
    ],
)
def test_missing_file_message(tmp_path, name, filename, source):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset(name, data_dir=tmp_path)
    message = str(error.value)
    assert f"missing file '{filename}'" in message
    assert f"searched {tmp_path / name}" in message
    assert source in message and "the data_dir argument" in message


# ----------------------------------------------------------------------------------------- real datasets


def test_bank_marketing(real_data_dir):
    data = load_dataset("bank_marketing", data_dir=real_data_dir)
    assert_split(data.train, 27_126, (16,), 0.116)
    assert_split(data.val, 9_042, (16,), 0.118)
    assert_split(data.test, 9_043, (16,), 0.119)
    assert data.train.categorical == {} and data.given_counts == {}
    np.testing.assert_allclose(data.train.x.mean(axis=0), 0.0, atol=1e-4)
    std = data.train.x.std(axis=0)
    assert ((np.abs(std - 1) < 1e-3) | (std < 1e-6)).all()  # unit variance, or a constant column at 0
    raw = load_dataset("bank_marketing", data_dir=real_data_dir, standardize=False)
    assert raw.train.x[0, 0] == np.float32(-0.09)


def test_adult(real_data_dir):
    data = load_dataset("adult", data_dir=real_data_dir, seed=0)
    assert data.train.n + data.val.n == 32_561 and data.val.n == 3_256
    d = data.feature_shape[0]
    assert_split(data.train, 29_305, (d,), 0.24, tol=0.01)
    assert_split(data.val, 3_256, (d,), 0.24, tol=0.02)
    assert_split(data.test, 16_281, (d,), 0.236, tol=0.01)
    for split in (data.train, data.val, data.test):
        assert {"education", "occupation", "native_country"} <= set(split.categorical)
        assert all(len(column) == split.n for column in split.categorical.values())
    assert "?" in set(data.train.categorical["occupation"])
    # One-hot blocks: every row has exactly one 1 per categorical column seen in training (8 in all).
    np.testing.assert_array_equal(data.train.x[:, 6:].sum(axis=1), 8)
    np.testing.assert_allclose(data.train.x[:, :6].mean(axis=0), 0.0, atol=1e-4)
    other = load_dataset("adult", data_dir=real_data_dir, seed=1)
    assert not np.array_equal(other.val.x, data.val.x)
    bags = make_bags(
        data.train,
        BaggingSettings("feature", columns=("education", "occupation"), min_size=50, max_size=2000),
    )
    assert bags.n_bags > 20 and bags.sizes.min() >= 50 and bags.sizes.max() <= 2000


def test_fashion_mnist(real_data_dir):
    data = load_dataset("fashion_mnist", data_dir=real_data_dir)
    assert_split(data.train, 54_000, (28, 28, 1), 0.40)
    assert_split(data.val, 6_000, (28, 28, 1), 0.40, tol=0.01)
    assert_split(data.test, 10_000, (28, 28, 1), 0.40, tol=1e-9)
    assert data.train.x.min() == 0.0 and data.train.x.max() == 1.0
    shoes = load_dataset("fashion_mnist", data_dir=real_data_dir, positive_classes=[5, 7, 9])
    assert shoes.test.y.mean() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="non-empty proper subset"):
        load_dataset("fashion_mnist", data_dir=real_data_dir, positive_classes=[3, 10])


# ----------------------------------------------------------------------------------------- thinned positives


def assert_thinned(thinned, full, rate: float):
    """thinned holds every negative row of full and a subset of its positives, in order, at `rate`."""
    assert abs(thinned.y.sum() - rate * thinned.n) <= 1  # the rate, within one row
    np.testing.assert_array_equal(thinned.x[thinned.y == 0], full.x[full.y == 0])  # all negatives kept
    positives = {row.tobytes() for row in full.x[full.y == 1]}
    assert all(row.tobytes() in positives for row in thinned.x[thinned.y == 1])  # kept rows unchanged
    for name, column in thinned.categorical.items():
        np.testing.assert_array_equal(column[thinned.y == 0], full.categorical[name][full.y == 0])


def toy_split(n: int = 1_000) -> Split:
    rng = np.random.default_rng(0)
    y = (rng.random(n) < 0.4).astype(np.int32)
    return Split(
        x=np.arange(n, dtype=np.float32)[:, None] * [1, -1],
        y=y,
        categorical={"row": np.array([f"r{i}" for i in range(n)], dtype=object)},
        bag_ids=np.arange(n) // 10,
    )


@pytest.mark.parametrize("rate", [0.01, 0.1, 0.25, 0.3333])
def test_thin_positives_keeps_negatives_and_aligned_rows(rate):
    split = toy_split()
    thinned = thin_positives(split, rate, np.random.default_rng(1))
    assert_thinned(thinned, split, rate)
    rows = thinned.x[:, 0].astype(np.int64)  # the original row of every kept row, increasing
    assert (np.diff(rows) > 0).all() and thinned.n == (split.y == 0).sum() + thinned.y.sum()
    np.testing.assert_array_equal(thinned.y, split.y[rows])
    np.testing.assert_array_equal(thinned.categorical["row"], split.categorical["row"][rows])
    np.testing.assert_array_equal(thinned.bag_ids, split.bag_ids[rows])


def test_thin_positives_is_deterministic_by_rng_and_keeps_all_at_the_current_rate():
    split = toy_split()
    a = thin_positives(split, 0.1, np.random.default_rng(1))
    b = thin_positives(split, 0.1, np.random.default_rng(1))
    c = thin_positives(split, 0.1, np.random.default_rng(2))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.n == c.n and not np.array_equal(a.x, c.x)
    same = thin_positives(split, split.y.mean(), np.random.default_rng(1))
    np.testing.assert_array_equal(same.x, split.x)


@pytest.mark.parametrize("rate", [0.0, -0.1, 0.5])
def test_thin_positives_rejects_a_rate_outside_zero_to_the_current_rate(rate):
    split = toy_split()
    current = f"{split.y.mean():.4f}"
    with pytest.raises(ValueError) as error:
        thin_positives(split, rate, np.random.default_rng(0), "val")
    message = str(error.value)
    assert f"dataset.positive_rate={rate} is outside (0, {current}]" in message
    assert "the val split's current positive rate" in message and f"at most {current}" in message


def test_adult_thinned_to_two_percent(real_data_dir):
    full = load_dataset("adult", data_dir=real_data_dir, seed=0)
    data = load_dataset("adult", data_dir=real_data_dir, seed=0, positive_rate=0.02)
    for name in ("train", "val", "test"):
        assert_thinned(getattr(data, name), getattr(full, name), 0.02)
    again = load_dataset("adult", data_dir=real_data_dir, seed=0, positive_rate=0.02)
    np.testing.assert_array_equal(again.train.x, data.train.x)
    np.testing.assert_array_equal(again.test.y, data.test.y)
    other = load_dataset("adult", data_dir=real_data_dir, seed=1, positive_rate=0.02)
    # The test split is the same file for every seed; another seed keeps other positives of it.
    assert other.test.n == data.test.n and not np.array_equal(other.test.y, data.test.y)
    with pytest.raises(
        ValueError, match=r"dataset.positive_rate=0.3 is outside \(0, 0.24\d\d\], the train split"
    ):
        load_dataset("adult", data_dir=real_data_dir, positive_rate=0.3)


@pytest.mark.parametrize(
    "name, rate", [("bank_marketing", 0.05), pytest.param("fashion_mnist", 0.1, marks=pytest.mark.slow)]
)
def test_thinned_positives_of_the_other_real_datasets(real_data_dir, name, rate):
    full = load_dataset(name, data_dir=real_data_dir, seed=0)
    data = load_dataset(name, data_dir=real_data_dir, seed=0, positive_rate=rate)
    for split in ("train", "val", "test"):
        assert_thinned(getattr(data, split), getattr(full, split), rate)


# ----------------------------------------------------------------------------------------- files loader


def test_files_csv_with_validation_tables():
    data = load_dataset(
        "files",
        data_dir=FIXTURES,
        **FILES,
        val_path="val.csv",
        val_bags_path="val_bags.csv",
        feature_columns=["age", "income"],
    )
    assert data.train.y is None and data.val.y is None
    assert data.train.n == 20 and data.val.n == 5 and data.test.n == 4
    assert data.given_counts == {
        "train": {10: 1, 11: 2, 12: 1, 13: 3, 14: 0, 15: 2, 16: 1, 17: 2},
        "val": {1: 1, 2: 2},
    }
    assert data.train.x.shape == (20, 2) and data.train.x.dtype == np.float32
    np.testing.assert_array_equal(data.val.bag_ids, [1, 1, 2, 2, 2])
    np.testing.assert_array_equal(data.test.y, [0, 1, 1, 0])
    assert data.test.bag_ids is None
    bags = make_bags(data.train, BaggingSettings("given"), counts=data.given_counts["train"])
    np.testing.assert_array_equal(bags.sizes, [3, 3, 2, 4, 2, 2, 2, 2])


def test_files_categorical_one_hot_like_adult():
    data = load_dataset(
        "files",
        data_dir=FIXTURES,
        **FILES,
        val_path="val.csv",
        val_bags_path="val_bags.csv",
        categorical_columns=["color"],
    )
    # age, income, then color=? / blue / green / red.
    assert data.train.x.shape == (20, 6)
    np.testing.assert_allclose(data.train.x[:, :2].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_array_equal(data.train.x[6, 2:], [1, 0, 0, 0])  # "?" is its own category
    np.testing.assert_array_equal(data.test.x[0, 2:], [0, 0, 0, 1])  # red
    np.testing.assert_array_equal(data.test.x[2, 2:], [0, 0, 0, 0])  # purple, unseen in training
    assert list(data.test.categorical["color"]) == ["red", "green", "purple", "blue"]


@pytest.mark.parametrize("factor", [1e200, 1e-300])
def test_files_column_scaled_to_the_edge_of_float64_is_standardised_as_unscaled(tmp_path, factor):
    """A column of 1e200s or 1e-300s (every table alike) encodes as the unscaled column does: its squares
    overflowed or underflowed in the standard deviation, and the column became 0 (issue 25)."""
    tables = ("train.csv", "val.csv", "test.csv")
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    for name in tables:
        frame = pd.read_csv(FIXTURES / name)
        frame["income"] = frame["income"] * factor
        frame.to_csv(tmp_path / name, index=False)
    options = dict(
        **FILES, val_path="val.csv", val_bags_path="val_bags.csv", feature_columns=["age", "income"]
    )
    scaled, plain = (load_dataset("files", data_dir=folder, **options) for folder in (tmp_path, FIXTURES))
    for split in ("train", "val", "test"):
        x, expected = getattr(scaled, split).x, getattr(plain, split).x
        assert np.abs(x[:, 1]).max() > 0.5, (split, x[:, 1])
        np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)


def test_files_parquet_and_proportions(tmp_path):
    for name in ("train", "test", "bags_proportion"):
        pd.read_csv(FIXTURES / f"{name}.csv").to_parquet(tmp_path / f"{name}.parquet")
    data = load_dataset(
        "files",
        data_dir=tmp_path,
        train_path="train.parquet",
        bags_path="bags_proportion.parquet",
        test_path="test.parquet",
        proportion_column="proportion",
        categorical_columns=["color"],
    )
    counts = {**data.given_counts["train"], **data.given_counts["val"]}
    expected = {10: 1, 11: 2, 12: 1, 13: 3, 14: 0, 15: 2, 16: 1, 17: 2}
    assert counts.keys() == expected.keys()
    np.testing.assert_allclose([counts[k] for k in expected], list(expected.values()))


def test_files_holds_out_whole_bags():
    data = load_dataset("files", data_dir=FIXTURES, **FILES, val_fraction=0.25, categorical_columns=["color"])
    train_bags, val_bags = set(data.train.bag_ids.tolist()), set(data.val.bag_ids.tolist())
    assert len(val_bags) == 2 and not train_bags & val_bags and len(train_bags | val_bags) == 8
    assert set(data.given_counts["val"]) == val_bags and set(data.given_counts["train"]) == train_bags
    assert data.train.n + data.val.n == 20
    again = load_dataset(
        "files", data_dir=FIXTURES, **FILES, val_fraction=0.25, categorical_columns=["color"]
    )
    np.testing.assert_array_equal(again.val.bag_ids, data.val.bag_ids)


def write_bags(folder: Path, text: str) -> None:
    for name in ("train.csv", "test.csv"):
        shutil.copy(FIXTURES / name, folder / name)
    (folder / "bags.csv").write_text(text)


@pytest.mark.parametrize(
    "bag_table, options, message",
    [
        ("bag_id,count\n10,1\n11,2\n", {}, r"6 bag id\(s\) have no count, e.g. \[12, 13"),
        (
            "bag_id,p\n" + "".join(f"{b},0.5\n" for b in range(10, 18)).replace("13,0.5", "13,1.5"),
            {"proportion_column": "p"},
            r"proportion\(s\) in column 'p' lie outside \[0, 1\], e.g. bag 13: 1.5",
        ),
        ("bag_id,count\n10,1\n10,1\n", {}, r"bag id\(s\) \[10\] appear more than once"),
        ("bag,count\n10,1\n", {}, r"no column\(s\) \['bag_id'\]"),
    ],
)
def test_files_bag_table_errors(tmp_path, bag_table, options, message):
    write_bags(tmp_path, bag_table)
    with pytest.raises(ValueError, match=message) as error:
        load_dataset("files", data_dir=tmp_path, **FILES, **options, categorical_columns=["color"])
    assert "bags.csv" in str(error.value)


def test_files_counts_within_float_rounding_are_whole_numbers(tmp_path):
    write_bags(tmp_path, "bag_id,count\n" + "".join(f"{b},{1 + 1e-9}\n" for b in range(10, 18)))
    data = load_dataset("files", data_dir=tmp_path, **FILES, val_fraction=0.25, categorical_columns=["color"])
    counts = {**data.given_counts["train"], **data.given_counts["val"]}
    assert counts == dict.fromkeys(range(10, 18), 1.0)


def test_files_missing_file_and_option(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"train_path='train.csv': no such file .*train.csv \(relative paths"
    ):
        load_dataset("files", data_dir=tmp_path, **FILES)
    with pytest.raises(ValueError, match=r"needs \['bags_path', 'test_path'\]"):
        load_dataset("files", data_dir=tmp_path, train_path="train.csv")
    with pytest.raises(ValueError, match="categorical_columns"):
        load_dataset("files", data_dir=FIXTURES, **FILES, categorical_columns=["shape"])
    with pytest.raises(
        ValueError, match="column 'color' is not numeric .*list it among the categorical columns"
    ):
        load_dataset("files", data_dir=FIXTURES, **FILES)


# ----------------------------------------------------------------------------------------- synthetic


def test_synthetic_splits_and_determinism():
    data = load_dataset("synthetic", seed=3, n=2_000, dim=8)
    assert (data.train.n, data.val.n, data.test.n) == (1_400, 300, 300)
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int32
    assert data.feature_shape == (8,)
    again = load_dataset("synthetic", seed=3, n=2_000, dim=8)
    np.testing.assert_array_equal(again.train.x, data.train.x)
    np.testing.assert_array_equal(again.test.y, data.test.y)
    other = load_dataset("synthetic", seed=4, n=2_000, dim=8)
    assert not np.array_equal(other.train.x, data.train.x)


@pytest.mark.parametrize("positive_rate", [0.1, 0.3, 0.5])
def test_synthetic_positive_rate(positive_rate):
    _, y = generate(n=20_000, dim=16, positive_rate=positive_rate, n_clusters=32, seed=0)
    assert abs(y.mean() - positive_rate) < 0.015


def _neighbour_label_agreement(x, y):
    neighbours = NearestNeighbors(n_neighbors=6).fit(x).kneighbors(x, return_distance=False)[:, 1:]
    return (y[neighbours] == y[:, None]).mean()


def test_synthetic_neighbours_share_labels():
    x, y = generate(n=5_000, dim=16, positive_rate=0.3, n_clusters=32, seed=0)
    chance = y.mean() ** 2 + (1 - y.mean()) ** 2
    assert _neighbour_label_agreement(x, y) > chance + 0.15


def test_synthetic_cluster_std_sets_how_clear_the_clusters_are():
    agreements = [
        _neighbour_label_agreement(*generate(5_000, 16, 0.3, 32, seed=0, cluster_std=std))
        for std in (1.0, 0.5, 0.2)
    ]
    assert agreements[0] < agreements[1] < agreements[2]


def test_synthetic_bad_options():
    with pytest.raises(ValueError, match="n=10 is out of range"):
        load_dataset("synthetic", n=10)
    with pytest.raises(ValueError, match="positive_rate=1.0"):
        load_dataset("synthetic", positive_rate=1.0)
    with pytest.raises(ValueError, match="cluster_std=0"):
        load_dataset("synthetic", cluster_std=0)


@pytest.mark.slow
def test_synthetic_ten_million_rows():
    x, y = generate(n=10_000_000, dim=16, positive_rate=0.3, n_clusters=32, seed=0)
    assert x.shape == (10_000_000, 16) and x.dtype == np.float32
    assert abs(y.mean() - 0.3) < 0.005
