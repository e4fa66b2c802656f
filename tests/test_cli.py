"""The command line: a user's error ends it with its message alone (exit status 1), the traceback only on
request; a run folder that cannot be written is named before Hydra opens its log file there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llp_jax.cli import sweep_group
from llp_jax.writers import check_writable

TRAIN = [sys.executable, "-m", "llp_jax.cli"]


def _train(*overrides: str, full_error: bool = False) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run([*TRAIN, *overrides], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_a_bad_setting_prints_its_message_alone(tmp_path):
    completed = _train("debug=fast", "bp.damping=1.0", f"hydra.run.dir={tmp_path / 'run'}")
    assert completed.returncode == 1
    assert "ValueError: bp.damping=1.0; expected 0 <= damping < 1" in completed.stderr
    assert "Traceback" not in completed.stderr + completed.stdout
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # refused before the run claimed its folder


@pytest.mark.slow
def test_the_traceback_is_there_on_request(tmp_path):
    completed = _train("debug=fast", "bp.damping=1.0", f"hydra.run.dir={tmp_path / 'run'}", full_error=True)
    assert completed.returncode == 1
    assert "Traceback" in completed.stderr and "check_settings" in completed.stderr


@pytest.mark.parametrize("mode", ["run", pytest.param("sweep", marks=pytest.mark.slow)])
def test_a_run_folder_under_a_file_is_named_before_any_work(tmp_path, mode):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    if mode == "run":
        completed = _train("debug=fast", f"hydra.run.dir={blocker / 'run'}")
    else:
        completed = _train("-m", "debug=fast", "seed=0,1", f"hydra.sweep.dir={blocker / 'sweep'}")
    assert completed.returncode == 1
    setting = "hydra.run.dir" if mode == "run" else "hydra.sweep.dir"
    assert f"{blocker} is a file, not a folder; choose another folder ({setting}=...)" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_a_folder_this_user_cannot_write_is_refused(tmp_path, monkeypatch):
    # the tests may run as root, whom no permission bit stops: the check's question to the system is faked
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(PermissionError, match=r"locked is not writable by this user; choose another folder"):
        check_writable(locked / "2026-11-26" / "run", "hydra.run.dir")
    check_writable(tmp_path / "elsewhere" / "run", "hydra.run.dir")  # a writable ancestor: no error


def test_an_experiment_and_tags_compose_on_the_command_line(tmp_path):
    # (+experiment=, the older spelling: tests/test_evaluate.py, with the installed llp-train)
    completed = subprocess.run(
        [*TRAIN, "experiment=paper_bank", "tags=[a,b]", "--cfg", "job"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert "  bag_size: 8\n" in completed.stdout and "  bag_factor: clique\n" in completed.stdout
    assert "tags:\n- a\n- b\n" in completed.stdout


@pytest.mark.slow
def test_a_runs_output_is_short_and_explains_its_metrics(tmp_path):
    # `make demo` printed 122 lines, an 80-line config dump among them; the end now says what the numbers are
    completed = _train("debug=fast", f"hydra.run.dir={tmp_path / 'run'}")  # LLP-BP, the default method
    assert completed.returncode == 0, completed.stderr
    lines = (completed.stdout + completed.stderr).splitlines()
    assert len(lines) <= 25, "\n".join(lines)
    assert not any(line.startswith(("config:", "dataset:", "hydra:")) for line in lines)  # no config dump
    assert (tmp_path / "run" / "config_resolved.yaml").exists()  # which the run folder keeps
    text = "\n".join(lines)
    assert "test AUC" in text and "(instance labels of the test split, used for nothing else)" in text
    assert "selection_loss" in text and "= val_count_nll (-log P(count) per validation bag" in text
    assert "oracle/* (metrics.jsonl): diagnostics from true labels, never used to train or choose" in text
    assert "event chosen: candidate 0 schedule (defaults)" in text  # not a line ending in "schedule "
    assert not [line for line in lines if line.endswith(" ")]
    # the config on request: logged before anything is checked, so a refused setting shows it too
    shown = _train("debug=fast", "print_config=true", "bp.damping=1.0", f"hydra.run.dir={tmp_path / 'x'}")
    assert "[INFO] - config:\ndataset:\n" in shown.stdout and "\nprint_config: true\n" in shown.stdout


def test_a_sweeps_wandb_group_names_the_sweep():
    assert sweep_group("multirun/bags", ["method=dllp", "seed=0"]) == "bags"  # a folder the command named
    overrides = ["method=dllp", "seed=0", "train.progress=false", "+x=1"]
    group = sweep_group("multirun/2026-11-25/12-00-00-123456", overrides, ["train.progress"])
    assert group == "2026-11-25_12-00-00-123456 method,seed,x"  # the default folder: a bare time
    other_job = sweep_group("multirun/2026-11-25/12-00-00-123456", overrides[::-1], ["train.progress"])
    assert other_job == group and len(sweep_group("m/1", [f"k{i}=0" for i in range(100)])) <= 128
