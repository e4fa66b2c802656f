import json
import logging
import re
import sys

import numpy as np
import pytest
from wandb_offline import offline_runs

from llp_jax.writers import MetricsWriter, log_line


def test_records_are_streamed_and_the_summary_is_final(tmp_path):
    writer = MetricsWriter(tmp_path)
    writer.log({"epoch": 1, "loss": np.float32(0.5), "auc": float("nan")})
    first = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(first[0]) == {"epoch": 1, "loss": 0.5, "auc": None}  # on disk before the run ends
    writer.finish({"test_auc": np.float64(0.75), "n_bags": np.int64(3)})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"test_auc": 0.75, "n_bags": 3}
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "final" and last["test_auc"] == 0.75


def test_wandb_is_imported_only_when_asked_for(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "wandb", raising=False)  # put back after the test, submodules intact
    MetricsWriter(tmp_path).finish({})
    assert "wandb" not in sys.modules


def test_a_folder_holding_a_run_is_never_written_again(tmp_path):
    MetricsWriter(tmp_path).finish({"run": 1})
    before = {name: (tmp_path / name).read_text() for name in ("metrics.json", "metrics.jsonl")}
    with pytest.raises(FileExistsError, match=r"already holds a run \(metrics.jsonl, metrics.json\)"):
        MetricsWriter(tmp_path)
    assert {name: (tmp_path / name).read_text() for name in before} == before


def test_two_writers_started_at_once_never_share_a_folder(tmp_path):
    first = MetricsWriter(tmp_path)  # running: only its metrics.jsonl exists yet
    with pytest.raises(FileExistsError, match="already holds a run"):
        MetricsWriter(tmp_path)
    first.finish({"run": 1})


def test_a_failed_run_leaves_its_traceback(tmp_path):
    writer = MetricsWriter(tmp_path)
    try:
        raise RuntimeError("the data ran out")
    except RuntimeError as error:
        writer.fail(error)
    failed = json.loads((tmp_path / "failed.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "RuntimeError: the data ran out"
    assert 'raise RuntimeError("the data ran out")' in failed["traceback"]
    assert not (tmp_path / "metrics.json").exists()
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["event"] == "failed"


def test_log_lines_are_readable(caplog, tmp_path):
    writer = MetricsWriter(tmp_path, log_every=2)
    with caplog.at_level(logging.INFO, logger="llp_jax"):
        for epoch in range(1, 5):
            writer.log({"round": 1, "epoch": epoch, "train_loss": 0.123456})
        writer.log({"round": 1, "event": "bp", "bp_iterations": 40})
    assert caplog.messages == [
        "round 1, epoch 1: train_loss 0.1235",
        "round 1, epoch 3: train_loss 0.1235",
        "round 1, event bp: bp_iterations 40",
    ]


def test_an_empty_string_is_shown_not_left_blank():
    # LLP-BP's candidate "" is the schedule's defaults: "event chosen: candidate 0 schedule " ended blank
    assert log_line({"event": "chosen", "candidate": 0, "schedule": ""}) == (
        "event chosen: candidate 0 schedule (defaults)"
    )
    assert log_line({"event": "note", "text": ""}) == 'event note: text ""'


def test_wandb_run_is_named_grouped_and_keyed_by_round(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    settings = {"project": "llp_jax", "mode": "offline", "name": "run-a", "group": "sweep-1"}
    settings |= {"tags": ["adult", "bag512"], "job_type": "train", "notes": "a test"}
    writer = MetricsWriter(tmp_path / "run", settings, {"seed": 0}, log_encoder=True)
    run = writer.wandb_run
    for round_index, loss in ((1, 0.5), (2, 0.4)):
        writer.log({"round": round_index, "epoch": 1, "train_loss": loss})
    bp = {"round": 1, "event": "bp", "bp_iterations": 3, "bp_deltas": [1.0, 0.1, 0.01]}
    writer.log({**bp, "bp_marginals_histogram": [5, 0, 1, 4]})
    writer.log({"event": "output_calibration", "scale": 2.0})
    assert {"round1/bp_deltas_table", "round1/bp_marginals", "round1/bp_iterations"} <= set(
        run.summary.keys()
    )
    assert (run.name, run.group, tuple(run.tags), run.job_type) == (
        "run-a",
        "sweep-1",
        ("adult", "bag512"),
        "train",
    )
    assert run.summary["round1/train_loss"] == 0.5 and run.summary["round2/train_loss"] == 0.4
    assert run.summary["scale"] == 2.0
    (tmp_path / "run" / "encoder").mkdir()  # what save_encoder leaves, for the artifact
    (tmp_path / "run" / "encoder" / "state").write_text("weights")
    (tmp_path / "run" / "encoder.json").write_text("{}")
    writer.finish({"test_auc": 0.7})
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.fixture
def quiet_wandb(tmp_path, monkeypatch):
    """wandb's own files under tmp_path, nothing printed, and no WANDB_MODE from the caller's shell."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)


def test_a_resumed_run_continues_its_wandb_run(tmp_path, quiet_wandb):
    settings = {"project": "llp_jax", "mode": "offline", "name": "run-a"}
    first = MetricsWriter(tmp_path / "run", settings)
    for epoch in (1, 2, 3):
        first.log({"round": 0, "epoch": epoch, "train_loss": 1.0 / epoch})
    first.fail(KeyboardInterrupt("killed"))  # steps 1-3 and the failed event at step 4
    run_id = json.loads((tmp_path / "run" / "wandb_run.json").read_text())["id"]
    resumed = MetricsWriter(tmp_path / "run", settings, resume_from=2)  # its checkpoint covers 2 records
    for epoch in (1, 2, 3, 4):  # the replay of epochs 1 and 2 (not logged again), then 3 and 4 anew
        resumed.log({"round": 0, "epoch": epoch, "train_loss": 1.0 / epoch})
    resumed.finish({"test_auc": 0.7})
    MetricsWriter(tmp_path / "other", settings).finish({})  # another run folder: another wandb run
    runs = offline_runs(tmp_path / "run")
    assert [run.run_id for run in runs] == [run_id, run_id]  # two offline files of one run
    for run in runs:  # `wandb sync` uploads both into it (the second gets -1 when started in the same second)
        assert re.fullmatch(rf"offline-run-\d{{8}}_\d{{6}}-{run_id}(-\d+)?", run.folder.name), run.folder.name
    assert [run.resume for run in runs] == [False, True]
    steps = [step for run in runs for step, _ in run.history]
    assert steps == [1, 2, 3, 4, 5, 6, 7]  # on after the first start's, never back
    assert [row.get("round0/epoch") for _, row in runs[1].history] == [3, 4, None]
    assert runs[1].summary["test_auc"] == 0.7
    assert offline_runs(tmp_path / "other")[0].run_id != run_id


def test_a_run_resumed_twice_keeps_its_wandb_id_and_steps(tmp_path, quiet_wandb, monkeypatch):
    import wandb

    calls = []

    def init(**kwargs):  # a stand-in for wandb.init that only records what it was given
        calls.append(kwargs)
        return type("Run", (), {"log": lambda self, keys, step, commit: steps.append(step)})()

    monkeypatch.setattr(wandb, "init", init)
    steps = []
    writer = MetricsWriter(tmp_path, {"mode": "offline"})
    for epoch in range(1, 6):
        writer.log({"epoch": epoch})  # steps 1-5; killed after epoch 5
    for keep in (3, 4):  # resumed from 3 records (steps 6-8), killed, then from 4 (steps 9-...)
        writer = MetricsWriter(tmp_path, {"mode": "offline"}, resume_from=keep)
        for epoch in range(1, 7):
            writer.log({"epoch": epoch})
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert "resume" not in calls[0] and [call["resume"] for call in calls[1:]] == ["allow", "allow"]
    assert len({call["id"] for call in calls}) == 1


def test_candidates_log_under_their_own_keys_and_the_chosen_one_is_the_summary(tmp_path, quiet_wandb):
    writer = MetricsWriter(tmp_path / "run", {"project": "llp_jax", "mode": "offline"})
    for candidate in (0, 1):  # what LLP-BP logs with schedule.candidates (schedule=auto)
        for epoch in (1, 2):
            writer.log(
                {"candidate": candidate, "round": 0, "epoch": epoch, "train_loss": candidate + 1 / epoch}
            )
        writer.log({"candidate": candidate, "round": 0, "event": "bp", "bp_iterations": 10 + candidate})
        writer.log({"candidate": candidate, "event": "output_calibration", "scale": 2.0 + candidate})
        writer.log({"candidate": candidate, "event": "candidate_end", "schedule": "", "val_count_nll": 3.0})
    writer.log({"event": "chosen", "candidate": 1, "schedule": "warm_start=dllp"})
    writer.finish({"test_auc": 0.7})
    (run,) = offline_runs(tmp_path / "run")
    steps = [step for step, _ in run.history]
    assert steps == sorted(set(steps))
    for candidate in (0, 1):
        key = f"candidate{candidate}/round0/epoch"  # wandb adds it to the round's BP row too
        assert [row[key] for _, row in run.history if key in row] == [1, 2, 2]  # not 1, 2, 2, 1, 2, 2
    logged = {key for _, row in run.history for key in row}
    assert not logged & {"round0/epoch", "round0/train_loss", "scale", "candidate"}
    assert {"candidate0/scale", "candidate1/scale", "candidate1/round0/bp_iterations"} <= logged
    summary = run.summary
    assert (summary["chosen_candidate"], summary["scale"], summary["round0/bp_iterations"]) == (1, 3.0, 11)
    assert summary["round0/train_loss"] == 1.5 and summary["candidate0/scale"] == 2.0
    assert summary["test_auc"] == 0.7


@pytest.mark.parametrize(
    ("environment", "configured", "folders"),
    [(None, None, 1), ("disabled", None, 0), ("disabled", "offline", 1), ("offline", None, 1)],
)
def test_wandb_mode_comes_from_the_environment_unless_the_config_names_one(
    environment, configured, folders, tmp_path, quiet_wandb, monkeypatch
):
    if environment is not None:
        monkeypatch.setenv("WANDB_MODE", environment)
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    writer = MetricsWriter(tmp_path / "run", {"project": "llp_jax", "mode": configured})
    writer.log({"epoch": 1, "train_loss": 0.5})
    writer.finish({"test_auc": 0.7})
    assert len(offline_runs(tmp_path)) == folders
    assert (writer.wandb_run is None) == (folders == 0) and ("wandb" in sys.modules) == (folders == 1)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text()) == {"test_auc": 0.7}


def test_the_environments_wandb_mode_reaches_wandb_unless_the_config_names_one(tmp_path, monkeypatch):
    import wandb

    modes = []
    monkeypatch.setattr(wandb, "init", lambda **kwargs: modes.append(kwargs["mode"]))
    monkeypatch.setenv("WANDB_MODE", "online")
    for folder, configured in (("a", None), ("b", "offline")):
        MetricsWriter(tmp_path / folder, {"mode": configured})
    monkeypatch.delenv("WANDB_MODE")
    MetricsWriter(tmp_path / "c", {"mode": None})
    assert modes == ["online", "offline", "offline"]  # wandb's own default would be online
