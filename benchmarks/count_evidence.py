"""How much do the bag counts say? Per (dataset, bag size) cell of finished runs, the count negative
log-likelihood -log P(sum_i y_i = k_b) per bag (Poisson-binomial) of the supervised classifier (trained
on instance labels, so the best model a count-based method could hope to find) against a constant
classifier at the training bags' base rate (which knows nothing), on the training bags and on the
validation bags, next to the test AUC of both and the number of bags.

The gap between the two, times the number of bags, is the evidence (in nats) that the counts hold for a
good classifier over one that knows nothing. Where it is a few nats, no method that learns from counts
can be expected to find the good classifier, and no validation criterion computed on the counts can tell
a good model from a poor one.

    python benchmarks/count_evidence.py results/<stamp>/thinned results/<stamp>/bag_sizes \
        --out benchmarks/count_evidence

prints markdown and writes <out>.md and <out>.json. Reads each supervised run's config_resolved.yaml
(to rebuild its data and bags, seeded as the run was) and its saved encoder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from omegaconf import OmegaConf

from llp_jax.checkpoint import load_encoder
from llp_jax.config import resolve
from llp_jax.data.bags import Bags
from llp_jax.experiment import load_inputs
from llp_jax.report import bag_position, flatten, run_folders
from llp_jax.train.count_likelihood import count_log_likelihood
from llp_jax.train.loop import predict
from llp_jax.train.metrics import roc_auc

sys.path.insert(0, str(Path(__file__).parent))
from selection_study import cell_of  # noqa: E402


def count_nll(logits: np.ndarray, bags: Bags) -> np.ndarray:
    """-log P(count) of each bag, float[n_bags], for logits float32[n] of the rows the bags index."""
    bag_logits = jnp.asarray(logits, jnp.float32)[bags.members]
    return -np.asarray(count_log_likelihood(bag_logits, jnp.asarray(bags.mask), jnp.asarray(bags.counts)))


def base_rate_logits(n: int, bags: Bags) -> np.ndarray:
    """float32[n]: every row at the logit of the bags' pooled positive rate."""
    rate = float(bags.counts.sum() / bags.sizes.sum())
    return np.full(n, np.log(rate / (1.0 - rate)), np.float32)


def evidence_of(folder: Path) -> dict:
    """The numbers of one finished supervised run."""
    cfg = OmegaConf.load(folder / "config_resolved.yaml")
    data, train_bags, val_bags = load_inputs(resolve(cfg))
    encoder = load_encoder(folder)
    row = {}
    for split, x, bags in (("train", data.train.x, train_bags), ("val", data.val.x, val_bags)):
        supervised, _ = predict(encoder, x, 4096)
        constant = base_rate_logits(len(x), train_bags)
        row[f"n_{split}_bags"] = int(bags.n_bags)
        row[f"{split}_nll_supervised"] = float(count_nll(supervised, bags).mean())
        row[f"{split}_nll_constant"] = float(count_nll(constant, bags).mean())
        row[f"{split}_evidence_nats"] = bags.n_bags * (
            row[f"{split}_nll_constant"] - row[f"{split}_nll_supervised"]
        )
    test_logits, _ = predict(encoder, data.test.x, 4096)
    row["test_auc_supervised"] = roc_auc(data.test.y, test_logits)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders holding supervised runs")
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    args = parser.parse_args()
    cells = defaultdict(list)
    finished, _, _ = run_folders(args.folders)
    for folder in finished:
        run = json.loads((folder / "metrics.json").read_text())
        if run["method"] != "supervised":
            continue
        config = flatten(OmegaConf.to_container(OmegaConf.load(folder / "config_resolved.yaml")))
        cells[cell_of(run, config)].append(evidence_of(folder))
    rows = []
    for (dataset, bag), runs in sorted(
        cells.items(), key=lambda item: (item[0][0], bag_position(item[0][1]))
    ):
        mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        rows.append({"dataset": dataset, "bag": bag, "seeds": len(runs), **mean})
    columns = [
        "n_train_bags",
        "train_evidence_nats",
        "n_val_bags",
        "val_nll_constant",
        "val_nll_supervised",
        "val_evidence_nats",
        "test_auc_supervised",
    ]
    lines = [
        "Means over seeds. nll: -log P(count) per bag; evidence: bags x (constant nll - supervised nll)",
        "",
        "| dataset | bag | seeds | " + " | ".join(columns) + " |",
        "|---|---|---|" + "---|" * len(columns),
    ]
    for row in rows:
        cells_text = [f"{row[c]:.0f}" if c.startswith("n_") else f"{row[c]:.3g}" for c in columns]
        lines.append(f"| {row['dataset']} | {row['bag']} | {row['seeds']} | " + " | ".join(cells_text) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.with_suffix(".md").write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
