import json
import logging
import sys

import numpy as np
import pytest

from llp_jax.writers import MetricsWriter


def test_records_are_streamed_and_the_summary_is_final(tmp_path):
    writer = MetricsWriter(tmp_path)
    writer.log({"epoch": 1, "loss": np.float32(0.5), "auc": float("nan")})
    first = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(first[0]) == {"epoch": 1, "loss": 0.5, "auc": None}  # on disk before the run ends
    writer.finish({"test_auc": np.float64(0.75), "n_bags": np.int64(3)})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"test_auc": 0.75, "n_bags": 3}
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "final" and last["test_auc"] == 0.75


def test_wandb_is_imported_only_when_asked_for(tmp_path):
    sys.modules.pop("wandb", None)
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
