import jax
import numpy as np

from llp_jax.data.bags import Bags, random_bags
from llp_jax.train.loop import _buckets, _epoch_batches, bucket_widths


def _bags_of_sizes(sizes):
    sizes = np.asarray(sizes)
    members = np.zeros((len(sizes), sizes.max()), np.int32)
    mask = np.arange(sizes.max()) < sizes[:, None]
    members[mask] = np.arange(sizes.sum())
    return Bags(members, mask, sizes.astype(np.int32), np.zeros(len(sizes), np.float32))


def test_bags_of_nearly_equal_size_train_at_one_width():
    bags = random_bags(1_000, 64, np.zeros(1_000, np.int32), seed=0)  # 15 bags of 64 and one of 40
    assert set(bucket_widths(bags.sizes)) == {64}


def test_bags_of_very_unequal_size_train_at_powers_of_two():
    widths = bucket_widths(np.array([3, 8, 9, 100, 1000, 1500]))
    np.testing.assert_array_equal(widths, [4, 8, 16, 128, 1024, 1500])


def test_an_epoch_uses_each_bag_at_most_once_and_batches_bags_of_one_width():
    rng = np.random.default_rng(0)
    sizes = np.concatenate([rng.integers(1, 9, 300), rng.integers(200, 700, 20)])
    bags = _bags_of_sizes(sizes)
    widths = bucket_widths(bags.sizes)
    buckets = _buckets(bags, np.zeros(sizes.sum(), np.float32), widths, batch_size=64)
    global_index = [np.flatnonzero(widths == width) for width in np.unique(widths)]
    assert all(
        np.array_equal(bucket.index, index) for bucket, index in zip(buckets, global_index, strict=True)
    )
    batches = _epoch_batches(jax.random.key(0), len(sizes), buckets)
    used = np.concatenate([global_index[b][index] for b, index in batches])
    assert len(used) == len(set(used.tolist()))
    for bucket_index, bucket in enumerate(buckets):
        in_batches = sum(len(index) for b, index in batches if b == bucket_index)
        assert all(len(index) == bucket.per_batch for b, index in batches if b == bucket_index)
        assert 0 <= len(global_index[bucket_index]) - in_batches < bucket.per_batch
        # Each bucket's members are its bags' members, cut to its width.
        np.testing.assert_array_equal(
            np.asarray(bucket.members)[np.asarray(bucket.data.mask)],
            bags.members[global_index[bucket_index]][bags.mask[global_index[bucket_index]]],
        )
    other_epoch = _epoch_batches(jax.random.key(1), len(sizes), buckets)
    assert [b for b, _ in other_epoch] != [b for b, _ in batches]
