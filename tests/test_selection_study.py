import json

import numpy as np
import pytest
from conftest import benchmark_module
from scipy.stats import spearmanr

selection_study = benchmark_module("selection_study")


def test_spearman_matches_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.integers(0, 4, 7).astype(float), rng.random(7)
        expected = spearmanr(x, y).statistic
        assert selection_study.spearman(x, y) == pytest.approx(expected, nan_ok=True)


def write_run(root, name, method, seed, test_auc, count_nll_per_bag, candidates=()):
    folder = root / name
    folder.mkdir(parents=True)
    per_bag = {
        "val_count_nll_per_bag": count_nll_per_bag,
        "val_bag_loss_per_bag": [0.5] * len(count_nll_per_bag),
    }
    means = {"val_count_nll": float(np.mean(count_nll_per_bag)), "val_bag_loss": 0.5}
    summary = {"dataset": "adult", "method": method, "bag_size": 512, "seed": seed, "test_auc": test_auc}
    (folder / "metrics.json").write_text(json.dumps({**summary, **means, **per_bag}))
    (folder / "config_resolved.yaml").write_text(
        "dataset:\n  positive_rate: null\nbagging:\n  size_range: null\n"
    )
    records = [
        {
            "candidate": i,
            "event": "candidate_end",
            "oracle/test_auc": auc,
            "val_count_nll": float(np.mean(nll)),
            "val_bag_loss": 0.5,
            "val_count_nll_per_bag": nll,
            "val_bag_loss_per_bag": [0.5] * len(nll),
        }
        for i, (auc, nll) in enumerate(candidates)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_each_rule_scores_what_it_would_have_chosen(tmp_path):
    reference, clearly_better, better_by_chance = (
        [3.0, 2.0, 4.0, 3.0],
        [2.0, 1.1, 2.9, 2.1],
        [1.0, 3.0, 2.5, 4.2],
    )
    for seed in (0, 1):
        write_run(tmp_path, f"dllp{seed}", "dllp", seed, 0.60, better_by_chance)
        write_run(tmp_path, f"easyllp{seed}", "easyllp", seed, 0.50, [9.0] * 4)
        write_run(tmp_path, f"countloss{seed}", "countloss", seed, 0.55, [8.0] * 4)
        second = clearly_better if seed == 0 else [5.0] * 4
        write_run(
            tmp_path, f"llp_bp{seed}", "llp_bp", seed, 0.0, reference, [(0.70, reference), (0.80, second)]
        )
    (row,) = selection_study.study(selection_study.collect([tmp_path]))
    assert (
        row["seeds"] == 2
        and row["llp_bp[0]"] == pytest.approx(0.70)
        and row["llp_bp[1]"] == pytest.approx(0.80)
    )
    assert row["best fixed"] == "llp_bp[1]"
    # among the candidates: seed 0 picks candidate 1 (clearly better), seed 1 keeps candidate 0
    assert row["one_se (candidates)"] == pytest.approx(0.75)
    assert row["lowest val_count_nll (candidates)"] == pytest.approx(0.75)
    # among all: seed 0's lowest mean count NLL is candidate 1's (2.03), seed 1's DLLP's (2.68 < 3.0), which
    # is lower only by chance: one-SE keeps the reference there
    assert row["lowest val_count_nll (all)"] == pytest.approx((0.80 + 0.60) / 2)
    assert row["one_se (all)"] == pytest.approx((0.80 + 0.70) / 2)
