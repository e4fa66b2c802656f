"""Where a result came from: the code's git commit, the package versions, the device and the host; and
the data it used (`data_fingerprint`), which a resumed run must find unchanged (`check_same_data`)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from llp_jax.data.dataset import SPLITS, Dataset

PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGES = ("llp_jax", "jax", "jaxlib", "flax", "optax", "numpy", "hydra-core", "orbax-checkpoint")


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PACKAGE_DIR, capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def git_commit() -> str | None:
    """The commit of the checkout holding this package, with "-dirty" when tracked files have uncommitted
    changes; None outside a git checkout (an installed package) or without git."""
    try:
        commit = _git("rev-parse", "HEAD")
        return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    """git commit, package versions, device kind and count, platform, host, process id (which of a packed
    sweep's processes ran it) and Python version."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    device = jax.devices()[0]
    return {
        "git_commit": git_commit(),
        "versions": versions,
        "device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count()},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
    }


# The run folder's record of the data a run started with, compared when the run resumes.
FINGERPRINT_FILE = "data_fingerprint.json"
_FILE_DIGESTS: dict[tuple, str] = {}


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read in chunks (hashlib.file_digest), never whole into memory.
    Kept for this process under the file's identity and state (device, inode, size, modification and
    change times): the runs of one process (a sweep's jobs, a resumed run's check and its loading) read a
    large file once, and a file written since is read again."""
    state = os.stat(path)
    key = (os.path.abspath(path), state.st_dev, state.st_ino, state.st_size)
    key += (state.st_mtime_ns, state.st_ctime_ns)
    if key not in _FILE_DIGESTS:
        with open(path, "rb") as file:
            _FILE_DIGESTS[key] = hashlib.file_digest(file, "sha256").hexdigest()
    return _FILE_DIGESTS[key]


def arrays_sha256(data: Dataset) -> str:
    """The sha256 (hex) of a dataset's arrays, as a run trains and tests on them: each split's features,
    labels and bag ids with their dtypes and shapes (float32 features of 45,000 rows x 100: 18 MB, about
    0.03 s)."""
    digest = hashlib.sha256()
    for name in SPLITS:
        split = getattr(data, name)
        for array in (split.x, split.y, split.bag_ids):
            if array is None:
                digest.update(f"{name}: none;".encode())
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{name}: {array.dtype.str} {array.shape};".encode())
            digest.update(array.data)
    return digest.hexdigest()


def data_fingerprint(data: Dataset, files: Sequence[Path]) -> dict[str, str]:
    """What a run's data were: file path -> sha256 of every file the loader read (`files`:
    llp_jax.data.paths.recording_files), or, for data read from no file (the built-in synthetic data),
    "<dataset> arrays" -> the sha256 of its arrays (`arrays_sha256`)."""
    if files:
        return {str(path): file_sha256(path) for path in files}
    return {f"{data.name} arrays": arrays_sha256(data)}


def _changes(saved: dict[str, str], now: dict[str, str | None]) -> list[str]:
    """What differs between two fingerprints, an entry each: the file (or arrays) and both digests."""
    changes = []
    for name in sorted(set(saved) | set(now)):
        before, after = saved.get(name), now.get(name)
        if before == after:
            continue
        if before is None:
            changes.append(f"{name} (not read when the run started)")
        elif after is None:
            changes.append(f"{name} (missing now)")
        else:
            changes.append(f"{name} (sha256 {before[:12]}... when the run started, {after[:12]}... now)")
    return changes


def check_same_data(run_dir: Path, now: dict[str, str] | None = None) -> None:
    """ValueError naming what changed when the data a resumed run reads differ from those it started with
    (run_dir/data_fingerprint.json; a run started before fingerprints were kept has none: no check).
    now: the fingerprint of the data just loaded; None: the files the run started with, hashed again before
    anything is loaded (arrays can only be compared once loaded)."""
    path = run_dir / FINGERPRINT_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    if now is None:
        files = [name for name in saved if not name.endswith(" arrays")]
        saved = {name: saved[name] for name in files}
        now = {name: file_sha256(name) for name in files if Path(name).is_file()}
    changes = _changes(saved, now)
    if changes:
        raise ValueError(
            f"the data of the run in {run_dir} changed since it started: {'; '.join(changes)}. Resumed, the "
            "run would train on two datasets: put the data back as they were, or start a new run in another "
            "folder (hydra.run.dir=..., without train.resume=true)"
        )


def record_data_fingerprint(run_dir: Path, fingerprint: dict[str, str]) -> None:
    """Keep `fingerprint` (`data_fingerprint`) in run_dir/data_fingerprint.json; a resumed run, which finds
    it there, must match it (`check_same_data`)."""
    path = run_dir / FINGERPRINT_FILE
    if path.exists():
        check_same_data(run_dir, fingerprint)
        return
    partial = run_dir / (FINGERPRINT_FILE + ".tmp")
    partial.write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)  # atomic: a kill leaves no half-written fingerprint
