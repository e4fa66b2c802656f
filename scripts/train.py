"""Command-line entry point: `python scripts/train.py dataset=adult method=dllp bagging.bag_size=32`.

Sweeps: `python scripts/train.py -m method=dllp,easyllp bagging.bag_size=8,32,128 seed=0,1,2`.
"""

import json
import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from llp_jax.config import register_configs
from llp_jax.experiment import run_experiment

register_configs()
log = logging.getLogger("llp_jax")


@hydra.main(version_base=None, config_path="../configs", config_name="config")
def main(cfg: DictConfig) -> float:
    for noisy in ("jax", "absl"):  # compile and checkpoint chatter
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run_dir = HydraConfig.get().runtime.output_dir
    summary = run_experiment(cfg, run_dir)
    log.info(
        "%s on %s, bag size %s, seed %s: test AUC %.4f, accuracy %.4f, log loss %.4f (%.1f s) -> %s",
        summary["method"],
        summary["dataset"],
        summary["bag_size"],
        summary["seed"],
        summary["test_auc"],
        summary["test_accuracy"],
        summary["test_log_loss"],
        summary["wall_time_s"],
        run_dir,
    )
    print(json.dumps(summary))
    return summary["test_auc"]


if __name__ == "__main__":
    main()
