"""The command line (`llp-train` or `python scripts/train.py`): one run, or a sweep with -m.

    llp-train dataset=adult method=dllp bagging.bag_size=32
    llp-train -m method=dllp,easyllp bagging.bag_size=8,32,128 seed=0,1,2

The configs ship inside the package (llp_jax/configs), so this works from any folder.

A user's error (a bad setting, file or folder, a diverging run) ends the command with its message alone
and exit status 1; HYDRA_FULL_ERROR=1 prints the traceback too, and a run that had started keeps it in its
failed.json. Errors of the code itself (anything else) keep their traceback.
"""

import json
import logging
from pathlib import Path

import hydra
import jax
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from llp_jax.config import register_configs
from llp_jax.experiment import join_processes, run_experiment, use_compilation_cache
from llp_jax.writers import check_writable, json_safe

register_configs()
log = logging.getLogger("llp_jax")

# What a user's settings, data or folders can cause: the checks raise ValueError (a value), OSError (a file
# or folder) and FloatingPointError (training.loop.TrainingDiverged); all name the value and the fix.
USER_ERRORS = (ValueError, OSError, FloatingPointError)


class UserError(CompactHydraException):
    """A user's error, which Hydra prints as its message alone (its cause keeps the traceback)."""


class RunFolderCheck(Callback):
    """Refuses, before Hydra configures the run's log file in it, a run or sweep folder that cannot be
    written (Hydra would fail with "Unable to configure handler 'file'", naming no folder)."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.run.dir, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self._check(config.hydra.sweep.dir, "hydra.sweep.dir")

    @staticmethod
    def _check(folder: str, setting: str) -> None:
        try:
            check_writable(Path(folder), setting)
        except OSError as error:  # SystemExit: Hydra turns a callback's exceptions into warnings
            raise SystemExit(f"{type(error).__name__}: {error}") from error


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
    join_processes()  # several SLURM tasks or a named coordinator: one mesh over all their devices
    first_process_dir = None
    if jax.process_index() > 0:  # every process runs the same program; the first writes the run folder
        run_dir, first_process_dir = str(Path(run_dir) / f"process{jax.process_index()}"), run_dir
    try:
        summary = run_experiment(cfg, run_dir, first_process_dir)
    except USER_ERRORS as error:
        raise UserError(f"{type(error).__name__}: {error}") from error
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
