"""Collect the metrics.json files under one or more folders (a Hydra multirun) into a table and a plot.

    llp-report multirun/2026-11-25/12-00-00 --out benchmarks/bag_sizes

(`llp-report`, installed with the package; `python scripts/report.py` is the same command)

prints a markdown table of test AUC, mean ± standard deviation over seeds and their number, one row per
dataset and method (and per value of each config key given with --by, e.g. --by train.learning_rate),
one column per bag size, and writes <out>.md, <out>.json and <out>.png (AUC against bag size, with
standard-deviation bands). Several runs of one method, dataset, bag size, seed and --by values (variants
of its settings) are resolved on the validation bags: the one with the lowest validation criterion of its
returned model counts (--criterion: val_count_nll, -log P(count) per validation bag, by default, the
criterion model selection and a sweeper minimise; or val_bag_loss, or selection_loss, the one each run's
train.select_on named).
Failed runs (failed.json) and unfinished ones (metrics.jsonl only) are listed by folder.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

RUN_FILES = ("metrics.json", "failed.json", "metrics.jsonl")
# The validation criteria of metrics.json (of the model a run returns; lower is better) that may choose
# among variants: never a test metric.
CRITERIA = ("val_count_nll", "val_bag_loss", "selection_loss")


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"train": {"learning_rate": 0.01}} -> {"train.learning_rate": 0.01}; lists become strings."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value) if isinstance(value, list) else value
    return flat


def run_folders(folders: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """The run folders under `folders`: (finished: with metrics.json, failed: with failed.json,
    unfinished: with metrics.jsonl only, a run still going or killed)."""
    found = {name: [p.parent for f in folders for p in sorted(f.rglob(name))] for name in RUN_FILES}
    done = set(found["metrics.json"]) | set(found["failed.json"])
    return found["metrics.json"], found["failed.json"], [p for p in found["metrics.jsonl"] if p not in done]


def collect(
    folders: list[Path], metric: str, by: tuple[str, ...] = (), criterion: str = CRITERIA[0]
) -> tuple[dict, dict]:
    """(dataset, method, *values of `by`) -> bag size -> the metric of every seed found; and, where runs
    of one method came from several sweeps, (dataset, method, bag size) -> sweep folder -> how many seeds
    it won. `by`: config keys (e.g. train.learning_rate, from each run's config_resolved.yaml) that set
    runs apart in the table, as method and dataset do.

    Where the folders hold several runs of one method at the same dataset, bag size, seed and `by`
    values (variants of its settings), the run with the lowest `criterion` (a validation criterion of
    metrics.json, CRITERIA) is kept: settings are chosen on the validation bags, never on test or instance
    labels.
    """
    finished, _, _ = run_folders(folders)
    if not finished:
        raise SystemExit(
            f"no metrics.json under {', '.join(map(str, folders))}; give the folder of a run or sweep"
        )
    rows = []
    for folder in finished:
        config_file = folder / "config_resolved.yaml"
        config = flatten(yaml.safe_load(config_file.read_text())) if config_file.exists() else {}
        missing = [key for key in by if key not in config]
        if missing:
            raise SystemExit(
                f"{folder} has no config key {missing[0]!r}; --by takes keys of config_resolved.yaml"
            )
        run = json.loads((folder / "metrics.json").read_text())
        run["bag_size"] = bag_label(run, config)
        rows.append({**run, "by": tuple(config[key] for key in by), "path": folder})
    runs = pd.DataFrame(rows)
    if criterion not in CRITERIA or criterion not in runs:
        raise SystemExit(
            f"--criterion {criterion}: choose a validation criterion the runs' metrics.json hold, one of "
            f"{[name for name in CRITERIA if name in runs]}"
        )
    runs["sweep"] = [path.parent.name for path in runs["path"]]
    key = ["dataset", "method", "bag_size", "seed", "by"]
    chosen = runs.sort_values(criterion, kind="stable").drop_duplicates(key).sort_values(key)
    table: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in chosen.itertuples():
        table[(run.dataset, run.method, *run.by)][run.bag_size].append(getattr(run, metric))
    several = runs.groupby("method")["sweep"].nunique()
    wins = {
        (dataset, method, size): group["sweep"].value_counts().to_dict()
        for (dataset, method, size), group in chosen.groupby(["dataset", "method", "bag_size"])
        if several[method] > 1
    }
    return table, wins


def bag_label(run: dict, config: dict) -> int | str:
    """A run's bag-size column: its bag size, "low-high" for random bags of sizes drawn from a range
    (bagging.size_range; the mean size then differs from seed to seed), or "feature" for feature bags (set
    apart by --by bagging.columns; their mean size too differs from seed to seed)."""
    if run.get("bagging") == "feature":
        return "feature"
    size_range = config.get("bagging.size_range")
    if size_range in (None, "None"):
        return int(run["bag_size"])
    low, high = yaml.safe_load(size_range) if isinstance(size_range, str) else size_range
    return f"{low}-{high}"


def bag_position(label: int | str) -> float:
    """Where a bag-size column sits on a numeric axis: the size, a range's midpoint, or infinity for a
    column without a size ("feature"), which sorts last and is not plotted."""
    if isinstance(label, str) and "-" in label:
        low, high = map(int, label.split("-"))
        return (low + high) / 2
    return float("inf") if label == "feature" else float(label)


def has_size(label: int | str) -> bool:
    """Whether a bag-size column sits on the plot's axis (not "feature")."""
    return bool(np.isfinite(bag_position(label)))


def problems_markdown(folders: list[Path]) -> str:
    """The runs that have no result: failed or preempted (by failed.json's status, with their error) and
    unfinished ones."""
    _, failed, unfinished = run_folders(folders)
    records = {path: json.loads((path / "failed.json").read_text()) for path in failed}
    lines = [
        f"- {record.get('status', 'failed')}: {path} ({record['error']})" for path, record in records.items()
    ]
    lines += [f"- unfinished (no metrics.json): {path}" for path in unfinished]
    return "Runs without a result\n\n" + "\n".join(lines) + "\n" if lines else ""


def choices_markdown(wins: dict, criterion: str = CRITERIA[0]) -> str:
    """One line per method, dataset and bag size: which sweep the validation bags chose (by `criterion`),
    how often."""
    lines = [
        f"- {method}, {dataset}, bag {size}: " + ", ".join(f"{sweep} {n}" for sweep, n in sorted(won.items()))
        for (dataset, method, size), won in sorted(wins.items())
    ]
    heading = f"Variants chosen on the validation bags, lowest {criterion} (sweep folder: seeds)"
    return f"{heading}\n\n" + "\n".join(lines) + "\n"


def markdown(table, metric: str, by: tuple[str, ...] = ()) -> str:
    """The table as markdown: a row per dataset, method and `by` values, a column per bag size; each cell
    the mean ± standard deviation over seeds and how many there were."""
    sizes = sorted({size for row in table.values() for size in row}, key=bag_position)
    columns = ["dataset", "method", *by, *(f"bag {size}" for size in sizes)]
    lines = [
        f"| {' | '.join(columns)} |",
        "|---|---|" + "---|" * (len(by) + len(sizes)),
    ]
    for row_key, row in sorted(table.items(), key=lambda item: tuple(map(str, item[0]))):
        cells = []
        for size in sizes:
            values = [v for v in row.get(size, []) if v is not None]
            if not values:
                cells.append("")
            elif len(values) == 1:
                cells.append(f"{values[0]:.3f} (n=1)")
            else:
                cells.append(f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n={len(values)})")
        lines.append(f"| {' | '.join(map(str, row_key))} | {' | '.join(cells)} |")
    return f"{metric}, mean ± standard deviation over seeds\n\n" + "\n".join(lines) + "\n"


def plot(table, metric: str, path: Path, by: tuple[str, ...] = ()) -> None:
    """One panel per dataset: the metric against the bag size, a line per method (and `by` values) with
    a band of one standard deviation over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({key[0] for key in table})
    figure, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets), 4), squeeze=False)
    for axis, dataset in zip(axes[0], datasets, strict=True):
        all_sizes = set()
        for (name, method, *values), row in sorted(table.items(), key=lambda item: tuple(map(str, item[0]))):
            if name != dataset:
                continue
            sizes = sorted(filter(has_size, row), key=bag_position)
            if not sizes:
                continue
            all_sizes |= set(sizes)
            scores = [[v for v in row[s] if v is not None] for s in sizes]
            means, stds = np.array([np.mean(v) for v in scores]), np.array([np.std(v) for v in scores])
            label = ", ".join([method, *(f"{key}={value}" for key, value in zip(by, values, strict=True))])
            positions = [bag_position(size) for size in sizes]
            (line,) = axis.plot(positions, means, marker="o", label=label)
            axis.fill_between(positions, means - stds, means + stds, color=line.get_color(), alpha=0.15)
        pretty = metric.replace("_", " ").replace("auc", "AUC")
        axis.set(xscale="log", xlabel="bag size (log scale)", ylabel=f"{pretty} (mean ± std over seeds)")
        axis.set_title(dataset)
        ticks = sorted(all_sizes, key=bag_position)
        axis.set_xticks([bag_position(size) for size in ticks], [str(size) for size in ticks])
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    """`llp-report FOLDER... [--metric M] [--by KEY...] [--criterion C] [--out PATH]` (argv: the
    arguments; None: the command line's)."""
    parser = argparse.ArgumentParser(
        prog="llp-report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--metric", default="test_auc")
    parser.add_argument(
        "--by", nargs="*", default=[], help="config keys that set runs apart, e.g. train.learning_rate"
    )
    parser.add_argument(
        "--criterion",
        default=CRITERIA[0],
        choices=CRITERIA,
        help="the validation criterion (lower is better) that chooses among variants (default %(default)s)",
    )
    parser.add_argument("--out", type=Path, help="write <out>.md, <out>.json and <out>.png")
    args = parser.parse_args(argv)
    by = tuple(args.by)
    table, wins = collect(args.folders, args.metric, by, args.criterion)
    text = markdown(table, args.metric, by) + (f"\n{choices_markdown(wins, args.criterion)}" if wins else "")
    problems = problems_markdown(args.folders)
    text += f"\n{problems}" if problems else ""
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        serialisable = {
            "/".join(map(str, key)): {str(s): v for s, v in row.items()} for key, row in table.items()
        }
        args.out.with_suffix(".json").write_text(json.dumps(serialisable, indent=2) + "\n")
        if any(has_size(size) for row in table.values() for size in row):
            plot(table, args.metric, args.out.with_suffix(".png"), by)
        else:
            print(f"no bag-size axis to plot (feature bags only): {args.out.with_suffix('.png')} not written")


if __name__ == "__main__":
    main()
