import json
import subprocess
import sys
from pathlib import Path

import pytest

from llp_jax.report import main as report

REPORT = Path(__file__).parents[1] / "scripts" / "report.py"


def write_run(
    folder: Path,
    method: str,
    bag_size: int,
    seed: int,
    val_bag_loss: float,
    test_auc: float,
    val_count_nll: float | None = None,  # None: val_bag_loss's value, so that both rank runs alike
):
    run = folder / f"{method}_bag{bag_size}_seed{seed}"
    run.mkdir(parents=True)
    summary = {"dataset": "adult", "method": method, "bag_size": bag_size, "seed": seed}
    count_nll = val_bag_loss if val_count_nll is None else val_count_nll
    summary |= {"val_bag_loss": val_bag_loss, "val_count_nll": count_nll, "test_auc": test_auc}
    (run / "metrics.json").write_text(json.dumps(summary))


def test_variants_are_chosen_on_the_validation_bags_and_named(tmp_path):
    default, plain = tmp_path / "default", tmp_path / "plain"
    write_run(default, "llp_bp", 512, 0, val_bag_loss=0.50, test_auc=0.80)
    write_run(plain, "llp_bp", 512, 0, val_bag_loss=0.60, test_auc=0.99)  # better test AUC, not chosen
    write_run(default, "llp_bp", 512, 1, val_bag_loss=0.70, test_auc=0.70)
    write_run(plain, "llp_bp", 512, 1, val_bag_loss=0.40, test_auc=0.60)
    write_run(default, "dllp", 512, 0, val_bag_loss=0.50, test_auc=0.75)
    args = [sys.executable, str(REPORT), str(default), str(plain), "--out", str(tmp_path / "table")]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    table = json.loads((tmp_path / "table.json").read_text())
    assert table["adult/llp_bp"]["512"] == [0.80, 0.60]
    assert table["adult/dllp"]["512"] == [0.75]
    assert "| adult | llp_bp | 0.700 ± 0.141 (n=2) |" in printed
    assert "| adult | dllp | 0.750 (n=1) |" in printed
    assert "- llp_bp, adult, bag 512: default 1, plain 1" in printed
    assert "dllp, adult" not in printed.split("Variants")[1]
    assert (tmp_path / "table.png").stat().st_size > 0


def test_variants_are_chosen_by_the_validation_count_nll_unless_told_otherwise(tmp_path, capsys):
    # two variants whose criteria disagree: the count NLL (what model selection and a sweeper minimise)
    # prefers b, the proportion loss a
    a, b = tmp_path / "a", tmp_path / "b"
    write_run(a, "llp_bp", 512, 0, val_bag_loss=0.40, val_count_nll=3.5, test_auc=0.70)
    write_run(b, "llp_bp", 512, 0, val_bag_loss=0.45, val_count_nll=3.2, test_auc=0.90)
    report([str(a), str(b)])
    printed = capsys.readouterr().out
    assert "| adult | llp_bp | 0.900 (n=1) |" in printed
    assert (
        "lowest val_count_nll (sweep folder: seeds)" in printed and "- llp_bp, adult, bag 512: b 1" in printed
    )
    report([str(a), str(b), "--criterion", "val_bag_loss"])
    printed = capsys.readouterr().out
    assert "| adult | llp_bp | 0.700 (n=1) |" in printed and "- llp_bp, adult, bag 512: a 1" in printed
    with pytest.raises(SystemExit):
        report([str(a), "--criterion", "test_auc"])  # never a test metric


@pytest.mark.parametrize("folder", ["empty", "missing"])
def test_a_folder_without_runs_is_a_clear_error(tmp_path, folder):
    (tmp_path / "empty").mkdir()
    out = subprocess.run(
        [sys.executable, str(REPORT), str(tmp_path / folder)], capture_output=True, text=True
    )
    assert out.returncode != 0 and "no metrics.json under" in out.stderr


def test_failed_and_unfinished_runs_are_named(tmp_path):
    write_run(tmp_path, "dllp", 32, 0, val_bag_loss=0.5, test_auc=0.8)
    failed, unfinished = tmp_path / "failed_run", tmp_path / "killed_run"
    failed.mkdir()
    (failed / "metrics.jsonl").write_text("")
    (failed / "failed.json").write_text(json.dumps({"status": "failed", "error": "ValueError: bad"}))
    unfinished.mkdir()
    (unfinished / "metrics.jsonl").write_text("")
    preempted = tmp_path / "preempted_run"  # SIGTERM: failed.json with status preempted
    preempted.mkdir()
    (preempted / "metrics.jsonl").write_text("")
    (preempted / "failed.json").write_text(json.dumps({"status": "preempted", "error": "Preempted: SIGTERM"}))
    printed = subprocess.run(
        [sys.executable, str(REPORT), str(tmp_path)], capture_output=True, text=True
    ).stdout
    assert f"- failed: {failed} (ValueError: bad)" in printed
    assert f"- preempted: {preempted} (Preempted: SIGTERM)" in printed
    assert f"- unfinished (no metrics.json): {unfinished}" in printed


def test_bags_of_sizes_from_a_range_share_one_column_whatever_their_mean_size(tmp_path):
    for seed, mean_size in enumerate([987, 1043]):
        write_run(tmp_path, "dllp", mean_size, seed, val_bag_loss=0.5, test_auc=0.7 + 0.1 * seed)
        config = "bagging:\n  size_range: [500, 1500]\n"
        (tmp_path / f"dllp_bag{mean_size}_seed{seed}" / "config_resolved.yaml").write_text(config)
    args = [sys.executable, str(REPORT), str(tmp_path), "--out", str(tmp_path / "table")]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert "| dataset | method | bag 500-1500 |" in printed
    assert "| adult | dllp | 0.750 ± 0.071 (n=2) |" in printed
    assert (tmp_path / "table.png").stat().st_size > 0


def test_feature_bags_share_one_column_per_column_pair_whatever_their_mean_size(tmp_path):
    for seed, mean_size in enumerate([178, 179]):
        write_run(tmp_path, "dllp", mean_size, seed, val_bag_loss=0.5, test_auc=0.8 + 0.1 * seed)
        folder = tmp_path / f"dllp_bag{mean_size}_seed{seed}"
        summary = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**summary, "bagging": "feature"}))
        (folder / "config_resolved.yaml").write_text("bagging:\n  columns: [education, occupation]\n")
    args = [
        sys.executable,
        str(REPORT),
        str(tmp_path),
        "--by",
        "bagging.columns",
        "--out",
        str(tmp_path / "t"),
    ]
    printed = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    assert "| dataset | method | bagging.columns | bag feature |" in printed
    assert "| adult | dllp | ['education', 'occupation'] | 0.850 ± 0.071 (n=2) |" in printed
    assert "no bag-size axis to plot" in printed and not (tmp_path / "t.png").exists()


def test_llp_report_runs_from_another_folder(tmp_path):
    # the console script of this environment's install (make install: pip install -e .); a non-editable
    # install's: tests/test_evaluate.py (slow)
    script = Path(sys.executable).parent / "llp-report"
    assert script.exists(), f"{script} is missing: pip install -e . installs the console scripts"
    write_run(tmp_path / "sweep", "dllp", 32, 0, val_bag_loss=0.5, test_auc=0.8)
    (tmp_path / "elsewhere").mkdir()
    args = [str(script), str(tmp_path / "sweep"), "--out", "table"]
    out = subprocess.run(args, cwd=tmp_path / "elsewhere", capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "| adult | dllp | 0.800 (n=1) |" in out.stdout
    assert (tmp_path / "elsewhere" / "table.png").stat().st_size > 0
