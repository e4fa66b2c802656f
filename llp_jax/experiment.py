"""One experiment from a composed config: data -> bags -> method -> test metrics, written to a run folder."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from llp_jax.checkpoint import save_encoder
from llp_jax.config import RunSettings, resolve
from llp_jax.data import load_dataset, make_bags
from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.methods import METHODS
from llp_jax.provenance import provenance
from llp_jax.streams import stream_key, stream_seed
from llp_jax.train.loop import predict
from llp_jax.train.metrics import classification_metrics
from llp_jax.writers import MetricsWriter


def use_compilation_cache(folder: str | None) -> None:
    """Turn on JAX's persistent compilation cache in `folder` (~ expanded; None: leave it off), for every
    compilation however short: a run compiles about a hundred small programs, which a fresh process
    would otherwise compile again."""
    if folder is None:
        return
    jax.config.update("jax_compilation_cache_dir", str(Path(folder).expanduser()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def build_bags(data: Dataset, run: RunSettings) -> tuple[Bags, Bags]:
    """(train_bags, val_bags) by run.bagging, from the streams "train_bags" and "val_bags" of the seed;
    validation bags are built like training bags."""
    train = make_bags(
        data.train, run.bagging, stream_seed(run.seed, "train_bags"), data.given_counts.get("train")
    )
    val = make_bags(data.val, run.bagging, stream_seed(run.seed, "val_bags"), data.given_counts.get("val"))
    return train, val


def run_experiment(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run the method of `cfg` and return the final summary, also written to run_dir/metrics.json.

    The config is resolved and checked (llp_jax.config.resolve) before anything is written or loaded;
    run_dir must not hold another run (llp_jax.writers.claim_run_dir). A run that fails leaves
    run_dir/failed.json with its traceback, and the error is raised again."""
    start = time.perf_counter()
    run = resolve(cfg)
    run_dir = Path(run_dir)
    wandb_settings = None
    if run.logger.wandb:
        logger = run.logger
        wandb_settings = {
            "project": logger.project,
            "entity": logger.entity,
            "mode": logger.mode,
            "name": logger.name or run_dir.name,
            "group": logger.group,
            "tags": list(logger.tags),
            "job_type": logger.job_type,
            "notes": logger.notes,
        }
    writer = MetricsWriter(
        run_dir, wandb_settings, OmegaConf.to_container(cfg, resolve=True), run.logger.log_every
    )
    try:
        summary = _run(cfg, run, run_dir, writer.log, start)
    except BaseException as error:
        writer.fail(error)
        raise
    writer.finish(summary)
    return summary


def _run(cfg: DictConfig, run: RunSettings, run_dir: Path, log, start: float) -> dict:
    """The run proper: data, bags, the method, the saved encoder and the test metrics (the summary)."""
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    data = load_dataset(
        run.dataset.name,
        data_dir=run.dataset.data_dir,
        seed=stream_seed(run.seed, "split"),
        **run.dataset.options,
    )
    train_bags, val_bags = build_bags(data, run)
    key = stream_key(jax.random.key(run.seed), "method")
    result = METHODS[run.method_name].fit(data, train_bags, val_bags, run.method, key, log)
    save_encoder(result.model, run_dir)
    test_logits, _ = predict(result.model, data.test.x, run.method.train.eval_batch_size)
    best = result.history[result.best_epoch - 1]
    return {
        "status": "finished",
        "method": run.method_name,
        "dataset": run.dataset.name,
        "bagging": str(run.bagging.kind),
        "bag_size": run.bagging.bag_size
        if run.bagging.kind == "random"
        else round(np.mean(train_bags.sizes)),
        "mean_bag_size": float(np.mean(train_bags.sizes)),
        "seed": run.seed,
        **classification_metrics(data.test.y, test_logits, "test"),
        "n_train": int(train_bags.sizes.sum()),
        "feature_shape": list(data.feature_shape),
        "n_bags": train_bags.n_bags,
        "n_val_bags": val_bags.n_bags,
        "best_epoch": result.best_epoch,
        "val_bag_loss": best["val_bag_loss"],
        "selection_loss": best["selection_loss"],
        "epochs_run": len(result.history),
        "selection": str(result.selection),
        "wall_time_s": time.perf_counter() - start,
        "provenance": provenance(),
    }
