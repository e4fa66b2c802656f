"""Where the real datasets live: the data directory and the files inside it.

The data directory is, in order: the `data_dir` argument, the environment variable LLP_JAX_DATA_DIR,
the user cache folder ($XDG_CACHE_HOME or ~/.cache, then llp_jax/). Each dataset has its own subfolder
(bank_marketing/, adult/, fashion_mnist/) holding the original public files.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LLP_JAX_DATA_DIR"


def _resolve(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The data directory and a few words saying where the choice came from."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "the data_dir argument"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"the environment variable {ENV_VAR}"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llp_jax", f"the default cache folder (neither data_dir nor {ENV_VAR} was set)"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: `data_dir`, else $LLP_JAX_DATA_DIR, else ~/.cache/llp_jax."""
    return _resolve(data_dir)[0]


def dataset_file(data_dir: str | os.PathLike | None, dataset: str, filename: str, source: str) -> Path:
    """Path of `filename` in the `dataset` subfolder of the data directory.

    Raises FileNotFoundError naming the file, the folder searched, how that folder was chosen and
    `source`, the public place to get the file from.
    """
    root, origin = _resolve(data_dir)
    path = root / dataset / filename
    if not path.is_file():
        raise FileNotFoundError(
            f"dataset {dataset!r}: missing file {filename!r}; searched {root / dataset} "
            f"(data directory from {origin}). Get it from {source} and put it in that folder, "
            f"or point data_dir / {ENV_VAR} at a folder that contains {dataset}/{filename}."
        )
    return path


def user_file(data_dir: str | os.PathLike | None, path: str | os.PathLike, option: str) -> Path:
    """A researcher's own file: `path` as given if absolute, else relative to the data directory.

    option: name of the loader option that gave `path`, quoted in the error if the file is missing.
    """
    root, origin = _resolve(data_dir)
    full = Path(path).expanduser()
    full = full if full.is_absolute() else root / full
    if not full.is_file():
        raise FileNotFoundError(
            f"{option}={str(path)!r}: no such file {full} (relative paths are read from the data "
            f"directory {root}, taken from {origin}). Fix the path or the data directory."
        )
    return full
