"""llp-eval (llp_jax/evaluate.py): a run's saved encoder scored on its data, as the run scored it; a folder
without a saved encoder named with what it holds. And the console scripts of a non-editable install, run
from another folder."""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import FAST

from llp_jax.config import compose
from llp_jax.evaluate import main
from llp_jax.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """The folder of a finished DLLP run (debug=fast), with its saved encoder."""
    folder = tmp_path_factory.mktemp("finished") / "run"
    run_experiment(compose(*FAST, "tags=[a]"), folder)
    return folder


@pytest.mark.slow
def test_eval_gives_the_test_metrics_of_the_run(finished_run, tmp_path, capsys):
    main([str(finished_run)])
    scored = json.loads(capsys.readouterr().out)
    summary = json.loads((finished_run / "metrics.json").read_text())
    for metric in ("test_auc", "test_accuracy", "test_log_loss"):
        assert scored[metric] == pytest.approx(summary[metric], rel=1e-6), metric
    assert scored["split"] == "test" and scored["run"] == str(finished_run.resolve()) and scored["n"] > 0
    main([str(finished_run), "--split", "val", "train.eval_batch_size=7", "--out", str(tmp_path / "v.json")])
    written = json.loads((tmp_path / "v.json").read_text())
    assert {"val_auc", "val_accuracy", "val_log_loss"} <= set(written) and written["split"] == "val"
    assert not (finished_run / "v.json").exists()


def write_folder(folder: Path, kind: str) -> Path:
    """A folder without a saved encoder: a failed run, an unfinished one, a sweep of runs, or nothing."""
    folder.mkdir(parents=True)
    if kind == "sweep":
        (folder / "0_seed=0").mkdir()
        (folder / "0_seed=0" / "encoder.json").write_text("{}")
        return folder
    if kind != "empty":
        (folder / "config_resolved.yaml").write_text("seed: 0\n")
        (folder / "metrics.jsonl").write_text("")
    if kind == "failed":
        (folder / "failed.json").write_text(json.dumps({"status": "failed", "error": "ValueError: bad"}))
    if kind == "preempted":  # SIGTERM
        (folder / "failed.json").write_text(
            json.dumps({"status": "preempted", "error": "Preempted: SIGTERM"})
        )
    return folder


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", ": no such folder; give the folder of a finished run"),
        ("empty", " is not the folder of a run (no config_resolved.yaml); give the folder of a run"),
        ("sweep", " is not the folder of a run (no config_resolved.yaml); it holds runs: give one of them"),
        (
            "failed",
            " holds no saved encoder (encoder.json, encoder missing): the run failed (ValueError: bad)",
        ),
        ("unfinished", " holds no saved encoder (encoder.json, encoder missing): the run is unfinished"),
        ("preempted", " holds no saved encoder (encoder.json, encoder missing): the run was preempted"),
    ],
)
def test_a_folder_without_a_saved_encoder_is_a_clear_error(kind, message, tmp_path):
    folder = tmp_path / kind if kind == "missing" else write_folder(tmp_path / kind, kind)
    with pytest.raises(SystemExit) as failure:
        main([str(folder)])
    assert f"llp-eval: FileNotFoundError: {folder}{message}" in str(failure.value)


def test_a_setting_the_run_does_not_have_is_refused(finished_run):
    with pytest.raises(SystemExit, match=r"'dataset.nope=1': expected key=value with a key of"):
        main([str(finished_run), "dataset.nope=1"])


@pytest.mark.slow
def test_console_scripts_of_a_non_editable_install_run_from_another_folder(finished_run, tmp_path):
    # the project as a fresh clone holds it, installed (not editable) into a new environment that borrows
    # this one's packages (jax, hydra, ...) and lacks llp_jax's editable install
    source, venv, elsewhere = tmp_path / "source", tmp_path / "venv", tmp_path / "elsewhere"
    shutil.copytree(ROOT / "llp_jax", source / "llp_jax", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # this environment's packages as a path, without its .pth files (llp_jax's editable install)
    (Path(site) / "borrowed.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(source)]
    installed = subprocess.run(pip, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    elsewhere.mkdir()

    def run(name: str, *args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(venv / "bin" / name), *args], cwd=elsewhere, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{name}: {done.stderr}"
        return done

    where = run("python", "-c", "import llp_jax; print(llp_jax.__file__)").stdout
    assert where.startswith(site), f"llp_jax was imported from {where}, not from the install"
    report = run("llp-report", str(finished_run.parent), "--out", "table")
    assert "| synthetic | dllp |" in report.stdout and (elsewhere / "table.png").exists()
    scored = json.loads(run("llp-eval", str(finished_run)).stdout)
    summary = json.loads((finished_run / "metrics.json").read_text())
    assert scored["test_auc"] == pytest.approx(summary["test_auc"], rel=1e-6)
    missing = subprocess.run(
        [str(venv / "bin" / "llp-eval"), "nowhere"], cwd=elsewhere, capture_output=True, text=True
    )
    assert missing.returncode == 1 and "nowhere: no such folder" in missing.stderr
    config = run("llp-train", "+experiment=paper_bank", "--cfg", "job").stdout  # the older spelling
    assert "  bag_factor: clique\n" in config and "  bag_size: 8\n" in config
