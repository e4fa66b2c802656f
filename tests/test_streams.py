import jax
import numpy as np
import pytest

from llp_jax.streams import stream_key, stream_seed


def test_streams_are_deterministic_and_distinct():
    assert stream_seed(3, "train_bags") == stream_seed(3, "train_bags")
    seeds = {stream_seed(seed, name) for seed in range(5) for name in ("split", "train_bags", "val_bags")}
    assert len(seeds) == 15


def test_round_streams_do_not_alias_other_seeds():
    """With seed arithmetic, run seed s round r was run seed s + r round 0; named streams never are."""
    key = jax.random.key
    seeds = [(s, r) for s in range(4) for r in range(4)]
    draws = {
        (s, r): float(jax.random.uniform(stream_key(stream_key(key(s), "method"), "round", r)))
        for s, r in seeds
    }
    assert len(set(draws.values())) == len(seeds)
    assert stream_seed(0, "round", 1) != stream_seed(1, "round", 0)


def test_stream_key_matches_folding_in_each_name():
    root = jax.random.key(7)
    a = stream_key(root, "round", 2)
    b = stream_key(stream_key(root, "round"), 2)
    np.testing.assert_array_equal(jax.random.key_data(a), jax.random.key_data(b))


@pytest.mark.parametrize("name", [-1, 2**32, 1.5])
def test_bad_stream_names_fail_clearly(name):
    with pytest.raises(ValueError, match="a stream is named by strings and indices"):
        stream_seed(0, name)
