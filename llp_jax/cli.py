"""The command line (`llp-train` or `python scripts/train.py`): one run, or a sweep with -m.

    llp-train dataset=adult method=dllp bagging.bag_size=32
    llp-train -m method=dllp,easyllp bagging.bag_size=8,32,128 seed=0,1,2

The configs ship inside the package (llp_jax/configs), so this works from any folder.
"""

import json
import logging
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from llp_jax.config import register_configs
from llp_jax.experiment import run_experiment, use_compilation_cache
from llp_jax.writers import json_safe

register_configs()
log = logging.getLogger("llp_jax")


@hydra.main(version_base=None, config_path="configs", config_name="config")
def main(cfg: DictConfig) -> float:
    logging.getLogger("jax").setLevel(logging.WARNING)  # compilation chatter
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's warning about its own temporary folders
    hydra_config = HydraConfig.get()
    run_dir = hydra_config.runtime.output_dir
    if cfg.logger.group is None and hydra_config.mode == RunMode.MULTIRUN:  # a sweep's runs, one group
        cfg.logger.group = Path(hydra_config.sweep.dir).name
    log.info("config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    use_compilation_cache(cfg.compilation_cache_dir)
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
    # valid JSON (NaN and infinity as null), one line: metrics.json keeps the per-bag lists
    printed = {key: value for key, value in summary.items() if not key.endswith("_per_bag")}
    print(json.dumps(json_safe(printed)))
    return summary[cfg.optimized_metric]  # a validation criterion (checked in resolve), never a test metric


if __name__ == "__main__":
    main()
