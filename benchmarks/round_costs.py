"""Per round of finished LLP-BP runs: the seconds of the graph, of BP and of the round's encoder training,
and (graph + BP) / training, the ratio that issue 13 bounds by one half.

    python scripts/train.py -m method=llp_bp dataset=bank_marketing bagging.bag_size=128 seed=0,1,2 \
        compilation_cache_dir=null train.progress=false hydra.sweep.dir=/tmp/ratio/bank
    python benchmarks/round_costs.py /tmp/ratio/bank

prints one JSON object per run (the folders found under the arguments, in path order): dataset, bag size,
seed, device, test AUC, wall time, the seconds the run's process spent compiling by stage (compile_s:
a sweep's later jobs in one process should show 0), the rounds (candidate, round, graph_s, bp_s,
train_s, ratio; the warm start's round 0 has no graph and is left out) and their mean ratio; then one
object with the mean over the runs.
Reads each run's metrics.json and metrics.jsonl: the "bp" records' graph_build_s and bp_s, the "round_end"
records' train_s (the whole fit, its compilations included).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llp_jax.report import run_folders


def round_costs(records: list[dict]) -> list[dict]:
    """The rounds with a graph, in the order logged: [{candidate, round, graph_s, bp_s, train_s, ratio}].
    records: a run's metrics.jsonl, one dict per line. A round whose fit never ended (no round_end) is left
    out."""
    graphs, rounds = {}, []
    for record in records:
        where = (record.get("candidate", 0), record.get("round"))
        if record.get("event") == "bp":
            graphs[where] = (record["graph_build_s"], record["bp_s"])
        elif record.get("event") == "round_end" and where in graphs:
            graph_s, bp_s = graphs.pop(where)
            train_s = record["train_s"]
            rounds.append(
                {
                    "candidate": where[0],
                    "round": where[1],
                    "graph_s": graph_s,
                    "bp_s": bp_s,
                    "train_s": train_s,
                    "ratio": (graph_s + bp_s) / train_s,
                }
            )
    return rounds


def run_summary(folder: Path) -> dict | None:
    """One run's rounds and mean ratio, or None for a run of another method (no round with a graph)."""
    metrics = json.loads((folder / "metrics.json").read_text())
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    rounds = round_costs([json.loads(line) for line in lines if line.strip()])
    if not rounds:
        return None
    return {
        "run": str(folder),
        "dataset": metrics.get("dataset"),
        "bag_size": metrics.get("bag_size"),
        "seed": metrics.get("seed"),
        "device": metrics.get("provenance", {}).get("device"),
        "test_auc": metrics.get("test_auc"),
        "wall_time_s": metrics.get("wall_time_s"),
        "compile_s": metrics.get("compile_s"),
        "rounds": rounds,
        "mean_ratio": sum(r["ratio"] for r in rounds) / len(rounds),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="run or sweep folders")
    args = parser.parse_args(argv)
    finished, _, _ = run_folders(args.folders)
    summaries = [s for s in map(run_summary, finished) if s is not None]
    if not summaries:
        raise SystemExit(
            f"no finished LLP-BP run under {', '.join(map(str, args.folders))}; give the folder of a "
            "method=llp_bp run or sweep"
        )
    for summary in summaries:
        print(json.dumps(summary))
    ratios = [s["mean_ratio"] for s in summaries]
    print(
        json.dumps({"runs": len(ratios), "mean_ratio": sum(ratios) / len(ratios), "max_ratio": max(ratios)})
    )


if __name__ == "__main__":
    main()
