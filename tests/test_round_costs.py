import json
from pathlib import Path

import pytest
from conftest import benchmark_module

round_costs = benchmark_module("round_costs")


def write_run(folder: Path, method: str, records: list[dict]) -> None:
    folder.mkdir(parents=True)
    metrics = {
        "status": "finished",
        "method": method,
        "dataset": "bank_marketing",
        "bag_size": 128,
        "seed": 2,
    }
    metrics["test_auc"], metrics["provenance"] = 0.8, {"device": {"platform": "cpu"}}
    metrics["wall_time_s"], metrics["compile_s"] = 12.5, {"bp": 1.5, "total": 4.0}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


LLP_BP_RECORDS = [
    {"candidate": 0, "round": 0, "event": "round_end", "train_s": 9.0},  # the warm start: no graph
    {"candidate": 0, "round": 1, "event": "bp", "graph_build_s": 2.0, "bp_s": 1.0},
    {"candidate": 0, "round": 1, "epoch": 1, "train_loss": 0.3},
    {"candidate": 0, "round": 1, "event": "round_end", "train_s": 4.0},
    {"candidate": 1, "round": 1, "event": "bp", "graph_build_s": 1.0, "bp_s": 0.5},
    {"candidate": 1, "round": 1, "event": "round_end", "train_s": 6.0},
    {"candidate": 1, "round": 2, "event": "bp", "graph_build_s": 1.0, "bp_s": 0.5},  # killed in its fit
]


def test_each_round_with_a_graph_gets_its_ratio_of_graph_and_bp_to_training():
    rounds = round_costs.round_costs(LLP_BP_RECORDS)
    assert [(r["candidate"], r["round"]) for r in rounds] == [(0, 1), (1, 1)]
    assert [r["ratio"] for r in rounds] == [pytest.approx(3.0 / 4.0), pytest.approx(1.5 / 6.0)]
    assert rounds[0] | {"ratio": 0} == {
        "candidate": 0, "round": 1, "graph_s": 2.0, "bp_s": 1.0, "train_s": 4.0, "ratio": 0,
    }  # fmt: skip


def test_the_script_prints_every_llp_bp_run_and_the_mean(tmp_path, capsys):
    write_run(tmp_path / "sweep" / "0", "llp_bp", LLP_BP_RECORDS)
    write_run(tmp_path / "sweep" / "1", "llp_bp", LLP_BP_RECORDS[1:4])
    write_run(tmp_path / "sweep" / "2", "dllp", [{"epoch": 1, "train_loss": 0.3}])  # no rounds: left out
    round_costs.main([str(tmp_path / "sweep")])
    first, second, summary = map(json.loads, capsys.readouterr().out.splitlines())
    assert first["mean_ratio"] == pytest.approx((0.75 + 0.25) / 2) and second["mean_ratio"] == pytest.approx(
        0.75
    )
    assert (first["dataset"], first["bag_size"], first["seed"], first["test_auc"]) == (
        "bank_marketing",
        128,
        2,
        0.8,
    )
    assert (first["wall_time_s"], first["compile_s"]) == (12.5, {"bp": 1.5, "total": 4.0})
    assert summary == {"runs": 2, "mean_ratio": pytest.approx(0.625), "max_ratio": pytest.approx(0.75)}


def test_a_folder_without_llp_bp_runs_is_refused_by_name(tmp_path):
    write_run(tmp_path / "0", "dllp", [{"epoch": 1, "train_loss": 0.3}])
    with pytest.raises(SystemExit, match="no finished LLP-BP run under .*method=llp_bp"):
        round_costs.main([str(tmp_path)])
