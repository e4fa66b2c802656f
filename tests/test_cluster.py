"""Sweeps as a cluster runs them: the submitit launcher (locally) and an Optuna search, each through the
command line, each job in its own folder."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST

from llp_jax.methods import METHODS

TRAIN = Path(__file__).resolve().parents[1] / "scripts" / "train.py"


def sweep(*overrides, cwd):
    completed = subprocess.run(
        [sys.executable, str(TRAIN), "-m", *FAST, *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout + completed.stderr


@pytest.mark.slow
def test_a_submitit_sweep_of_two_jobs_completes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep("hydra/launcher=submitit_local", "seed=0,1", f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    runs = sorted((tmp_path / "sweep").glob("*/metrics.json"))
    assert [json.loads(path.read_text())["seed"] for path in runs] == [0, 1]


@pytest.mark.slow
def test_optuna_minimises_the_validation_objective(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    overrides = ["hparams_search=llp_bp_optuna", "method=llp_bp", "schedule=easyllp_warm", "bp.max_iters=20"]
    overrides += ["hydra.sweeper.n_trials=3"]
    log = sweep(*overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    best = float(re.search(r"Best value: ([0-9.eE+-]+)", log).group(1))
    runs = [json.loads(path.read_text()) for path in (tmp_path / "sweep").glob("*/metrics.json")]
    failed = list((tmp_path / "sweep").glob("*/failed.json"))  # a trial may stop (BP off the counts)
    assert len(runs) + len(failed) == 3 and runs and all(run["method"] == "llp_bp" for run in runs)
    assert log.count("Failed experiment") == len(failed)  # told to Optuna as failed; the search went on
    assert best == pytest.approx(min(run["selection_loss"] for run in runs))  # the validation criterion
    assert best not in [run["test_auc"] for run in runs]


def test_hydra_info_prints_each_line_once(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(TRAIN), "--info"], cwd=tmp_path, capture_output=True, text=True
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0 and output.count("Installed Hydra Plugins") == 1, output[:500]


@pytest.mark.slow
def test_help_lists_the_config_groups_without_internal_schemas(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(TRAIN), "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    groups = completed.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert f"method: {', '.join(sorted(METHODS))}" in groups and "schema" not in groups, groups
