"""Collect the metrics.json files under one or more folders (a Hydra multirun) into a table and a plot.

    python scripts/report.py multirun/2026-11-25/12-00-00 --out benchmarks/bag_sizes

prints a markdown table of test AUC, mean ± standard deviation over seeds, one row per dataset and method,
one column per bag size, and writes <out>.md, <out>.json and <out>.png (AUC against bag size). Several
runs of one method, dataset, bag size and seed (variants of its settings) are resolved on the validation
bags: the one with the lowest validation bag loss counts.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def collect(folders: list[Path], metric: str) -> tuple[dict, dict]:
    """(dataset, method) -> bag size -> the metric of every seed found; and, where runs of one method
    came from several sweeps, (dataset, method, bag size) -> sweep folder -> how many seeds it won.

    Where the folders hold several runs of one method at the same dataset, bag size and seed (variants of
    its settings), the run with the lowest validation bag loss is kept: settings are chosen on the
    validation bags, never on test or instance labels.
    """
    paths = [path for folder in folders for path in sorted(folder.rglob("metrics.json"))]
    if not paths:
        raise SystemExit(
            f"no metrics.json under {', '.join(map(str, folders))}; give the folder of a run or sweep"
        )
    chosen: dict[tuple, dict] = {}
    for path in paths:
        run = json.loads(path.read_text())
        key = (run["dataset"], run["method"], int(run["bag_size"]), run["seed"])
        if key not in chosen or run["val_bag_loss"] < chosen[key]["val_bag_loss"]:
            chosen[key] = {**run, "path": str(path.parent)}
    table: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    wins: dict[tuple[str, str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (dataset, method, bag_size, _), run in sorted(chosen.items()):
        table[(dataset, method)][bag_size].append(run[metric])
        wins[(dataset, method, bag_size)][Path(run["path"]).parent.name] += 1
    sweeps = defaultdict(set)
    for path in paths:
        sweeps[json.loads(path.read_text())["method"]].add(path.parent.parent.name)
    return table, {key: dict(won) for key, won in wins.items() if len(sweeps[key[1]]) > 1}


def choices_markdown(wins: dict) -> str:
    """One line per method, dataset and bag size: which sweep the validation bags chose, how often."""
    lines = [
        f"- {method}, {dataset}, bag {size}: " + ", ".join(f"{sweep} {n}" for sweep, n in sorted(won.items()))
        for (dataset, method, size), won in sorted(wins.items())
    ]
    return "Variants chosen on the validation bags (sweep folder: seeds)\n\n" + "\n".join(lines) + "\n"


def markdown(table, metric: str) -> str:
    sizes = sorted({size for row in table.values() for size in row})
    lines = [
        f"| dataset | method | {' | '.join(f'bag {size}' for size in sizes)} |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for (dataset, method), row in sorted(table.items()):
        cells = []
        for size in sizes:
            values = [v for v in row.get(size, []) if v is not None]
            if not values:
                cells.append("")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f}")
            else:
                cells.append(f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n={len(values)})")
        lines.append(f"| {dataset} | {method} | {' | '.join(cells)} |")
    return f"{metric}, mean ± standard deviation over seeds\n\n" + "\n".join(lines) + "\n"


def plot(table, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({dataset for dataset, _ in table})
    figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        for (name, method), row in sorted(table.items()):
            if name != dataset:
                continue
            sizes = sorted(row)
            means = [np.mean([v for v in row[s] if v is not None]) for s in sizes]
            axis.plot(sizes, means, marker="o", label=method)
        axis.set(xscale="log", xlabel="bag size", ylabel=metric, title=dataset)
        axis.set_xticks(sizes, [str(s) for s in sizes])
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--metric", default="test_auc")
    parser.add_argument("--out", type=Path, help="write <out>.md, <out>.json and <out>.png")
    args = parser.parse_args()
    table, wins = collect(args.folders, args.metric)
    text = markdown(table, args.metric) + (f"\n{choices_markdown(wins)}" if wins else "")
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        serialisable = {f"{d}/{m}": {str(s): v for s, v in row.items()} for (d, m), row in table.items()}
        args.out.with_suffix(".json").write_text(json.dumps(serialisable, indent=2) + "\n")
        plot(table, args.metric, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
