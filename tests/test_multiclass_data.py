"""K-class labels through the data and bags layer (issue 26): bag count vectors against a per-bag
np.bincount, the Bags properties, given count vectors and their errors, classes missing from the training
bags, fashion_mnist's 10 classes against its raw label files, the synthetic K-class generator, and the
files dataset's wide and long K-class bag tables. Binary data and bags must stay as they were.

Tests of fashion_mnist read it from $LLP_JAX_DATA_DIR (the shared datasets folder in CI).
"""

import gzip
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llp_jax.data import BaggingSettings, load_dataset, make_bags, synthetic
from llp_jax.data.bags import (
    check_bags_learnable,
    check_classes_present,
    feature_bags,
    given_bags,
    random_bags,
    sized_random_bags,
)
from llp_jax.data.dataset import Dataset, Split, holdout_split, thin_dataset
from llp_jax.degenerate import DegenerateWarning


def per_bag_counts(bags, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """int64[n_bags, K]: the oracle, np.bincount of the labels of each bag's members, bag by bag."""
    return np.stack(
        [np.bincount(labels[bags.members[b][bags.mask[b]]], minlength=n_classes) for b in range(bags.n_bags)]
    )


def labels_of(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_classes, n).astype(np.int32)


# ----------------------------------------------------------------------------------------- bags


@pytest.mark.parametrize("n_classes", [3, 5, 10])
def test_random_and_sized_bags_count_vectors_match_a_per_bag_bincount(n_classes):
    labels = labels_of(1003, n_classes)
    for bags in (
        random_bags(1003, 32, labels, seed=1, n_classes=n_classes),
        random_bags(1003, 32, labels, seed=1, drop_last=True, n_classes=n_classes),
        sized_random_bags(1003, (10, 40), labels, seed=2, n_classes=n_classes),
    ):
        assert bags.counts.shape == (bags.n_bags, n_classes) and bags.counts.dtype == np.float32
        np.testing.assert_array_equal(bags.counts, per_bag_counts(bags, labels, n_classes))
        np.testing.assert_array_equal(bags.counts.sum(axis=1), bags.sizes)
        assert bags.n_classes == n_classes


def test_feature_and_given_bags_count_vectors_match_a_per_bag_bincount():
    n, n_classes = 2000, 4
    rng = np.random.default_rng(3)
    labels = labels_of(n, n_classes, seed=4)
    categorical = {"a": rng.integers(0, 7, n).astype(object), "b": rng.choice(["x", "y"], n).astype(object)}
    feature = feature_bags(categorical, ["a", "b"], labels, 5, 1000, n_classes=n_classes)
    np.testing.assert_array_equal(feature.counts, per_bag_counts(feature, labels, n_classes))
    ids = rng.integers(100, 160, n)
    given = given_bags(ids, labels=labels, n_classes=n_classes)
    np.testing.assert_array_equal(given.counts, per_bag_counts(given, labels, n_classes))
    # make_bags passes n_classes to every kind
    split = Split(x=np.zeros((n, 1), np.float32), y=labels, categorical=categorical, bag_ids=ids)
    for settings in (
        BaggingSettings("random", bag_size=50),
        BaggingSettings("random", size_range=(20, 60)),
        BaggingSettings("feature", columns=("a",), min_size=1),
        BaggingSettings("given"),
    ):
        bags = make_bags(split, settings, seed=5, n_classes=n_classes)
        np.testing.assert_array_equal(bags.counts, per_bag_counts(bags, labels, n_classes))


def test_class_counts_proportions_and_class_rates():
    labels = labels_of(500, 3, seed=6)
    bags = random_bags(500, 64, labels, seed=0, n_classes=3)
    np.testing.assert_array_equal(bags.class_counts, bags.counts)
    np.testing.assert_allclose(bags.proportions, bags.counts / bags.sizes[:, None], rtol=1e-7)
    assert bags.proportions.dtype == np.float32
    np.testing.assert_allclose(bags.class_rates, np.bincount(labels, minlength=3) / 500, rtol=1e-12)
    assert bags.class_rates.dtype == np.float64
    with pytest.raises(ValueError, match="positive_rate is defined for binary bags; these have 3 classes"):
        _ = bags.positive_rate


def test_binary_bags_keep_their_form_and_formulas():
    labels = labels_of(1003, 2, seed=7)
    bags = random_bags(1003, 32, labels, seed=1)
    oracle = per_bag_counts(bags, labels, 2)
    assert bags.counts.shape == (bags.n_bags,) and bags.counts.dtype == np.float32 and bags.n_classes == 2
    np.testing.assert_array_equal(bags.counts, oracle[:, 1])
    np.testing.assert_array_equal(bags.proportions, (bags.counts / bags.sizes).astype(np.float32))
    assert bags.positive_rate == float(bags.counts.sum() / bags.sizes.sum())
    np.testing.assert_array_equal(bags.class_counts, oracle)
    np.testing.assert_allclose(bags.class_rates, [1 - bags.positive_rate, bags.positive_rate], rtol=1e-12)
    # the same 0/1 labels read as 3 classes: the same bags, class 2 empty
    three = random_bags(1003, 32, labels, seed=1, n_classes=3)
    np.testing.assert_array_equal(three.members, bags.members)
    np.testing.assert_array_equal(three.counts, np.c_[oracle, np.zeros(bags.n_bags)])


def test_labels_outside_the_classes_are_named():
    with pytest.raises(
        ValueError, match=r"labels must be classes 0..2, found values \[3, 7\] \(2 row\(s\)\)"
    ):
        random_bags(5, 2, [0, 1, 3, 2, 7], seed=0, n_classes=3)
    with pytest.raises(ValueError, match=r"labels must be 0 or 1, found values \[2\]"):
        random_bags(3, 2, [0, 1, 2], seed=0)
    with pytest.raises(ValueError, match=r"n_classes=1 must be an integer >= 2"):
        random_bags(3, 2, [0, 0, 0], seed=0, n_classes=1)


# ------------------------------------------------------------------------------------- given count vectors

IDS = np.array([7, 7, 7, 9, 9, 4])  # bag 4: 1 row, bag 7: 3 rows, bag 9: 2 rows


def test_given_count_vectors_in_bag_id_order_fractions_allowed_when_they_sum():
    counts = {7: [0.5, 1.5, 1.0], 9: np.array([2, 0, 0]), 4: (0, 0, 1)}
    bags = given_bags(IDS, counts, n_classes=3)
    np.testing.assert_array_equal(bags.counts, [[0, 0, 1], [0.5, 1.5, 1.0], [2, 0, 0]])
    np.testing.assert_array_equal(bags.sizes, [1, 3, 2])


@pytest.mark.parametrize(
    "counts, message",
    [
        (
            {7: [1, 1, 1], 9: [2, 0], 4: [1, 0, 0]},
            r"1 bag\(s\) have a count vector of the wrong length, e.g. bag 9: length 2 for K=3 classes; "
            "give one count per class",
        ),
        ({7: [1, 1, 1], 9: 2, 4: [1, 0, 0]}, r"e.g. bag 9: length 1 for K=3 classes"),
        (
            {7: [1, 1, 1], 9: [3, -1, 0], 4: [1, 0, 0]},
            r"1 bag\(s\) have a negative or missing class count, e.g. bag 9: counts \[3.0, -1.0, 0.0\]",
        ),
        ({7: [1, 1, 1], 9: [1, np.nan, 1], 4: [1, 0, 0]}, r"negative or missing class count, e.g. bag 9"),
        (
            {7: [1, 1, 2], 9: [1, 1, 0], 4: [1, 0, 0]},
            r"1 bag\(s\) have class counts that do not sum to the bag size, e.g. bag 7: counts "
            r"\[1.0, 1.0, 2.0\] sum to 4 for 3 rows",
        ),
        ({7: [1, 1, 1.00001], 9: [1, 1, 0], 4: [1, 0, 0]}, r"e.g. bag 7: .* sum to 3.00001 for 3 rows"),
    ],
)
def test_given_count_vector_errors_name_the_bag(counts, message):
    with pytest.raises(ValueError, match=message):
        given_bags(IDS, counts, n_classes=3)


def test_given_count_vectors_within_float_rounding_of_the_size_pass():
    bags = given_bags(IDS, {7: [1, 1, 1 + 1e-7], 9: [1, 1, 0], 4: [1, 0, 0]}, n_classes=3)
    assert bags.counts[1].sum() == pytest.approx(3)


def test_count_vectors_for_binary_bags_name_n_classes():
    with pytest.raises(ValueError, match=r"counts hold vectors of length 3 .* pass n_classes=3"):
        given_bags(IDS, {7: [1, 1, 1], 9: [1, 1, 0], 4: [1, 0, 0]})


# ----------------------------------------------------------------------------------------- checks


def test_check_classes_present_names_every_missing_class():
    labels = np.where(labels_of(400, 2, seed=8) == 1, 2, 0)  # classes 0 and 2 of 4
    bags = random_bags(400, 20, labels, seed=0, n_classes=4)
    with pytest.raises(ValueError) as failure:
        check_classes_present(bags, "train")
    message = str(failure.value)
    assert (
        "class(es) [1, 3] of the 4 classes appear in no bag of the train split (20 bag(s) of 400 rows)"
        in (message)
    )
    assert "use more data (or other bags) that contain them, or fewer classes" in message
    check_classes_present(random_bags(400, 20, labels_of(400, 4), seed=0, n_classes=4))
    check_classes_present(random_bags(400, 20, np.zeros(400, np.int32), seed=0))  # binary: not its check


def test_check_bags_learnable_warns_on_k_class_bags_of_one_class():
    bags = random_bags(90, 10, np.full(90, 2), seed=0, n_classes=3)
    with pytest.warns(DegenerateWarning, match=r"every bag of the train split is fully of class 2 .*9 bag"):
        check_bags_learnable(bags)
    with pytest.warns(DegenerateWarning, match=r"fully negative \(count 0\)"):
        check_bags_learnable(random_bags(90, 10, np.zeros(90), seed=0))


def test_thinning_positives_is_binary_only():
    data = load_dataset("synthetic", n=1000, n_classes=3)
    with pytest.raises(
        ValueError, match=r"positive_rate=0.1 thins the positive class of a binary task, but "
    ):
        thin_dataset(data, 0.1, seed=0)
    assert thin_dataset(data, None, seed=0) is data


def test_dataset_n_classes_must_be_two_or_more():
    split = Split(x=np.zeros((2, 1), np.float32), y=np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"n_classes=1 must be an integer >= 2"):
        Dataset("d", split, split, split, n_classes=1)


# ----------------------------------------------------------------------------------------- fashion_mnist


def raw_labels(folder: Path, prefix: str) -> np.ndarray:
    """The label file's bytes after its 8-byte header (magic, count), read without the loader."""
    with gzip.open(folder / "fashion_mnist" / f"{prefix}-labels-idx1-ubyte.gz", "rb") as file:
        return np.frombuffer(file.read(), dtype=np.uint8, offset=8)


@pytest.mark.slow
def test_fashion_mnist_all_classes_are_the_raw_labels(real_data_dir):
    data = load_dataset("fashion_mnist", data_dir=real_data_dir, classes="all", seed=3)
    assert data.n_classes == 10
    assert (data.train.n, data.val.n, data.test.n) == (54_000, 6_000, 10_000)
    train_rows, val_rows = holdout_split(60_000, 0.1, 3)
    raw = raw_labels(real_data_dir, "train")
    for split, expected in [(data.train, raw[train_rows]), (data.val, raw[val_rows])]:
        assert split.y.dtype == np.int32
        np.testing.assert_array_equal(split.y, expected)
    np.testing.assert_array_equal(data.test.y, raw_labels(real_data_dir, "t10k"))
    binary = load_dataset("fashion_mnist", data_dir=real_data_dir, seed=3)
    assert binary.n_classes == 2
    np.testing.assert_array_equal(binary.train.x, data.train.x)
    np.testing.assert_array_equal(binary.train.y, np.isin(data.train.y, [0, 2, 4, 6]))
    with pytest.raises(ValueError, match=r"positive_rate=0.1 thins .* fashion_mnist data have 10 classes"):
        load_dataset("fashion_mnist", data_dir=real_data_dir, classes="all", positive_rate=0.1)


def test_fashion_mnist_unknown_class_task(tmp_path):
    with pytest.raises(ValueError, match=r"dataset.classes='ten'; choose 'binary' .* or 'all'"):
        load_dataset("fashion_mnist", data_dir=tmp_path, classes="ten")  # before any file is read


# ----------------------------------------------------------------------------------------- synthetic


def test_synthetic_binary_output_unchanged():
    """Label checksums and feature sums of the binary generator as the code before K classes gave them."""
    for options, y_sha256, x_sum, first, last in [
        (
            dict(n=5000, seed=0),
            "c46ce532f02a5e01349a696e2130e330f79e6a3e9798cc7cfdee936067fc4544",
            -4257.980986834387,
            0.22330747544765472,
            -0.4263420104980469,
        ),
        (
            dict(n=20000, seed=3, dim=8, positive_rate=0.2, n_clusters=8, cluster_std=0.5),
            "ee151eb7bd09d59cdfcac8ecdf6753676af8da6fc6e46d951a6cda8d1fdd98f5",
            2238.4703930785763,
            -0.16344939172267914,
            -0.7265965342521667,
        ),
    ]:
        data = load_dataset("synthetic", **options)
        assert data.n_classes == 2
        y = np.concatenate([data.train.y, data.val.y, data.test.y])
        x = np.concatenate([data.train.x, data.val.x, data.test.x])
        assert hashlib.sha256(y.tobytes()).hexdigest() == y_sha256
        assert float(x.astype(np.float64).sum()) == pytest.approx(x_sum, rel=1e-6)
        assert (float(x[0, 0]), float(x[-1, -1])) == pytest.approx((first, last), rel=1e-6)


def test_synthetic_k_classes():
    data = load_dataset("synthetic", n=5000, seed=1, n_classes=5)
    assert data.n_classes == 5
    for split in (data.train, data.val, data.test):
        assert split.y.dtype == np.int32
        assert set(np.unique(split.y)) == set(range(5))
    assert np.bincount(data.train.y).min() > 0.05 * data.train.n
    again = load_dataset("synthetic", n=5000, seed=1, n_classes=5, positive_rate=0.7)  # rate ignored
    np.testing.assert_array_equal(again.train.x, data.train.x)
    np.testing.assert_array_equal(again.train.y, data.train.y)
    other = load_dataset("synthetic", n=5000, seed=2, n_classes=5)
    assert not np.array_equal(other.train.y, data.train.y)
    with pytest.raises(
        ValueError, match=r"dataset.n_classes=1 must be an integer >= 2 .* dataset.n_classes=5"
    ):
        load_dataset("synthetic", n_classes=1)


def test_synthetic_k_class_scores_follow_the_documented_formula():
    """s_c = a_k[c] + sin(z u_c) + cos(z u_{K+c}), recomputed class by class from the same draws."""
    n_classes, n_clusters, m = 4, 5, 300
    gen = synthetic._make_generator(np.random.default_rng(0), 3, n_clusters, n_classes)
    assert gen.bias.shape == (n_clusters, n_classes) and gen.u.shape == (synthetic.LATENT_DIM, 2 * n_classes)
    _, score = synthetic._sample(gen, np.random.default_rng(1), m, 0.5)
    rng = np.random.default_rng(1)  # _sample's draws: the clusters, then the latent noise
    cluster = rng.choice(n_clusters, size=m, p=gen.weights)
    z = gen.centers[cluster] + 0.5 * rng.standard_normal((m, synthetic.LATENT_DIM), dtype=np.float32)
    for c in range(n_classes):
        expected = gen.bias[cluster, c] + np.sin(z @ gen.u[:, c]) + np.cos(z @ gen.u[:, n_classes + c])
        np.testing.assert_allclose(score[:, c], expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------- files, K classes

TRAIN = "bag_id,f1,f2\n" + "".join(
    f"{bag},{row},{bag * row % 5}\n" for bag in (1, 2, 3, 4) for row in range(3)
)
WIDE = "bag_id,n_a,n_b,n_c\n1,3,0,0\n2,1,1,1\n3,0,2,1\n4,0,0,3\n"
LONG = "bag_id,class,count\n1,ant,3\n2,ant,1\n2,bee,1\n2,cat,1\n3,bee,2\n3,cat,1\n4,cat,3\n"
VECTORS = {1: [3, 0, 0], 2: [1, 1, 1], 3: [0, 2, 1], 4: [0, 0, 3]}
TEST = "f1,f2,label\n0,1,{}\n1,2,{}\n2,3,{}\n"


def write(folder: Path, **tables: str) -> Path:
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text)
    return folder


def load_files(folder: Path, **options):
    paths = dict(train_path="train.csv", bags_path="bags.csv", test_path="test.csv")
    return load_dataset("files", data_dir=folder, **paths, **options)


def assert_counts(counts: dict, expected: dict):
    assert sorted(counts) == sorted(expected)
    for bag, vector in counts.items():
        assert isinstance(vector, np.ndarray) and vector.dtype == np.float64
        np.testing.assert_array_equal(vector, expected[bag])


def test_files_wide_count_columns_round_trip(tmp_path):
    write(tmp_path, train=TRAIN, bags=WIDE, test=TEST.format(2, 0, 1))
    data = load_files(tmp_path, count_columns=["n_a", "n_b", "n_c"], val_fraction=0.25)
    assert data.n_classes == 3
    counts = {**data.given_counts["train"], **data.given_counts["val"]}
    assert_counts(counts, VECTORS)
    np.testing.assert_array_equal(data.test.y, [2, 0, 1])
    bags = make_bags(data.train, BaggingSettings("given"), counts=data.given_counts["train"], n_classes=3)
    expected = [VECTORS[bag] for bag in sorted(data.given_counts["train"])]
    np.testing.assert_array_equal(bags.counts, expected)


def test_files_wide_proportion_columns_are_the_class_shares_times_the_bag_sizes(tmp_path):
    """Shares written with three decimals (1/3 as 0.333) are read as the counts they round: each row
    normalised, times its bag's 3 rows."""
    shares = "bag_id,p_a,p_b,p_c\n1,1,0,0\n2,0.333,0.333,0.333\n3,0,0.667,0.333\n4,0,0,1\n"
    write(tmp_path, train=TRAIN, bags=shares, test=TEST.format(2, 0, 1))
    data = load_files(tmp_path, proportion_columns=["p_a", "p_b", "p_c"], val_fraction=0.25)
    assert data.n_classes == 3
    counts = {**data.given_counts["train"], **data.given_counts["val"]}
    assert sorted(counts) == [1, 2, 3, 4]
    for bag, vector in counts.items():
        np.testing.assert_allclose(vector, VECTORS[bag], atol=2e-3)  # 0.667 / 1.000 of 3 rows: 2.001
        assert vector.sum() == pytest.approx(3.0, abs=1e-12)


@pytest.mark.parametrize(
    "shares, message",
    [
        (
            "1,1,0,0\n2,0.5,0.2,0.2\n3,0,0.667,0.333\n4,0,0,1\n",
            r"1 bag\(s\) have class proportions that do not "
            r"sum to 1, e.g. bag 2: \[0.5, 0.2, 0.2\] sum to 0.9",
        ),
        (
            "1,1.5,-0.5,0\n2,0.333,0.333,0.333\n3,0,0.667,0.333\n4,0,0,1\n",
            r"2 class proportion\(s\) lie outside "
            r"\[0, 1\], e.g. bag 1: 1.5 for class 0",
        ),
    ],
)
def test_files_wide_proportion_errors(tmp_path, shares, message):
    write(tmp_path, train=TRAIN, bags="bag_id,p_a,p_b,p_c\n" + shares, test=TEST.format(2, 0, 1))
    with pytest.raises(ValueError, match=message):
        load_files(tmp_path, proportion_columns=["p_a", "p_b", "p_c"])
    with pytest.raises(
        ValueError, match=r"dataset.count_columns=\['a', 'b', 'c'\] and dataset.proportion_columns"
    ):
        load_files(tmp_path, proportion_columns=["p_a", "p_b", "p_c"], count_columns=["a", "b", "c"])


def test_files_long_class_column_round_trip_with_validation_tables(tmp_path):
    val = "bag_id,f1,f2\n8,1,1\n8,2,2\n9,0,0\n"
    val_bags = "bag_id,class,count\n8,cat,2\n9,ant,1\n"  # classes named by the training table
    write(tmp_path, train=TRAIN, bags=LONG, test=TEST.format("cat", "ant", "bee"), val=val, val_bags=val_bags)
    data = load_files(tmp_path, class_column="class", val_path="val.csv", val_bags_path="val_bags.csv")
    assert data.n_classes == 3
    assert_counts(data.given_counts["train"], VECTORS)  # ant, bee, cat -> 0, 1, 2; no row: count 0
    assert_counts(data.given_counts["val"], {8: [0, 0, 2], 9: [1, 0, 0]})
    np.testing.assert_array_equal(data.test.y, [2, 0, 1])


def test_files_binary_tables_keep_float_counts():
    data = load_dataset(
        "files",
        data_dir=Path(__file__).parent / "fixtures" / "files",
        train_path="train.csv",
        bags_path="bags.csv",
        test_path="test.csv",
        categorical_columns=["color"],
    )
    assert data.n_classes == 2
    assert all(type(count) is float for count in data.given_counts["train"].values())


@pytest.mark.parametrize(
    "bags, test, options, message",
    [
        (
            WIDE,
            TEST.format(0, 1, 2),
            dict(count_columns=["n_a", "n_b", "n_c"], class_column="class"),
            r"dataset.count_columns=\['n_a', 'n_b', 'n_c'\] and dataset.class_column='class' are two forms",
        ),
        (
            WIDE,
            TEST.format(0, 1, 2),
            dict(count_columns=["n_a", "n_b", "n_c"], proportion_column="p"),
            r"dataset.proportion_column='p' is for binary bag tables; .* set proportion_column=null",
        ),
        (
            WIDE,
            TEST.format(0, 1, 1),
            dict(count_columns=["n_a", "n_b"]),
            r"dataset.count_columns=\['n_a', 'n_b'\] gives 2 class\(es\); K-class tables need 3 or more",
        ),
        (
            WIDE.replace("3,0,2,1", "3,-1,3,1"),
            TEST.format(0, 1, 2),
            dict(count_columns=["n_a", "n_b", "n_c"]),
            r"bags.csv does not fit its data table: 1 bag\(s\) have a negative or missing class count, "
            r"e.g. bag 3: counts \[-1.0, 3.0, 1.0\]",
        ),
        (
            WIDE.replace("2,1,1,1", "2,1,1,2"),
            TEST.format(0, 1, 2),
            dict(count_columns=["n_a", "n_b", "n_c"]),
            r"bags.csv does not fit its data table: 1 bag\(s\) have class counts that do not sum to the bag "
            r"size, e.g. bag 2: counts \[1.0, 1.0, 2.0\] sum to 4 for 3 rows",
        ),
        (
            WIDE,
            TEST.format(0, 3, 2),
            dict(count_columns=["n_a", "n_b", "n_c"]),
            r"test.csv: label column 'label' holds label\(s\) \[3\] that are not among the bag tables' "
            r"classes \[0, 1, 2\]",
        ),
        (
            LONG.replace("3,cat,1\n", ""),  # no row: count 0, and bag 3 then sums to 2 of its 3 rows
            TEST.format("ant", "bee", "cat"),
            dict(class_column="class"),
            r"bags.csv does not fit its data table: .* e.g. bag 3: counts \[0.0, 2.0, 0.0\] sum to 2 "
            "for 3 rows",
        ),
        (
            LONG,
            TEST.format("ant", "dog", "cat"),
            dict(class_column="class"),
            r"test.csv: label column 'label' holds label\(s\) \['dog'\] that are not among the bag tables' "
            r"classes \['ant', 'bee', 'cat'\]",
        ),
        (
            LONG + "2,bee,0\n",
            TEST.format("ant", "bee", "cat"),
            dict(class_column="class"),
            r"bags.csv: bag 2 has more than one row for class 'bee' \(data row 8\); keep one row per bag",
        ),
        (
            LONG.replace("cat", "ant"),
            TEST.format("ant", "bee", "ant"),
            dict(class_column="class"),
            r"bags.csv: class column 'class' holds 2 class\(es\) \['ant', 'bee'\]; K-class tables need 3",
        ),
        (
            LONG.replace("2,bee,1", "2,,1"),
            TEST.format("ant", "bee", "cat"),
            dict(class_column="class"),
            r"bags.csv: class column 'class' has 1 missing value\(s\), e.g. for bag 2 \(data row 3\)",
        ),
    ],
)
def test_files_k_class_errors(tmp_path, bags, test, options, message):
    write(tmp_path, train=TRAIN, bags=bags, test=test)
    with pytest.raises(ValueError, match=message):
        load_files(tmp_path, **options)


def test_files_long_validation_class_unknown_to_training(tmp_path):
    val, val_bags = "bag_id,f1,f2\n8,1,1\n", "bag_id,class,count\n8,dog,1\n"
    write(tmp_path, train=TRAIN, bags=LONG, test=TEST.format("ant", "bee", "cat"), val=val, val_bags=val_bags)
    with pytest.raises(
        ValueError,
        match=r"val_bags.csv: class column 'class' holds class\(es\) \['dog'\] that are not among the bag "
        r"tables' classes \['ant', 'bee', 'cat'\]",
    ):
        load_files(tmp_path, class_column="class", val_path="val.csv", val_bags_path="val_bags.csv")


def test_files_long_table_reads_parquet_class_numbers(tmp_path):
    """Numeric class values sort as numbers (2 < 10) and the test labels map with them."""
    long = pd.read_csv(io.StringIO(LONG)).replace({"class": {"ant": 2, "bee": 10, "cat": 30}})
    long.to_parquet(tmp_path / "bags.parquet")
    write(tmp_path, train=TRAIN, test=TEST.format(30, 2, 10))
    data = load_dataset(
        "files",
        data_dir=tmp_path,
        train_path="train.csv",
        bags_path="bags.parquet",
        test_path="test.csv",
        class_column="class",
    )
    assert_counts({**data.given_counts["train"], **data.given_counts["val"]}, VECTORS)
    np.testing.assert_array_equal(data.test.y, [2, 0, 1])
