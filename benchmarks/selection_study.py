"""Can the validation bags choose? Over the runs of `make results`, per dataset and bag size:

1. how well each validation criterion ranks the models: Spearman's rho between minus the criterion (the
   proportion cross-entropy `val_bag_loss`, the count negative log-likelihood `val_count_nll`) and test
   AUC, over the options of one seed (DLLP, EasyLLP, CountLoss and each LLP-BP candidate of
   schedule=auto), averaged over seeds;
2. what choosing would have given: the mean test AUC over seeds of what each rule picks per seed, next
   to every fixed option and the best fixed one (which only test labels can name). Rules: the lowest mean
   of a criterion, or one-SE (the reference unless another option's per-bag count NLL is lower by more
   than one standard error of the paired differences, llp_jax.methods.llp_bp.choose_candidate), among
   LLP-BP's candidates (one-SE there is what schedule=auto returned) or among all the LLP options.

    python benchmarks/selection_study.py results/<stamp>/bag_sizes results/<stamp>/thinned \
        --out benchmarks/selection

prints markdown and writes <out>.md and <out>.json. Needs runs made with per-bag validation criteria in
metrics.json and candidate_end records in metrics.jsonl (llp_bp with schedule.candidates). Test AUC is
read only to score choices, never to make them.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from llp_jax.methods.llp_bp import choose_candidate
from llp_jax.report import bag_label, bag_position, flatten, run_folders

BASELINES = ("dllp", "easyllp", "countloss")
CRITERIA = ("val_bag_loss", "val_count_nll")


def option(values: dict) -> dict:
    """What a study needs of one model: test AUC and both criteria, mean and per validation bag."""
    return {
        "test_auc": values["test_auc"],
        **{name: values[name] for name in CRITERIA},
        **{f"{name}_per_bag": np.asarray(values[f"{name}_per_bag"]) for name in CRITERIA},
    }


def cell_of(run: dict, config: dict) -> tuple[str, str]:
    """(dataset label, bag label): a thinned dataset is named with its positive rate."""
    rate = config.get("dataset.positive_rate")
    dataset = (
        run["dataset"] if rate is None or run["dataset"] == "synthetic" else f"{run['dataset']} {rate:g}"
    )
    return dataset, str(bag_label(run, config))


def collect(folders: list[Path]) -> dict:
    """(dataset, bag) -> seed -> option name -> option; LLP-BP's candidates are options "llp_bp[i]", and
    "llp_bp" holds what schedule=auto returned (a rule's result, not an option)."""
    cells: dict = defaultdict(lambda: defaultdict(dict))
    finished, _, _ = run_folders(folders)
    for folder in finished:
        run = json.loads((folder / "metrics.json").read_text())
        config = flatten(yaml.safe_load((folder / "config_resolved.yaml").read_text()))
        options = cells[cell_of(run, config)][run["seed"]]
        if run["method"] in BASELINES:
            options[run["method"]] = option(run)
        if run["method"] == "llp_bp":
            options["llp_bp"] = option(run)
            for line in (folder / "metrics.jsonl").read_text().splitlines():
                record = json.loads(line)
                if record.get("event") == "candidate_end":
                    options[f"llp_bp[{record['candidate']}]"] = option(
                        {**record, "test_auc": record["oracle/test_auc"]}
                    )
    return cells


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties at their mean rank); nan for fewer than 3 points or a constant."""
    if len(x) < 3:
        return float("nan")
    rank_x, rank_y = (np.argsort(np.argsort(v)).astype(float) for v in (x, y))
    for values, ranks in ((x, rank_x), (y, rank_y)):
        for value in np.unique(values):
            ranks[values == value] = ranks[values == value].mean()
    if rank_x.std() == 0 or rank_y.std() == 0:
        return float("nan")
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def choose(options: dict, names: list[str], rule: str) -> str:
    """The option a rule picks among `names` (the first is one-SE's reference): "lowest <criterion>" or
    "one_se"."""
    if rule == "one_se":
        per_bag = np.stack([options[name]["val_count_nll_per_bag"] for name in names])
        return names[choose_candidate(per_bag, "one_se")]
    criterion = rule.removeprefix("lowest ")
    return min(names, key=lambda name: options[name][criterion])


def study(cells: dict) -> list[dict]:
    """One row per (dataset, bag): rank correlations and the mean test AUC of every option and rule."""
    rows = []
    for (dataset, bag), seeds in sorted(
        cells.items(), key=lambda item: (item[0][0], bag_position(item[0][1]))
    ):
        candidates = sorted({name for options in seeds.values() for name in options if "[" in name})
        everything = [*candidates, *BASELINES]
        complete = {
            seed: o for seed, o in seeds.items() if all(name in o for name in [*everything, "llp_bp"])
        }
        if not complete:
            continue
        row = {"dataset": dataset, "bag": bag, "seeds": len(complete)}
        for criterion in CRITERIA:
            rhos = [
                spearman(
                    -np.array([o[n][criterion] for n in everything]),
                    np.array([o[n]["test_auc"] for n in everything]),
                )
                for o in complete.values()
            ]
            row[f"rho {criterion}"] = float(np.nanmean(rhos)) if not np.all(np.isnan(rhos)) else float("nan")
        for name in [*everything, "llp_bp"]:
            row[name] = float(np.mean([o[name]["test_auc"] for o in complete.values()]))
        row["best fixed"] = max(everything, key=lambda name: row[name])
        for scope, names in (("candidates", candidates), ("all", everything)):
            for rule in ("lowest val_bag_loss", "lowest val_count_nll", "one_se"):
                picks = [choose(o, names, rule) for o in complete.values()]
                row[f"{rule} ({scope})"] = float(
                    np.mean([o[pick]["test_auc"] for o, pick in zip(complete.values(), picks, strict=True)])
                )
        rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    if not rows:
        return "no complete cell (every LLP option and llp_bp in at least one seed)\n"
    candidates = sorted({key for row in rows for key in row if key.startswith("llp_bp[")})
    rho = ["| dataset | bag | seeds | rho val_bag_loss | rho val_count_nll |", "|---|---|---|---|---|"]
    rho += [
        f"| {r['dataset']} | {r['bag']} | {r['seeds']} | "
        + " | ".join(f"{r[f'rho {criterion}']:.2f}" for criterion in CRITERIA)
        + " |"
        for r in rows
    ]
    fixed = [*candidates, *BASELINES]
    rules = [key for key in rows[0] if key.startswith(("lowest", "one_se"))]
    header = ["dataset", "bag", *fixed, "best fixed", "llp_bp (auto)", *rules]
    choice = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["dataset"], r["bag"], *(f"{r[n]:.3f}" for n in fixed)]
        cells += [f"{r[r['best fixed']]:.3f} ({r['best fixed']})", f"{r['llp_bp']:.3f}"]
        cells += [f"{r[rule]:.3f}" for rule in rules]
        choice.append(f"| {' | '.join(cells)} |")
    return (
        "Rank correlation of minus each validation criterion with test AUC, over the LLP options of a seed "
        "(mean over seeds)\n\n"
        + "\n".join(rho)
        + "\n\nMean test AUC over seeds: each fixed option, the best "
        "of them (named by test labels), and what each rule would have chosen per seed\n\n"
        + "\n".join(choice)
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = parser.parse_args()
    rows = study(collect(args.folders))
    text = markdown(rows)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
