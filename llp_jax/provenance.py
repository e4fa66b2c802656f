"""Where a result came from: the code's git commit, the package versions, the device and the host."""

from __future__ import annotations

import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import jax

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
    """git commit, package versions, device kind and count, platform, host and Python version."""
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
        "python": platform.python_version(),
    }
