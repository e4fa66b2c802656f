"""Built-in synthetic data: Gaussian clusters in a small latent space, mapped non-linearly to features.

Generative process, all drawn from `seed`:
  cluster   k ~ Categorical(w),                   w ~ Dirichlet(5, ..., 5) over n_clusters
  latent    z = c_k + cluster_std N(0, I),        c_k ~ N(0, CENTER_SCALE^2 I), in LATENT_DIM dimensions
  features  x = tanh(z W1 + b1) W2 + NOISE * N(0, I),   a fixed random two-layer map to `dim` columns
  label     y = 1[a_k + sin(z u1) + cos(z u2) > t],      a_k ~ N(0, BIAS_SCALE^2)
K > 2 classes (n_classes) take the same family with a score per class c,
            s_c = a_k[c] + sin(z u_c) + cos(z u_{K+c}),   a_k ~ N(0, BIAS_SCALE^2 I_K),
  label     y = argmax_c s_c                            (positive_rate does not apply and is ignored)
The cluster bias a_k makes most clusters mostly one class, so neighbours carry label information;
the sine and cosine terms bend the class boundary inside the mixed clusters. A cluster_std below the
default 1 gives clear cluster structure: tight, well separated clusters whose members mostly share a
label. The threshold t is the (1 - positive_rate) quantile of the score on a calibration sample, so the
realised rate is close to the requested one whatever n is. Rows are generated in fixed-size chunks, each
from its own child seed, so 1e7 rows take no more memory than the float32 output plus one chunk.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from llp_jax.data.dataset import Dataset, Split, check_n_classes

NAME = "synthetic"
LATENT_DIM = 4
HIDDEN = 32
CENTER_SCALE = 2.5
BIAS_SCALE = 1.5
NOISE = 0.1
CHUNK = 1 << 18
N_CALIBRATION = 1 << 17
MIN_N, MAX_N = 1_000, 10_000_000
FRACTIONS = (0.70, 0.15, 0.15)  # train, val, test


class Generator(NamedTuple):
    """The fixed parameters of one synthetic distribution.

    weights: float64[n_clusters]   centers: float32[n_clusters, LATENT_DIM]
    bias: float32[n_clusters] (binary) or float32[n_clusters, K] (K > 2 classes: one bias per class)
    w1: float32[LATENT_DIM, HIDDEN]   b1: float32[HIDDEN]   w2: float32[HIDDEN, dim]
    u: float32[LATENT_DIM, 2] (binary) or float32[LATENT_DIM, 2K]: directions of the sine terms (the
       first half of the columns) and the cosine terms (the second half) of the score(s)
    """

    weights: np.ndarray
    centers: np.ndarray
    bias: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    u: np.ndarray


def _make_generator(rng: np.random.Generator, dim: int, n_clusters: int, n_classes: int = 2) -> Generator:
    """The parameters, drawn from `rng` in the same order for any n_classes (2: the binary shapes)."""

    def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    per_class = () if n_classes == 2 else (n_classes,)
    return Generator(
        weights=rng.dirichlet(np.full(n_clusters, 5.0)),
        centers=normal(n_clusters, LATENT_DIM, scale=CENTER_SCALE),
        bias=normal(n_clusters, *per_class, scale=BIAS_SCALE),
        w1=normal(LATENT_DIM, HIDDEN, scale=1.5 / (CENTER_SCALE * np.sqrt(LATENT_DIM))),
        b1=normal(HIDDEN, scale=0.5),
        w2=normal(HIDDEN, dim, scale=1.0 / np.sqrt(HIDDEN)),
        u=normal(LATENT_DIM, 2 * (n_classes if per_class else 1), scale=1.0 / np.sqrt(LATENT_DIM)),
    )


def _sample(
    gen: Generator, rng: np.random.Generator, m: int, cluster_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """m rows: features float32[m, dim] and label scores, float32[m] (binary: against a threshold) or
    float32[m, K] (K classes: the label is the argmax)."""
    cluster = rng.choice(len(gen.weights), size=m, p=gen.weights)
    z = gen.centers[cluster] + cluster_std * rng.standard_normal((m, LATENT_DIM), dtype=np.float32)
    x = np.tanh(z @ gen.w1 + gen.b1) @ gen.w2
    x += NOISE * rng.standard_normal(x.shape, dtype=np.float32)
    projected = z @ gen.u
    if gen.bias.ndim == 1:
        return x, gen.bias[cluster] + np.sin(projected[:, 0]) + np.cos(projected[:, 1])
    n_classes = gen.bias.shape[1]
    return x, gen.bias[cluster] + np.sin(projected[:, :n_classes]) + np.cos(projected[:, n_classes:])


def _check(
    n: int, dim: int, positive_rate: float, n_clusters: int, cluster_std: float, n_classes: int
) -> None:
    if not MIN_N <= n <= MAX_N:
        raise ValueError(f"dataset.n={n} is out of range; choose n between {MIN_N:,} and {MAX_N:,}")
    if dim < 1 or n_clusters < 1:
        raise ValueError(f"dataset.dim={dim} and dataset.n_clusters={n_clusters} must both be at least 1")
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"dataset.positive_rate={positive_rate} must lie strictly between 0 and 1, e.g. 0.3")
    if not cluster_std > 0.0:
        raise ValueError(
            f"dataset.cluster_std={cluster_std} must be positive (default 1; 0.3 for clear clusters)"
        )
    check_n_classes(n_classes, "dataset.n_classes")


def generate(
    n: int,
    dim: int,
    positive_rate: float,
    n_clusters: int,
    seed: int,
    cluster_std: float = 1.0,
    n_classes: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """n rows of the distribution of `seed`: x float32[n, dim], y int32[n] in 0..n_classes-1
    (positive_rate is the share of 1s for 2 classes and is ignored for more)."""
    _check(n, dim, positive_rate, n_clusters, cluster_std, n_classes)
    params_seed, calibration_seed, *chunk_seeds = np.random.SeedSequence(seed).spawn(2 + -(-n // CHUNK))
    gen = _make_generator(np.random.default_rng(params_seed), dim, n_clusters, n_classes)
    if n_classes == 2:
        _, calibration = _sample(gen, np.random.default_rng(calibration_seed), N_CALIBRATION, cluster_std)
        threshold = np.quantile(calibration, 1.0 - positive_rate)
    x = np.empty((n, dim), dtype=np.float32)
    y = np.empty(n, dtype=np.int32)
    for start, chunk_seed in zip(range(0, n, CHUNK), chunk_seeds, strict=True):
        stop = min(start + CHUNK, n)
        x[start:stop], score = _sample(gen, np.random.default_rng(chunk_seed), stop - start, cluster_std)
        y[start:stop] = score > threshold if n_classes == 2 else score.argmax(axis=1)
    return x, y


def load(
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    n: int = 20_000,
    dim: int = 16,
    positive_rate: float = 0.3,
    n_clusters: int = 32,
    cluster_std: float = 1.0,
    n_classes: int = 2,
) -> Dataset:
    """n rows split 70 / 15 / 15 into train / val / test; x: float32[n_split, dim], y: int32[n_split].

    n: 1e3 to 1e7. Deterministic from `seed`. `data_dir` is unused (the data are built in). n_classes > 2
    gives K-class labels 0..K-1 (the module's K-class generator; positive_rate is then ignored).
    """
    x, y = generate(
        int(n), int(dim), float(positive_rate), int(n_clusters), seed, float(cluster_std), n_classes
    )
    n_train = round(FRACTIONS[0] * len(x))
    n_val = round(FRACTIONS[1] * len(x))
    bounds = [(0, n_train), (n_train, n_train + n_val), (n_train + n_val, len(x))]
    train, val, test = (Split(x=x[a:b], y=y[a:b]) for a, b in bounds)
    return Dataset(name=NAME, train=train, val=val, test=test, n_classes=n_classes)
