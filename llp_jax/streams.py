"""Named random streams: every random choice of a run draws from a stream named for what it is for.

    split_seed = stream_seed(seed, "split")        # an int, for numpy-seeded code (splits, bags)
    key = stream_key(jax.random.key(seed), "method")
    init_key = stream_key(key, "init")             # a jax key, for initialisation and batch order
    round_key = stream_key(key, "round", 2)        # the second LLP-BP round

Streams are derived by name, not by offsetting the seed: with `seed + round` arithmetic run seed s,
round r was initialised like run seed s + r, round 0; named streams of different names or seeds never
coincide by construction (numpy's SeedSequence spawn keys, jax's fold_in).
"""

from __future__ import annotations

import zlib

import jax
import numpy as np


def _word(part: str | int) -> int:
    """A stream name (or index) as a 32-bit word: crc32 of a name, the number itself for an index."""
    if isinstance(part, str):
        return zlib.crc32(part.encode("utf-8"))
    if isinstance(part, int | np.integer) and 0 <= part < 2**32:
        return int(part)
    raise ValueError(f"a stream is named by strings and indices in [0, 2**32), got {part!r}")


def stream_seed(seed: int, *names: str | int) -> int:
    """An int seed in [0, 2**32) for the stream `names` of run seed `seed` (a non-negative int)."""
    sequence = np.random.SeedSequence(seed, spawn_key=tuple(_word(name) for name in names))
    return int(sequence.generate_state(1, np.uint32)[0])


def stream_key(key: jax.Array, *names: str | int) -> jax.Array:
    """The jax PRNG key of the stream `names` below `key`: fold_in of each name's word in turn."""
    for name in names:
        key = jax.random.fold_in(key, _word(name))
    return key
