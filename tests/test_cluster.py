"""Sweeps as a cluster runs them: the submitit launcher (locally) and an Optuna search, each through the
command line, each job in its own folder."""

import json
import os
import re
import subprocess
import sys
import time
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


@pytest.mark.slow
def test_an_optuna_search_killed_and_started_again_continues_its_study(tmp_path):
    optuna = pytest.importorskip("optuna")
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    storage, sweep_dir = f"sqlite:///{tmp_path / 'study.db'}", tmp_path / "sweep"
    overrides = ["hparams_search=llp_bp_optuna", "method=llp_bp", "schedule=easyllp_warm", "bp.max_iters=20"]
    overrides += [f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=s"]
    overrides += [f"hydra.sweep.dir={sweep_dir}"]
    first_log = tmp_path / "first.log"
    with open(first_log, "w") as output:  # the first start, killed in its second trial
        first = subprocess.Popen(
            [sys.executable, str(TRAIN), "-m", *FAST, *overrides, "hydra.sweeper.n_trials=3"],
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 300
        try:
            while not list(sweep_dir.glob("1_*")):  # trial 1's folder: trial 0 was told to the study
                assert first.poll() is None and time.monotonic() < deadline, first_log.read_text()
                time.sleep(0.05)
        finally:
            first.kill()
            first.wait()
    log = sweep(*overrides, "hydra.sweeper.n_trials=1", cwd=tmp_path)  # the same command, started again
    assert "study s in sqlite:" in log and "holds 2 trials: the search continues it" in log
    trials = optuna.load_study(study_name="s", storage=storage).trials
    ended = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    states = [trial.state for trial in trials]
    assert len(trials) == 3 and states[0] in ended and states[2] in ended, states
    assert states[1] == optuna.trial.TrialState.RUNNING  # cut off by the kill
    assert trials[2].params not in [trials[0].params, trials[1].params]  # new settings, not trial 0's again
    assert len([folder for folder in sweep_dir.iterdir() if folder.is_dir()]) == 3  # one folder a trial


def compose_hydra(*overrides):
    """The config of `llp-train *overrides` with its hydra node (the launcher's settings)."""
    from hydra import compose, initialize_config_dir

    from llp_jax.config import CONFIG_DIR, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def test_slurm_jobs_are_named_after_the_sweep():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra.core.utils import setup_globals

    setup_globals()  # the ${now:...} of the default sweep dir
    named = compose_hydra("hydra/launcher=slurm", "hydra.sweep.dir=multirun/bag sizes")
    assert named.hydra.launcher.name == "bag_sizes"
    default = compose_hydra("hydra/launcher=slurm").hydra.launcher.name
    assert re.fullmatch(r"llp_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d+", default), default


def test_the_pack_launcher_gives_each_process_its_share_of_the_gpu():
    """hydra/launcher=pack: n_jobs processes on one GPU, each with 0.9 / n_jobs of its memory (JAX's
    default preallocation, 0.75 in each, would stop the second); n_jobs below 1 is refused by name."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    from omegaconf.errors import InterpolationResolutionError

    for n_jobs, fraction in [(None, "0.45"), (4, "0.225"), (3, "0.3")]:
        chosen = [] if n_jobs is None else [f"hydra.launcher.n_jobs={n_jobs}"]
        hydra = compose_hydra("hydra/launcher=pack", *chosen).hydra
        assert hydra.launcher.n_jobs == (n_jobs or 2) and hydra.launcher.prefer == "processes"
        assert hydra.job.env_set.XLA_PYTHON_CLIENT_MEM_FRACTION == fraction
    hydra = compose_hydra("hydra/launcher=pack", "hydra.launcher.n_jobs=-1").hydra
    with pytest.raises(InterpolationResolutionError, match=r"hydra.launcher.n_jobs=-1: .*n_jobs=4"):
        str(hydra.job.env_set.XLA_PYTHON_CLIENT_MEM_FRACTION)  # resolved on reading


@pytest.mark.slow
def test_a_packed_sweep_runs_two_jobs_at_a_time_with_the_results_of_a_sequential_one(tmp_path):
    """Four jobs, two processes (hydra/launcher=pack): each job's metrics.json is the one the same job
    writes in a sweep that runs them one at a time in one process (timings and process id aside)."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    seeds = "seed=0,1,2,3"
    sweep("hydra/launcher=pack", seeds, f"hydra.sweep.dir={tmp_path / 'packed'}", cwd=tmp_path)
    sweep(seeds, f"hydra.sweep.dir={tmp_path / 'sequential'}", cwd=tmp_path)
    packed, sequential = (
        [json.loads(path.read_text()) for path in sorted((tmp_path / name).glob("*/metrics.json"))]
        for name in ("packed", "sequential")
    )
    assert [run["seed"] for run in packed] == [run["seed"] for run in sequential] == [0, 1, 2, 3]
    assert len({run["provenance"]["pid"] for run in sequential}) == 1
    assert len({run["provenance"]["pid"] for run in packed}) == 2  # two worker processes shared the jobs

    def result(run):
        kept = {key: value for key, value in run.items() if key not in ("wall_time_s", "compile_s")}
        return kept | {"provenance": {k: v for k, v in run["provenance"].items() if k != "pid"}}

    assert [result(run) for run in packed] == [result(run) for run in sequential]


def test_a_slurm_sweep_submits_jobs_named_after_it_with_its_setup_lines(tmp_path, monkeypatch):
    """A dry run: the sbatch script that the launcher would submit (a stand-in srun on PATH; map_array,
    which would call sbatch, records the script instead)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    setup = ["module load python/3.11", "source .venv/bin/activate"]
    cfg = compose_hydra(
        "hydra/launcher=slurm",
        f"hydra.sweep.dir={tmp_path / 'bags'}",
        f"hydra.launcher.setup=[{','.join(repr(line) for line in setup)}]",
        "require_gpu=true",
    )
    scripts = []

    def submit(executor, function, *arguments):
        scripts.append(executor._executor._make_submission_file_text("python -u -m submitit", "0"))
        return []

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", submit)
    launcher = SlurmLauncher(**{key: value for key, value in cfg.hydra.launcher.items() if key != "_target_"})
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    launcher.launch([["seed=0"], ["seed=1"]], initial_job_idx=0)
    (script,) = scripts
    assert "#SBATCH --job-name=bags" in script and "#SBATCH --gpus-per-node=1" in script
    assert "# setup\nmodule load python/3.11\nsource .venv/bin/activate\n" in script, script
    assert cfg.require_gpu is True


@pytest.mark.slow
def test_require_gpu_without_one_fails_at_once_naming_the_fix(tmp_path):
    """On this CPU machine: the run stops before loading data (nothing in its folder but Hydra's log),
    with the message alone."""
    completed = subprocess.run(
        [sys.executable, str(TRAIN), *FAST, "require_gpu=true", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1, completed.stderr
    assert "require_gpu=true, but JAX sees no GPU or TPU" in completed.stderr, completed.stderr
    assert "require_gpu=false" in completed.stderr and "Traceback" not in completed.stderr
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == [".hydra", "train.log"]


@pytest.mark.slow
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
