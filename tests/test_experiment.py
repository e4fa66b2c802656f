import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import FAST, run_script
from hydra.errors import ConfigCompositionException
from hydra.types import RunMode
from omegaconf.errors import ConfigKeyError
from wandb_offline import offline_runs

from llp_jax import cli, experiment
from llp_jax.checkpoint import load_encoder
from llp_jax.config import compose, resolve
from llp_jax.data import load_dataset
from llp_jax.experiment import run_experiment
from llp_jax.methods.llp_bp import rounds
from llp_jax.provenance import provenance
from llp_jax.streams import stream_seed
from llp_jax.train import loop
from llp_jax.train.metrics import roc_auc

REQUIRED_KEYS = {
    "method",
    "dataset",
    "bag_size",
    "seed",
    "test_auc",
    "test_accuracy",
    "test_log_loss",
    "n_train",
    "n_bags",
    "wall_time_s",
}


@pytest.mark.parametrize("method", ["supervised", "dllp", "easyllp"])
def test_two_epoch_run_writes_both_metrics_files(method, compose_config, tmp_path):
    cfg = compose_config(*FAST, f"method={method}")
    summary = run_experiment(cfg, tmp_path)
    final = json.loads((tmp_path / "metrics.json").read_text())
    assert REQUIRED_KEYS <= set(final) and final == json.loads(json.dumps(summary))
    assert final["method"] == method and final["epochs_run"] == 2 and 0.0 <= final["test_auc"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records[:-1]] == [1, 2] and records[-1]["event"] == "final"
    assert (tmp_path / "config_resolved.yaml").exists()


def test_same_seed_gives_identical_metrics(compose_config, tmp_path):
    runs = [run_experiment(compose_config(*FAST, "seed=7"), tmp_path / str(i)) for i in range(2)]
    for summary in runs:
        summary.pop("wall_time_s"), summary.pop("compile_s")  # the second run compiles nothing
    assert runs[0] == runs[1]
    other = run_experiment(compose_config(*FAST, "seed=8"), tmp_path / "other")
    assert other["test_log_loss"] != runs[0]["test_log_loss"]


@pytest.mark.slow
def test_the_second_seed_of_a_sweep_in_one_process_compiles_nothing(compose_config, tmp_path):
    """metrics.json holds this process's compile seconds by stage (llp_jax.compile_clock); the jobs of a
    sweep that Hydra runs in one process differ in the seed alone, and every shape of an LLP-BP run (bags,
    kNN edges padded to n * k, BP's edge capacity) and the training step (EasyLLP's prior traced) are the
    same for both seeds: the second compiles no program."""
    overrides = [
        *FAST,
        "method=llp_bp",
        "bp.max_iters=10",
        "model.widths=[13,7]",
    ]  # widths no other test uses
    first, second = (
        run_experiment(compose_config(*overrides, f"seed={seed}"), tmp_path / str(seed)) for seed in (31, 32)
    )
    assert set(first["compile_s"]) == {"train", "graph", "bp", "evaluate", "other", "total"}
    assert first["compile_s"]["train"] > 0 and first["compile_s"]["total"] <= first["wall_time_s"]
    assert max(first["compile_s"][stage] for stage in ("train", "graph", "bp", "evaluate", "other")) <= (
        first["compile_s"]["total"] + 1e-9
    )
    assert second["compile_s"]["total"] == 0.0, second["compile_s"]
    assert second["test_auc"] != first["test_auc"]  # the seed did change the run


def test_mistyped_setting_fails_loudly(compose_config):
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose_config("train.epoch=3")


def test_instance_label_selection_is_logged_as_such(compose_config, tmp_path):
    summary = run_experiment(compose_config(*FAST, "train.select_on=val_instances"), tmp_path)
    assert summary["selection"] == "val_instances"
    first_epoch = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert "val_instance_auc" in first_epoch


@pytest.mark.slow
def test_command_line_entry_point(tmp_path):
    root = Path(__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, str(root / "scripts" / "train.py"), *FAST, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["dataset"] == "synthetic"
    printed = json.loads(completed.stdout.splitlines()[-1], parse_constant=reject_constant)  # strict JSON
    assert printed["dataset"] == "synthetic"


def reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def test_the_trained_encoder_is_saved_and_loads_back(compose_config, tmp_path):
    run_experiment(compose_config(*FAST), tmp_path)
    encoder = load_encoder(tmp_path)
    data = load_dataset("synthetic", n=3000, seed=stream_seed(0, "split"))  # the run's data
    logits, _ = encoder(data.test.x)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert roc_auc(data.test.y, np.asarray(logits)) == pytest.approx(metrics["test_auc"], abs=1e-6)
    with pytest.raises(FileNotFoundError, match="finished run"):
        load_encoder(tmp_path / "nowhere")


FILES_FIXTURES = Path(__file__).parent / "fixtures" / "files"


def files_run(folder: Path) -> list[str]:
    """Overrides for two epochs of DLLP on the fixture tables (train, bags, val, val_bags, test) in folder."""
    tables = ["train_path=train.csv", "bags_path=bags.csv", "test_path=test.csv", "val_path=val.csv"]
    tables += ["val_bags_path=val_bags.csv", "categorical_columns=[color]", f"data_dir={folder}"]
    settings = ["dataset=files", "bagging=given", "method=dllp", "train.epochs=2", "train.progress=false"]
    return settings + [f"dataset.{table}" for table in tables]


@pytest.mark.slow
def test_researchers_own_bagged_files_run_end_to_end(compose_config, tmp_path):
    summary = run_experiment(compose_config(*files_run(FILES_FIXTURES)), tmp_path)
    assert summary["bagging"] == "given" and summary["n_bags"] == 8 and summary["n_train"] == 20
    assert summary["bag_size"] == round(summary["mean_bag_size"])


def test_a_test_split_of_one_class_fails_before_training(compose_config, tmp_path):
    folder = shutil.copytree(FILES_FIXTURES, tmp_path / "data")
    (folder / "test.csv").write_text("age,income,color,label\n30,2.0,red,1\n51,3.7,green,1\n")
    with pytest.raises(
        ValueError,
        match=r"the test split has 1 class\(es\) \(2 rows, labels \[1\]\): its AUC is undefined; use a test "
        "set with both positive and negative rows",
    ):
        run_experiment(compose_config(*files_run(folder)), tmp_path / "run")
    assert [record["event"] for record in jsonl(tmp_path / "run")] == ["failed"]  # no epoch was trained


@pytest.mark.slow
def test_bags_of_a_size_range_report_their_mean_size(compose_config, tmp_path):
    summary = run_experiment(compose_config(*FAST, "bagging.size_range=[100,200]"), tmp_path)
    assert 100 <= summary["mean_bag_size"] <= 200 and summary["bag_size"] == round(summary["mean_bag_size"])


@pytest.mark.slow
def test_cnn_learns_fashion_mnist(compose_config, tmp_path):
    """The CNN path end to end on the real images: one epoch of DLLP on bags of 8."""
    overrides = ["dataset=fashion_mnist", "model=cnn", "model.channels=[8,16]", "model.embedding_width=32"]
    overrides += ["method=dllp", "bagging.bag_size=8", "train.epochs=1", "train.progress=false"]
    summary = run_experiment(compose_config(*overrides), tmp_path)
    assert summary["feature_shape"] == [28, 28, 1] and summary["test_auc"] > 0.9


def test_a_finished_run_folder_is_never_written_again(compose_config, tmp_path):
    run_experiment(compose_config(*FAST), tmp_path)
    before = {name: (tmp_path / name).read_text() for name in ("metrics.json", "metrics.jsonl")}
    with pytest.raises(FileExistsError, match="already holds a run"):
        run_experiment(compose_config(*FAST, "seed=1"), tmp_path)
    assert {name: (tmp_path / name).read_text() for name in before} == before


def test_a_failed_run_leaves_its_status_and_traceback(compose_config, tmp_path):
    files = [f"dataset.data_dir={tmp_path}", "dataset.bags_path=b.csv", "dataset.test_path=t.csv"]
    cfg = compose_config("dataset=files", "bagging=given", "dataset.train_path=nowhere.csv", *files)
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        run_experiment(cfg, tmp_path / "run")
    failed = json.loads((tmp_path / "run" / "failed.json").read_text())
    assert failed["status"] == "failed" and "nowhere.csv" in failed["error"]
    assert "load_dataset" in failed["traceback"] and not (tmp_path / "run" / "metrics.json").exists()
    # where the failure came from, as a finished run's metrics.json says it
    assert (failed["method"], failed["dataset"], failed["seed"]) == ("llp_bp", "files", 0)
    assert set(failed["provenance"]) == set(provenance()) and failed["provenance"]["host"]
    assert failed["provenance"]["versions"]["jax"] and "git_commit" in failed["provenance"]


def test_tags_reach_metrics_json_failed_json_and_wandb(compose_config, tmp_path, monkeypatch):
    wandb_settings = []

    class Writer(experiment.MetricsWriter):  # wandb's settings kept, wandb itself not started
        def __init__(self, run_dir, settings, *args, **kwargs):
            wandb_settings.append(settings)
            super().__init__(run_dir, None, *args, **kwargs)

    monkeypatch.setattr(experiment, "MetricsWriter", Writer)
    cfg = compose_config(*FAST, "tags=[a,b]", "logger=wandb", "logger.tags=[b,wandb_only]")
    run_experiment(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["tags"] == ["a", "b"]
    assert wandb_settings[0]["tags"] == ["a", "b", "wandb_only"]  # the run's tags, then logger.tags
    files = [f"dataset.data_dir={tmp_path}", "dataset.bags_path=b.csv", "dataset.test_path=t.csv"]
    failing = compose_config(
        "dataset=files", "bagging=given", "dataset.train_path=nowhere.csv", *files, "tags=[a,b]"
    )
    with pytest.raises(FileNotFoundError):
        run_experiment(failing, tmp_path / "failed")
    assert json.loads((tmp_path / "failed" / "failed.json").read_text())["tags"] == ["a", "b"]


def test_the_optimized_metric_is_a_validation_criterion(compose_config, tmp_path):
    with pytest.raises(ValueError, match="never a test metric"):
        resolve(compose_config(*FAST, "optimized_metric=test_auc"))
    summary = run_experiment(compose_config(*FAST), tmp_path)
    # selection on the validation bags' count likelihood (the default); for DLLP the summary's criteria are
    # those of the selected epoch's model, which is the model returned
    assert summary["selection_loss"] == pytest.approx(summary["val_count_nll"], rel=1e-5)


@pytest.mark.slow
def test_the_returned_models_criterion_is_in_metrics_json_and_returned_to_hydra(tmp_path, monkeypatch):
    """LLP-BP returns its last round (or its warm start) recalibrated on the training bag counts: the
    selection_loss of metrics.json, and the number the run returns to Hydra (what a sweeper minimises), is
    the criterion of that model, computed on it, not the last fit's best epoch's."""
    hydra_config = SimpleNamespace(runtime=SimpleNamespace(output_dir=str(tmp_path)), mode=RunMode.RUN)
    monkeypatch.setattr(cli, "HydraConfig", SimpleNamespace(get=lambda: hydra_config))
    returned = cli.train(compose("debug=fast"))  # the command line's function, given its config
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["method"] == "llp_bp" and metrics["selection"] == "val_count_nll"  # the defaults
    assert returned == metrics["selection_loss"] == metrics["val_count_nll"]
    data, _, val_bags = experiment.load_inputs(resolve(compose("debug=fast")))
    logits, _ = loop.predict(load_encoder(tmp_path), data.val.x, 8192)  # the saved, returned encoder
    recomputed = float(np.mean(loop.validation_bag_scores(logits, val_bags)["val_count_nll"]))
    assert metrics["selection_loss"] == pytest.approx(recomputed, rel=1e-5)
    # the output calibration moved it away from the criterion the last fit's early stopping saw
    assert metrics["selection_loss"] != pytest.approx(metrics["best_epoch_selection_loss"], rel=1e-3)
    assert (
        resolve(compose("debug=fast", "optimized_metric=val_count_nll")).optimized_metric == "val_count_nll"
    )


@pytest.mark.slow
def test_sweep_jobs_get_a_folder_each_named_by_what_varies(tmp_path):
    sweep = tmp_path / "sweep"
    job = run_script(
        "-m", *FAST, "train.learning_rate=1e-3,1e-2", "seed=0,1", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr
    runs = {path.parent.name: json.loads(path.read_text()) for path in sweep.glob("*/metrics.json")}
    common = "debug=fast,method=dllp,model.widths=(16,8)"  # no brackets: orbax globs checkpoint paths
    assert sorted(runs) == [
        f"0_{common},seed=0,train.learning_rate=0.001",
        f"1_{common},seed=1,train.learning_rate=0.001",
        f"2_{common},seed=0,train.learning_rate=0.01",
        f"3_{common},seed=1,train.learning_rate=0.01",
    ]
    assert len({run["test_log_loss"] for run in runs.values()}) == 4
    for name in runs:  # each job's encoder can be loaded back (under a name with brackets it could not)
        logits, _ = load_encoder(sweep / name)(np.zeros((2, 16), np.float32))
        assert np.isfinite(np.asarray(logits)).all()
    report = Path(__file__).resolve().parents[1] / "scripts" / "report.py"
    args = [sys.executable, str(report), str(sweep), "--by", "train.learning_rate"]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    for rate in ("0.001", "0.01"):  # a row per learning rate, each with both seeds: all four runs
        rows = [line for line in printed.splitlines() if line.startswith(f"| synthetic | dllp | {rate} |")]
        assert len(rows) == 1 and rows[0].endswith("(n=2) |"), printed


@pytest.mark.slow
def test_two_runs_started_at_once_get_two_folders_and_share_a_compilation_cache(tmp_path):
    env = {**os.environ, "LLP_JAX_COMPILATION_CACHE": str(tmp_path / "cache")}
    jobs = [run_script(*FAST, cwd=tmp_path, env=env) for _ in range(2)]
    for job in jobs:
        _, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, stderr
    assert len(list((tmp_path / "outputs").rglob("metrics.json"))) == 2
    assert any((tmp_path / "cache").iterdir()), "the compilation cache stayed empty"


TIMINGS = ("wall_time_s", "compile_s", "epoch_time_s", "bp_s", "graph_build_s", "train_s")


def without_timings(records):
    """The records without their timings, and without the process id (a resumed run's is another)."""
    kept = [{key: value for key, value in record.items() if key not in TIMINGS} for record in records]
    for record in kept:
        if "provenance" in record:
            record["provenance"] = {key: value for key, value in record["provenance"].items() if key != "pid"}
    return kept


def jsonl(folder):
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


RESUMED = [*FAST, "method=llp_bp", "bp.max_iters=20", "train.epochs=3", "train.checkpoint_every=1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(summary, folder) of the run that the killed runs must resume to, run once for both."""
    folder = tmp_path_factory.mktemp("whole")
    return run_experiment(compose(*RESUMED), folder), folder


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["round 2 BP", "round 2 epoch 2"])
def test_a_killed_run_resumes_to_the_uninterrupted_result(
    kill, uninterrupted, compose_config, tmp_path, monkeypatch
):
    overrides, (whole, whole_folder) = RESUMED, uninterrupted
    target, calls = ((rounds, "bp_pseudo_labels"), 2) if kill == "round 2 BP" else ((loop, "train_epoch"), 8)
    real, count = getattr(*target), []

    def killed(*args, **kwargs):  # the process dies at the calls-th call
        count.append(1)
        if len(count) == calls:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(*target, killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(compose_config(*overrides), tmp_path / "run")
    monkeypatch.setattr(*target, real)
    assert json.loads((tmp_path / "run" / "failed.json").read_text())["status"] == "failed"
    with pytest.raises(FileExistsError, match="already holds a run"):  # not without train.resume
        run_experiment(compose_config(*overrides), tmp_path / "run")
    with pytest.raises(ValueError, match="other settings \\(seed differ\\)"):
        run_experiment(compose_config(*overrides, "seed=1", "train.resume=true"), tmp_path / "run")
    resumed = run_experiment(compose_config(*overrides, "train.resume=true"), tmp_path / "run")
    assert without_timings([resumed]) == without_timings([whole])
    assert without_timings(jsonl(tmp_path / "run")) == without_timings(jsonl(whole_folder))
    assert not (tmp_path / "run" / "failed.json").exists() and not (tmp_path / "run" / "checkpoints").exists()


def stop_at(monkeypatch, module, name: str, calls: int) -> None:
    """The process dies (KeyboardInterrupt) at the calls-th call of module.name."""
    real, count = getattr(module, name), []

    def killed(*args, **kwargs):
        count.append(1)
        if len(count) == calls:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, killed)


@pytest.mark.slow
def test_a_run_resumed_on_changed_data_is_refused_naming_the_file(compose_config, tmp_path, monkeypatch):
    """Issue 25: a files run killed, bags.csv replaced with all-zero counts, and train.resume=true finished
    "on two datasets". Now the resume stops before anything is loaded, naming the file, and leaves the run
    folder as it was; with the data put back it resumes."""
    folder = shutil.copytree(FILES_FIXTURES, tmp_path / "data")
    overrides = [*files_run(folder), "train.epochs=3", "train.checkpoint_every=1"]
    with monkeypatch.context() as patch:
        stop_at(patch, loop, "train_epoch", 2)
        with pytest.raises(KeyboardInterrupt):
            run_experiment(compose_config(*overrides), tmp_path / "run")
    bags = folder / "bags.csv"
    original = bags.read_text()
    rows = original.splitlines()
    bags.write_text("\n".join([rows[0], *(row.split(",")[0] + ",0" for row in rows[1:])]) + "\n")
    before = {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir() if path.is_file()}
    message = rf"the data of the run in {tmp_path / 'run'} changed since it started: {bags} \(sha256 "
    with pytest.raises(ValueError, match=message + r".*start a new run in another folder"):
        run_experiment(compose_config(*overrides, "train.resume=true"), tmp_path / "run")
    assert {path.name: path.read_bytes() for path in (tmp_path / "run").iterdir() if path.is_file()} == before
    bags.write_text(original)
    summary = run_experiment(compose_config(*overrides, "train.resume=true"), tmp_path / "run")
    names = ["train.csv", "bags.csv", "val.csv", "val_bags.csv", "test.csv"]
    fingerprint = summary["provenance"]["data_sha256"]
    assert sorted(fingerprint) == sorted(str(folder / name) for name in names)
    assert fingerprint[str(bags)] == hashlib.sha256(original.encode()).hexdigest()


def wait_for_round_one(job, folder: Path) -> None:
    """Until an epoch record of LLP-BP's round 1 is in a metrics.jsonl under folder (or the job ended)."""

    def training_round_one() -> bool:
        try:  # orbax renames its temporary checkpoint folders while the walk runs: look again next time
            lines = [line for path in folder.rglob("metrics.jsonl") for line in path.read_text().splitlines()]
        except FileNotFoundError:
            return False
        return any('"round": 1' in line and '"epoch"' in line for line in lines)

    while job.poll() is None and not training_round_one():
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_leaves_a_preempted_run_that_resumes_to_the_uninterrupted_result(uninterrupted, tmp_path):
    """SIGTERM (what SLURM sends a job it preempts) in round 1's training: the command exits with status 143
    and the run folder says preempted (failed.json, status preempted); train.resume=true then finishes it
    with the numbers of an uninterrupted run."""
    (whole, whole_folder), run = uninterrupted, tmp_path / "run"
    job = run_script(*RESUMED, f"hydra.run.dir={run}", cwd=tmp_path)
    wait_for_round_one(job, tmp_path)
    job.send_signal(signal.SIGTERM)
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 143, stderr
    preempted = json.loads((run / "failed.json").read_text())
    assert preempted["status"] == "preempted" and preempted["error"].startswith("Preempted: SIGTERM received")
    assert jsonl(run)[-1]["event"] == "preempted"
    assert "preempted: SIGTERM received" in (run / "train.log").read_text()
    assert (run / "checkpoints").exists()  # the latest checkpoint stands
    resumed = run_experiment(compose(*RESUMED, "train.resume=true"), run)
    assert without_timings([resumed]) == without_timings([whole])
    assert without_timings(jsonl(run)) == without_timings(jsonl(whole_folder))
    assert not (run / "failed.json").exists() and not (run / "checkpoints").exists()


def processes_running(text: str) -> list[int]:
    """The ids of this machine's processes whose command line holds `text` (Linux: /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:  # ended meanwhile
            continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's process in /proc")
def test_submitits_preemption_signal_requeues_a_job_that_resumes_to_the_uninterrupted_result(
    uninterrupted, tmp_path
):
    """Under hydra-submitit-launcher submitit keeps its own handler of the preemption signal (USR2): it
    requeues the job (the local executor runs it again; on SLURM, scontrol requeue) and exits. The run records
    status preempted on its way out, and the job, started again, resumes from its checkpoints to the numbers
    of an uninterrupted run."""
    (whole, whole_folder), sweep = uninterrupted, tmp_path / "sweep"
    job = run_script(
        "-m", "hydra/launcher=submitit_local", *RESUMED, f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    wait_for_round_one(job, sweep)
    for pid in processes_running(f"submitit.core._submit\0{sweep}"):  # the job itself, not its controller
        os.kill(pid, signal.SIGUSR2)
    _, stderr = job.communicate(timeout=600)
    assert job.returncode == 0, stderr
    logs = "".join(path.read_text() for path in (sweep / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in logs and "event preempted: error SystemExit: 144" in logs
    (run,) = [path.parent for path in sweep.glob("*/metrics.json")]
    finished = json.loads((run / "metrics.json").read_text())
    assert without_timings([finished]) == without_timings([json.loads(json.dumps(whole))])
    assert without_timings(jsonl(run)) == without_timings(jsonl(whole_folder))


@pytest.fixture
def quiet_wandb(monkeypatch):
    """wandb prints nothing, and no WANDB_MODE from the caller's shell."""
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)


def test_wandb_mode_disabled_in_the_environment_writes_no_wandb_run(compose_config, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")  # WANDB_MODE=disabled llp-train ... logger=wandb
    cfg = compose_config(*FAST, "logger=wandb")
    assert cfg.logger.mode is None  # the config names no mode: the environment's chooses, else offline
    run_experiment(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "metrics.json").exists()
    assert not list(tmp_path.rglob("offline-run-*")) and not (tmp_path / "run" / "wandb").exists()


@pytest.mark.slow
def test_a_killed_wandb_run_resumes_into_the_same_wandb_run(
    compose_config, tmp_path, monkeypatch, quiet_wandb
):
    overrides = [*FAST, "train.epochs=3", "train.checkpoint_every=1", "logger=wandb"]
    real, count = loop.train_epoch, []

    def killed(*args, **kwargs):  # the process dies in the third epoch
        count.append(1)
        if len(count) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", killed)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(compose_config(*overrides), tmp_path / "run")
    monkeypatch.setattr(loop, "train_epoch", real)
    summary = run_experiment(compose_config(*overrides, "train.resume=true"), tmp_path / "run")
    run_id = json.loads((tmp_path / "run" / "wandb_run.json").read_text())["id"]
    runs = offline_runs(tmp_path / "run")  # the first start's and the resumed one's, both of run_id
    assert [(run.run_id, run.resume) for run in runs] == [(run_id, False), (run_id, True)]
    steps = [step for run in runs for step, _ in run.history]
    assert steps == sorted(set(steps))  # the resumed start's steps go on after the first's
    assert [row["epoch"] for run in runs for _, row in run.history if "epoch" in row] == [1, 2, 3]
    assert runs[1].summary["test_auc"] == pytest.approx(summary["test_auc"])


@pytest.mark.slow
def test_llp_bp_candidates_log_to_wandb_under_their_own_keys(compose_config, tmp_path, quiet_wandb):
    overrides = [*FAST, "method=llp_bp", "bp.max_iters=20", "schedule.choose_by=lowest", "logger=wandb"]
    run_experiment(compose_config(*overrides), tmp_path / "run")  # schedule=auto: two candidates
    (run,) = offline_runs(tmp_path / "run")
    records = jsonl(tmp_path / "run")
    chosen = next(record for record in records if record.get("event") == "chosen")["candidate"]
    logged = {key for _, row in run.history for key in row}
    assert not logged & {"round0/epoch", "scale", "shift", "candidate"}
    for candidate in (0, 1):
        for round_index in (0, 1, 2):
            key = f"candidate{candidate}/round{round_index}/epoch"
            epochs = [row[key] for _, row in run.history if key in row]
            assert epochs and epochs == sorted(epochs), (key, epochs)  # no zigzag
    calibration = [r for r in records if r.get("event") == "output_calibration" and r["candidate"] == chosen]
    assert run.summary["chosen_candidate"] == chosen
    assert run.summary["scale"] == pytest.approx(calibration[-1]["scale"])
    assert run.summary["test_auc"] == pytest.approx(
        json.loads((tmp_path / "run" / "metrics.json").read_text())["test_auc"]
    )
