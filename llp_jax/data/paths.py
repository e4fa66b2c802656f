"""Where the real datasets live: the data directory and the files inside it.

The data directory is, in order: the `data_dir` argument, the environment variable LLP_JAX_DATA_DIR,
the user cache folder ($XDG_CACHE_HOME or ~/.cache, then llp_jax/). Each dataset has its own subfolder
(bank_marketing/, adult/, fashion_mnist/) holding the original public files.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

ENV_VAR = "LLP_JAX_DATA_DIR"
_FILES_READ: ContextVar[list[Path] | None] = ContextVar("llp_jax_files_read", default=None)


@contextmanager
def recording_files() -> Iterator[list[Path]]:
    """Within the block, every file a loader resolves (`dataset_file`, `user_file`: every file any loader
    reads) is appended, once, to the list yielded: the files a run's data come from, which its data
    fingerprint hashes (llp_jax.provenance.data_fingerprint)."""
    files: list[Path] = []
    token = _FILES_READ.set(files)
    try:
        yield files
    finally:
        _FILES_READ.reset(token)


def _recorded(path: Path) -> Path:
    files = _FILES_READ.get()
    if files is not None and path not in files:
        files.append(path)
    return path


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
    return _recorded(path)


def _check_not_folder_or_loop(full: Path, path: str | os.PathLike, option: str) -> None:
    """IsADirectoryError where `full` is a folder, OSError where it is a symlink loop (where a missing
    file's error would mislead)."""
    if full.is_dir():
        raise IsADirectoryError(
            f"{option}={str(path)!r}: {full} is a directory, not a file; give the path of a table in it"
        )
    try:
        full.stat()
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(
                f"{option}={str(path)!r}: {full} is a symlink loop (its links point at each other, never "
                "at a file); point the link at the table, or give the table's own path"
            ) from None


def user_file(data_dir: str | os.PathLike | None, path: str | os.PathLike, option: str) -> Path:
    """A researcher's own file: `path` as given if absolute, else relative to the data directory.

    option: name of the loader option that gave `path`, quoted in the error if the file is missing.
    """
    root, origin = _resolve(data_dir)
    full = Path(path).expanduser()
    full = full if full.is_absolute() else root / full
    _check_not_folder_or_loop(full, path, option)
    if not full.is_file():
        raise FileNotFoundError(
            f"{option}={str(path)!r}: no such file {full} (relative paths are read from the data "
            f"directory {root}, taken from {origin}). Fix the path or the data directory."
        )
    return _recorded(full)
