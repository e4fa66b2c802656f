"""Random, feature and given bags, and the make_bags dispatcher."""

import numpy as np
import pytest

from llp_jax.data.bags import (
    BaggingSettings,
    Bags,
    feature_bags,
    given_bags,
    make_bags,
    random_bags,
    sized_random_bags,
)
from llp_jax.data.dataset import Split


def assert_well_formed(bags: Bags, labels: np.ndarray) -> np.ndarray:
    """Checks padding, mask, sizes and counts; returns the covered rows (each must appear once)."""
    assert bags.members.dtype == np.int32 and bags.mask.dtype == bool
    assert bags.sizes.dtype == np.int32 and bags.counts.dtype == np.float32
    assert bags.members.shape == bags.mask.shape == (bags.n_bags, bags.max_size)
    assert (bags.members[~bags.mask] == 0).all()
    np.testing.assert_array_equal(bags.sizes, bags.mask.sum(axis=1))
    assert bags.max_size == bags.sizes.max()
    # Real members fill the first slots of each row.
    np.testing.assert_array_equal(bags.mask, np.arange(bags.max_size) < bags.sizes[:, None])
    np.testing.assert_array_equal(bags.counts, (labels[bags.members] * bags.mask).sum(axis=1))
    covered = bags.members[bags.mask]
    assert len(np.unique(covered)) == len(covered)
    return covered


def labels_of(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < 0.3).astype(np.int32)


@pytest.mark.parametrize("n, bag_size", [(100, 10), (103, 10), (7, 3), (5, 1)])
def test_random_bags_cover_every_row_once(n, bag_size):
    labels = labels_of(n)
    bags = random_bags(n, bag_size, labels, seed=0)
    covered = assert_well_formed(bags, labels)
    np.testing.assert_array_equal(np.sort(covered), np.arange(n))
    expected = [bag_size] * (n // bag_size) + ([n % bag_size] if n % bag_size else [])
    np.testing.assert_array_equal(bags.sizes, expected)


def test_random_bags_drop_last_leaves_remainder_out():
    labels = labels_of(103)
    bags = random_bags(103, 10, labels, seed=0, drop_last=True)
    covered = assert_well_formed(bags, labels)
    np.testing.assert_array_equal(bags.sizes, [10] * 10)
    assert len(covered) == 100
    # Without drop_last the same shuffle gives the same first bags plus the remainder.
    full = random_bags(103, 10, labels, seed=0)
    np.testing.assert_array_equal(full.members[:10], bags.members)
    assert full.sizes[-1] == 3


def test_random_bags_are_deterministic_by_seed():
    labels = labels_of(50)
    a = random_bags(50, 8, labels, seed=3)
    b = random_bags(50, 8, labels, seed=3)
    c = random_bags(50, 8, labels, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.members, c.members)


def test_random_bags_larger_than_n_give_one_bag():
    labels = labels_of(7)
    for drop_last in (False, True):
        bags = random_bags(7, 100, labels, seed=0, drop_last=drop_last)
        assert bags.n_bags == 1 and bags.sizes[0] == 7 and bags.counts[0] == labels.sum()


def test_random_bags_reject_bad_arguments():
    with pytest.raises(ValueError, match="bagging.bag_size=0 must be an integer >= 1"):
        random_bags(10, 0, labels_of(10), seed=0)
    with pytest.raises(ValueError, match=r"labels have shape \(9,\) but the split has 10 rows"):
        random_bags(10, 3, labels_of(9), seed=0)
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        random_bags(3, 2, np.array([0, 2, 1]), seed=0)


@pytest.mark.parametrize(
    "n, size_range", [(10_000, (500, 1500)), (1_003, (4, 9)), (50, (1, 3)), (37, (5, 5))]
)
def test_sized_random_bags_cover_every_row_once_with_sizes_in_range(n, size_range):
    low, high = size_range
    labels = labels_of(n)
    for seed in range(5):
        bags = sized_random_bags(n, size_range, labels, seed=seed)
        covered = assert_well_formed(bags, labels)  # counts are the label sums of the members
        np.testing.assert_array_equal(np.sort(covered), np.arange(n))
        assert ((bags.sizes[:-1] >= low) & (bags.sizes[:-1] <= high)).all()
        assert low <= bags.sizes[-1] <= high + low - 1  # the last bag may hold a merged remainder


@pytest.mark.parametrize(
    "n, size_range, drop_last, sizes",
    [
        (12, (3, 3), False, [3, 3, 3, 3]),  # no remainder
        (10, (3, 3), False, [3, 3, 4]),  # 1 row left over, fewer than low: joins the previous bag
        (11, (3, 3), False, [3, 3, 5]),
        (11, (3, 3), True, [3, 3, 3]),  # ... or is left out with drop_last
        (11, (2, 2), False, [2, 2, 2, 2, 3]),
        (5, (5, 8), False, [5]),  # exactly low rows: one bag of all of them
    ],
)
def test_sized_random_bags_remainder_rule(n, size_range, drop_last, sizes):
    labels = labels_of(n)
    bags = sized_random_bags(n, size_range, labels, seed=0, drop_last=drop_last)
    assert_well_formed(bags, labels)
    np.testing.assert_array_equal(bags.sizes, sizes)


@pytest.mark.parametrize("drop_last", [False, True])
def test_sized_random_bags_refuse_a_split_smaller_than_the_range(drop_last):
    """Fewer rows than low: the one bag of them all would lie outside the range (issue 25)."""
    with pytest.raises(
        ValueError, match=r"bagging.size_range=\[5, 8\]: a split of 3 rows cannot hold one bag"
    ):
        sized_random_bags(3, (5, 8), labels_of(3), seed=0, drop_last=drop_last)


def test_sized_random_bags_keep_or_merge_the_remainder():
    labels = labels_of(1_000)
    merged = 0
    for seed in range(20):
        full = sized_random_bags(1_000, (40, 60), labels, seed=seed)
        dropped = sized_random_bags(1_000, (40, 60), labels, seed=seed, drop_last=True)
        remainder = 1_000 - dropped.sizes.sum()
        if remainder == 0:  # the rows left over (>= 40) made the last bag: drop_last keeps it too
            np.testing.assert_array_equal(dropped.sizes, full.sizes)
        else:  # under 40 rows were left over: they joined the previous bag, or are in none with drop_last
            merged += 1
            assert 0 < remainder < 40
            np.testing.assert_array_equal(full.sizes[:-1], dropped.sizes[:-1])
            assert full.sizes[-1] == dropped.sizes[-1] + remainder
            np.testing.assert_array_equal(full.members[:, : dropped.max_size][:-1], dropped.members[:-1])
    assert 0 < merged < 20  # both cases occurred


def test_sized_random_bags_are_deterministic_by_seed():
    labels = labels_of(2_000)
    a = sized_random_bags(2_000, (50, 150), labels, seed=3)
    b = sized_random_bags(2_000, (50, 150), labels, seed=3)
    c = sized_random_bags(2_000, (50, 150), labels, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.sizes, c.sizes)
    assert len(np.unique(a.sizes)) > 10  # the sizes really vary


@pytest.mark.parametrize("size_range", [(0, 5), (6, 5), (1, 2, 3)])
def test_sized_random_bags_reject_a_bad_range(size_range):
    with pytest.raises(
        ValueError, match=r"bagging.size_range=\[.*\]; expected two integers .* 1 <= low <= high"
    ):
        sized_random_bags(10, size_range, labels_of(10), seed=0)


def test_proportions():
    labels = np.array([1, 0, 0, 1, 1, 1], dtype=np.int32)
    bags = given_bags(np.array([5, 5, 5, 5, 9, 9]), labels=labels)
    np.testing.assert_allclose(bags.proportions, [0.5, 1.0])


CATEGORICAL = {
    "color": np.array(["red", "red", "blue", "red", "blue", "green", "red", "blue"], dtype=object),
    "size": np.array(["S", "L", "S", "S", "S", "L", "L", "S"], dtype=object),
}
LABELS = np.array([1, 0, 1, 1, 0, 0, 1, 1], dtype=np.int32)


def test_feature_bags_one_column():
    bags = feature_bags(CATEGORICAL, ["color"], LABELS, min_size=1, max_size=100)
    assert_well_formed(bags, LABELS)
    # Sorted group values: blue, green, red; members in row order.
    np.testing.assert_array_equal(bags.sizes, [3, 1, 4])
    np.testing.assert_array_equal(bags.members[0, :3], [2, 4, 7])
    np.testing.assert_array_equal(bags.members[2], [0, 1, 3, 6])
    np.testing.assert_array_equal(bags.counts, [2, 0, 3])


def test_feature_bags_size_limits_drop_groups():
    bags = feature_bags(CATEGORICAL, ["color"], LABELS, min_size=2, max_size=3)
    covered = assert_well_formed(bags, LABELS)
    np.testing.assert_array_equal(bags.sizes, [3])
    np.testing.assert_array_equal(np.sort(covered), [2, 4, 7])


def test_feature_bags_two_columns():
    bags = feature_bags(CATEGORICAL, ["color", "size"], LABELS, min_size=1, max_size=8)
    covered = assert_well_formed(bags, LABELS)
    np.testing.assert_array_equal(np.sort(covered), np.arange(8))
    groups = {tuple(sorted(row[m].tolist())) for row, m in zip(bags.members, bags.mask, strict=True)}
    assert groups == {(2, 4, 7), (5,), (1, 6), (0, 3)}
    # Every bag is pure in both columns.
    for row, m in zip(bags.members, bags.mask, strict=True):
        for column in CATEGORICAL.values():
            assert len(set(column[row[m]])) == 1


def test_feature_bags_errors():
    with pytest.raises(
        ValueError, match=r"unknown categorical column\(s\) \['shape'\]; available: \['color', 'size'\]"
    ):
        feature_bags(CATEGORICAL, ["shape"], LABELS, 1, 10)
    with pytest.raises(ValueError, match="the 3 groups have 1 to 4 rows"):
        feature_bags(CATEGORICAL, ["color"], LABELS, 5, 10)
    with pytest.raises(ValueError, match="1 or 2 categorical columns"):
        feature_bags(CATEGORICAL, [], LABELS, 1, 10)
    with pytest.raises(ValueError, match="min_size <= max_size"):
        feature_bags(CATEGORICAL, ["color"], LABELS, 4, 2)


def test_given_bags_from_counts_and_from_labels():
    bag_ids = np.array([7, 3, 7, 3, 3, 9])
    labels = np.array([1, 0, 1, 1, 0, 0])
    from_counts = given_bags(bag_ids, counts={3: 1.5, 7: 2, 9: 0, 100: 4})
    np.testing.assert_array_equal(from_counts.sizes, [3, 2, 1])
    np.testing.assert_array_equal(from_counts.members[0], [1, 3, 4])
    np.testing.assert_allclose(from_counts.counts, [1.5, 2, 0])
    from_labels = given_bags(bag_ids, labels=labels)
    assert_well_formed(from_labels, labels)
    np.testing.assert_array_equal(from_labels.counts, [1, 2, 0])


def test_given_bags_errors():
    bag_ids = np.array([1, 1, 2])
    with pytest.raises(ValueError, match=r"1 bag id\(s\) have no count, e.g. \[2\]"):
        given_bags(bag_ids, counts={1: 1})
    with pytest.raises(ValueError, match="bag 1: count 3.0 for 2 rows"):
        given_bags(bag_ids, counts={1: 3, 2: 0})
    with pytest.raises(ValueError, match="integer array"):
        given_bags(np.array([1.0, 2.0]), counts={1: 0, 2: 0})
    with pytest.raises(ValueError, match="pass counts"):
        given_bags(bag_ids)


def test_make_bags_dispatches_every_kind():
    split = Split(
        x=np.zeros((8, 2), np.float32),
        y=LABELS,
        categorical=CATEGORICAL,
        bag_ids=np.array([0, 0, 1, 1, 1, 2, 2, 2]),
    )
    random = make_bags(split, BaggingSettings("random", bag_size=3), seed=1)
    np.testing.assert_array_equal(random.members, random_bags(8, 3, LABELS, seed=1).members)
    feature = make_bags(split, BaggingSettings("feature", columns=("color",), min_size=2))
    np.testing.assert_array_equal(feature.sizes, [3, 4])
    given = make_bags(split, BaggingSettings("given"))
    np.testing.assert_array_equal(given.counts, [1, 2, 2])
    given = make_bags(split, BaggingSettings("given"), counts={0: 0.5, 1: 1, 2: 2})
    np.testing.assert_allclose(given.counts, [0.5, 1, 2])
    with pytest.raises(
        ValueError, match=r"unknown bag kind 'bagged'; choose one of \['random', 'feature', 'given'\]"
    ):
        make_bags(split, BaggingSettings("bagged"))
    with pytest.raises(ValueError, match="bagging.bag_size=0 must be an integer >= 1"):
        make_bags(split, BaggingSettings("random", bag_size=0))
    sized = make_bags(split, BaggingSettings("random", bag_size=0, size_range=(2, 3)), seed=1)
    np.testing.assert_array_equal(sized.members, sized_random_bags(8, (2, 3), LABELS, seed=1).members)


def test_make_bags_without_labels_or_ids():
    unlabelled = Split(x=np.zeros((4, 1), np.float32), y=None, bag_ids=np.array([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="y is None"):
        make_bags(unlabelled, BaggingSettings("random", bag_size=2))
    np.testing.assert_array_equal(
        make_bags(unlabelled, BaggingSettings("given"), counts={0: 1, 1: 2}).counts, [1, 2]
    )
    with pytest.raises(ValueError, match="needs a split with bag_ids"):
        make_bags(Split(x=np.zeros((4, 1), np.float32), y=np.zeros(4, np.int32)), BaggingSettings("given"))
