"""The command line: a user's error ends it with its message alone (exit status 1), the traceback only on
request; a run folder that cannot be written is named before Hydra opens its log file there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llp_jax.writers import check_writable

TRAIN = [sys.executable, "-m", "llp_jax.cli"]


def _train(*overrides: str, full_error: bool = False) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "HYDRA_FULL_ERROR"}
    if full_error:
        env["HYDRA_FULL_ERROR"] = "1"
    return subprocess.run([*TRAIN, *overrides], capture_output=True, text=True, env=env, timeout=300)


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


@pytest.mark.parametrize("mode", ["run", "sweep"])
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
