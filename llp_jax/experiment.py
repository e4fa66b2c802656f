"""One experiment from a composed config: data -> bags -> method -> test metrics, written to a run folder."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from llp_jax.checkpoint import save_encoder
from llp_jax.data import load_dataset, make_bags
from llp_jax.data.dataset import Dataset
from llp_jax.methods import METHODS
from llp_jax.train.loop import predict
from llp_jax.train.metrics import classification_metrics
from llp_jax.writers import MetricsWriter

# Seeds of the independent random streams of one run, offset from the config's seed.
TRAIN_BAGS_STREAM, VAL_BAGS_STREAM = 1_000, 2_000


def build_bags(data: Dataset, bagging: DictConfig, seed: int):
    """(train_bags, val_bags) from the bagging config; validation bags are built like training bags."""
    options = dict(
        kind=bagging.kind,
        bag_size=bagging.bag_size,
        drop_last=bagging.drop_last,
        columns=tuple(bagging.columns),
        min_size=bagging.min_size,
        max_size=bagging.max_size,
    )
    train = make_bags(
        data.train, seed=seed + TRAIN_BAGS_STREAM, counts=data.given_counts.get("train"), **options
    )
    val = make_bags(data.val, seed=seed + VAL_BAGS_STREAM, counts=data.given_counts.get("val"), **options)
    return train, val


def run_experiment(cfg: DictConfig, run_dir: str | Path) -> dict:
    """Run the method of `cfg` and return the final summary, also written to run_dir/metrics.json."""
    start = time.perf_counter()
    if cfg.method.name not in METHODS:
        raise ValueError(f"method={cfg.method.name!r} is not known; choose one of {sorted(METHODS)}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    dataset_options = {
        k: v for k, v in OmegaConf.to_container(cfg.dataset).items() if k not in ("name", "data_dir")
    }
    data = load_dataset(cfg.dataset.name, data_dir=cfg.dataset.data_dir, seed=cfg.seed, **dataset_options)
    train_bags, val_bags = build_bags(data, cfg.bagging, cfg.seed)
    wandb_settings = None
    if cfg.logger.wandb:
        wandb_settings = {"project": cfg.logger.project, "entity": cfg.logger.entity, "mode": cfg.logger.mode}
    writer = MetricsWriter(run_dir, wandb_settings, OmegaConf.to_container(cfg, resolve=True))
    result = METHODS[cfg.method.name](data, train_bags, val_bags, cfg, cfg.seed, writer.log)
    save_encoder(result.model, run_dir)
    test_logits, _ = predict(result.model, data.test.x, cfg.train.eval_batch_size)
    summary = {
        "method": cfg.method.name,
        "dataset": cfg.dataset.name,
        "bagging": cfg.bagging.kind,
        "bag_size": cfg.bagging.bag_size
        if cfg.bagging.kind == "random"
        else round(np.mean(train_bags.sizes)),
        "mean_bag_size": float(np.mean(train_bags.sizes)),
        "seed": cfg.seed,
        **classification_metrics(data.test.y, test_logits, "test"),
        "n_train": int(train_bags.sizes.sum()),
        "feature_shape": list(data.feature_shape),
        "n_bags": train_bags.n_bags,
        "n_val_bags": val_bags.n_bags,
        "best_epoch": result.best_epoch,
        "val_bag_loss": result.history[result.best_epoch - 1]["val_bag_loss"],
        "epochs_run": len(result.history),
        "selection": result.selection,
        "wall_time_s": time.perf_counter() - start,
    }
    writer.finish(summary)
    return summary
