import json
import sys

import numpy as np

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


def test_a_rerun_in_the_same_folder_keeps_earlier_records(tmp_path):
    MetricsWriter(tmp_path).finish({"run": 1})
    MetricsWriter(tmp_path).finish({"run": 2})
    runs = [json.loads(line)["run"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert runs == [1, 2]
