import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from llp_jax.config import compose
from llp_jax.experiment import use_compilation_cache

# A small, fast run on the built-in synthetic data (llp_jax/configs/debug/fast.yaml), DLLP unless a later
# method= override names another (the last override of a group wins).
FAST = ["debug=fast", "model.widths=[16,8]", "method=dllp"]

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23; the unit roundoff u is half of it


def float32_sum_error(n_terms: int, abs_sum: float, typical: bool = False) -> float:
    """How far a float32 sum of `n_terms` terms whose absolute values add to `abs_sum` can lie from the
    same sum taken in another order (or from the exact sum): (n - 1) eps32 sum|terms| at worst (each order
    is within (n - 1) u sum|terms| of the exact sum, u = eps32 / 2: Higham, Accuracy and Stability of
    Numerical Algorithms, section 4.2), whatever order a reduction takes (a GPU's scatter-adds and tree
    reductions follow none that a test can know). typical=True: sqrt(n) eps32 sum|terms|, 2 sqrt(3) ~ 3.5
    standard deviations of n independent rounding errors uniform in +-u, each relative to a partial sum
    no larger than sum|terms| (the probabilistic analysis of Higham and Mary, SIAM J. Sci. Comput. 2019):
    the size real errors reach, and at thousands of terms the only bound tight enough for a test to mean
    something."""
    steps = np.sqrt(n_terms) if typical else n_terms - 1
    return float(steps * EPS32 * abs_sum)


_CACHE = "LLP_JAX_COMPILATION_CACHE"
_cache_key = pytest.StashKey[tuple]()


def pytest_configure(config):
    """One persistent compilation cache for the session, fresh for each session: tests build the same
    programs again and again (every fit makes its training step anew), and a cache hit costs milliseconds
    where a compilation costs seconds (tests/test_llp_bp.py: 90 s with it, 136 s without, 2-core CPU,
    empty cache at the start). Set before collection, as JAX decides whether to use the cache at its
    first compilation. Subprocesses started by tests (command-line runs) share it through
    LLP_JAX_COMPILATION_CACHE, which the config's compilation_cache_dir reads."""
    folder = tempfile.mkdtemp(prefix="llp-jax-test-compilations-")
    config.stash[_cache_key] = (folder, os.environ.get(_CACHE))
    os.environ[_CACHE] = folder
    use_compilation_cache(folder)


def pytest_unconfigure(config):
    folder, previous = config.stash.get(_cache_key, (None, None))
    if folder is None:
        return
    shutil.rmtree(folder, ignore_errors=True)
    if previous is None:
        os.environ.pop(_CACHE, None)
    else:
        os.environ[_CACHE] = previous


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder of the real datasets (LLP_JAX_DATA_DIR: ../shared/datasets in CI)."""
    if not os.environ.get("LLP_JAX_DATA_DIR"):
        pytest.fail(
            "LLP_JAX_DATA_DIR is not set: point it at the datasets folder (../shared/datasets in CI, see "
            "its README) to run the tests of the real datasets"
        )
    return Path(os.environ["LLP_JAX_DATA_DIR"])


@pytest.fixture
def compose_config():
    """compose_config(*overrides) -> the composed DictConfig, as the command line would see it."""
    return compose


def benchmark_module(name: str):
    """benchmarks/<name>.py imported as a module (the folder is no package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args, cwd, env=None) -> subprocess.Popen:
    """scripts/train.py with the given arguments, started in `cwd` (stdout and stderr piped, as text)."""
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, str(root / "scripts" / "train.py"), *args]
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
