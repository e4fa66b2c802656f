"""`llp-eval`: the encoder a run saved, scored on its data; the metrics as JSON.

    llp-eval outputs/2026-11-25/12-00-00-000000_llp_bp_adult_seed0                 # its test split
    llp-eval <run folder> --split val --out val_metrics.json
    llp-eval <run folder> dataset.data_dir=/data/llp                              # the data moved

Reads the run's config_resolved.yaml, loads its data as the run did (the same split of the same seed;
`key=value` arguments change settings of that config first, e.g. another dataset.data_dir, or another
dataset.test_path for the files dataset) and its encoder (llp_jax.checkpoint.load_encoder), and prints
one JSON object: the run folder, the split and its rows, and <split>_auc, <split>_accuracy and
<split>_log_loss (K classes: _accuracy, _macro_f1, _macro_auc, _log_loss and _confusion), which on the test
split equal the run's metrics.json. Nothing is written into the
run folder.

A folder without a saved encoder (a failed or unfinished run, a sweep folder, any other folder) ends the
command with a message that says what the folder holds and exit status 1; so does a bad setting or data.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from llp_jax.checkpoint import CHECKPOINT_DIR, METADATA_FILE, load_encoder
from llp_jax.config import resolve
from llp_jax.data.dataset import SPLITS
from llp_jax.experiment import load_data
from llp_jax.train.loop import predict
from llp_jax.train.metrics import classification_metrics, confusion_record
from llp_jax.writers import json_safe

CONFIG_FILE = "config_resolved.yaml"


def check_run_folder(run_dir: Path) -> None:
    """FileNotFoundError naming what `run_dir` holds when it is not the folder of a run with a saved
    encoder (its config_resolved.yaml, encoder.json and encoder/)."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such folder; give the folder of a finished run")
    if not (run_dir / CONFIG_FILE).exists():
        runs = sorted(path.parent for path in run_dir.glob(f"*/{METADATA_FILE}"))
        hint = f"it holds runs: give one of them, e.g. {runs[0]}" if runs else "give the folder of a run"
        raise FileNotFoundError(f"{run_dir} is not the folder of a run (no {CONFIG_FILE}); {hint}")
    missing = [name for name in (METADATA_FILE, CHECKPOINT_DIR) if not (run_dir / name).exists()]
    if not missing:
        return
    if (run_dir / "failed.json").exists():
        record = json.loads((run_dir / "failed.json").read_text())
        error = record.get("error", "see its failed.json")
        state = f"the run failed ({error}) before it saved its encoder"
        if record.get("status") == "preempted":  # SIGTERM (llp_jax.preemption): resumable
            state = f"the run was preempted ({error}) before it saved its encoder"
    elif not (run_dir / "metrics.json").exists():
        state = "the run is unfinished (no metrics.json): it saves its encoder when it ends; resume it with "
        state += "train.resume=true"
    else:
        state = "the run finished but its encoder is gone"
    raise FileNotFoundError(f"{run_dir} holds no saved encoder ({', '.join(missing)} missing): {state}")


def evaluate(
    run_dir: str | Path, split: str = "test", overrides: list[str] = (), batch_size: int = 8192
) -> dict:
    """The metrics of the encoder saved in run_dir on `split` (train, val or test) of the run's data,
    loaded as the run loaded it after `overrides` (key=value) change its config: {run, split, n,
    positive_rate, <split>_auc, <split>_accuracy, <split>_log_loss}; for a K-class encoder class_rates and
    <split>_accuracy, _macro_f1, _macro_auc and _log_loss (llp_jax.train.metrics.multiclass_metrics) and
    <split>_confusion, the K x K confusion matrix (rows: the true classes)."""
    run_dir = Path(run_dir)
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    check_run_folder(run_dir)
    cfg = OmegaConf.load(run_dir / CONFIG_FILE)
    for override in overrides:
        key, equals, _ = override.partition("=")
        if not equals or OmegaConf.select(cfg, key, default=KeyError) is KeyError:
            raise ValueError(
                f"{override!r}: expected key=value with a key of {run_dir / CONFIG_FILE}, e.g. "
                "dataset.data_dir=/data"
            )
        OmegaConf.update(cfg, key, OmegaConf.select(OmegaConf.from_dotlist([override]), key), merge=False)
    run = resolve(cfg)
    data = getattr(load_data(run), split)
    if data.y is None:
        raise ValueError(f"the {split} split of {run.dataset.name} has no instance labels; use --split test")
    encoder = load_encoder(run_dir)
    shape = tuple(json.loads((run_dir / METADATA_FILE).read_text())["feature_shape"])
    if tuple(data.x.shape[1:]) != shape:
        raise ValueError(
            f"the {split} split's features have shape {data.x.shape[1:]} but the encoder of {run_dir} takes "
            f"{shape}; give the data the run was trained on"
        )
    logits, _ = predict(encoder, data.x, batch_size)
    return {
        "run": str(run_dir.resolve()),
        "dataset": run.dataset.name,
        "seed": run.seed,
        "split": split,
        "n": int(len(data.y)),
        # K classes: the rate of each class
        **(
            {"positive_rate": float(np.mean(data.y))}
            if logits.ndim == 1
            else {"class_rates": _rates(data.y, logits)}
        ),
        **classification_metrics(data.y, logits, split),
        **confusion_record(data.y, logits, split),
    }


def _rates(labels: np.ndarray, logits: np.ndarray) -> list[float]:
    """The share of each of the K classes (logits float[n, K]) among labels int[n]."""
    return (np.bincount(labels, minlength=logits.shape[1]) / len(labels)).tolist()


def main(argv: list[str] | None = None) -> None:
    """`llp-eval RUN_DIR [key=value ...] [--split S] [--out FILE]` (argv: the arguments; None: the
    command line's)."""
    parser = argparse.ArgumentParser(
        prog="llp-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path, help="the folder of a finished run (with encoder/)")
    parser.add_argument("overrides", nargs="*", help="key=value settings of the run's config to change")
    parser.add_argument("--split", default="test", choices=SPLITS, help="the split to score (default test)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--batch-size", type=int, default=8192, help="rows per forward pass")
    args = parser.parse_intermixed_args(argv)
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's warnings about its own folders
    try:
        metrics = evaluate(args.run_dir, args.split, args.overrides, args.batch_size)
    except (ValueError, OSError) as error:  # the user's folder, settings or data: the message alone
        raise SystemExit(f"llp-eval: {type(error).__name__}: {error}") from error
    text = json.dumps(json_safe(metrics), indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
