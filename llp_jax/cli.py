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
import re
import sys
from pathlib import Path

import hydra
import jax
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from llp_jax.config import current_spelling, register_configs
from llp_jax.experiment import join_processes, run_experiment, use_compilation_cache
from llp_jax.preemption import PREEMPTED_EXIT_STATUS, Preempted
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


# wandb refuses a group name longer than this
WANDB_GROUP_LENGTH = 128


def sweep_group(sweep_dir: str, overrides: list[str], excluded: list[str] = ()) -> str:
    """The wandb group of a sweep's runs, the same for every job of the sweep: the sweep folder's name
    (hydra.sweep.dir=multirun/bags: "bags"); under a folder named by a bare time, as the default
    multirun/<date>/<time> is, its date and time and the keys the command set (overrides: a job's
    hydra.overrides.task, less `excluded`), e.g. "2026-11-25_12-00-00-123456 method,seed"."""
    folder = Path(sweep_dir)
    if not re.fullmatch(r"[\d_:.-]+", folder.name):
        return folder.name[:WANDB_GROUP_LENGTH]
    keys = sorted({override.split("=", 1)[0].lstrip("+~") for override in overrides} - set(excluded))
    return f"{folder.parent.name}_{folder.name} {','.join(keys)}".strip()[:WANDB_GROUP_LENGTH]


# What each validation criterion is, by train.select_on's value; the number is in the summary under key.
CRITERIA = {
    "val_count_nll": ("val_count_nll", "-log P(count) per validation bag"),
    "val_bags": ("val_bag_loss", "cross-entropy of each validation bag's proportion"),
    "val_instances": ("-val_instance_auc", "the AUC on the validation instances' labels, negated"),
}


# The test metrics a summary line shows, binary runs' and K-class runs' (llp_jax.train.metrics).
TEST_METRIC_NAMES = {
    "test_auc": "test AUC",
    "test_macro_auc": "test macro AUC",
    "test_accuracy": "accuracy",
    "test_macro_f1": "macro-F1",
    "test_log_loss": "log loss",
}


def _test_metrics_text(summary: dict) -> str:
    """ "test AUC 0.8123, accuracy 0.9000, log loss 0.3000" of the test metrics the summary holds."""
    return ", ".join(
        f"{name} {summary[key]:.4f}" for key, name in TEST_METRIC_NAMES.items() if key in summary
    )


def summary_text(summary: dict, run_dir: Path) -> str:
    """The end of a run, for a reader new to it, in three or four lines: what ran and where its results
    are; the test metrics and what they are computed on; the validation criterion (selection_loss, the one
    train.select_on names) and what it means; and, where the run logged oracle/* diagnostics, what those
    are."""
    key, meaning = CRITERIA[summary["selection"]]
    lines = [
        f"{summary['method']} on {summary['dataset']}, bag size {summary['bag_size']}, seed "
        f"{summary['seed']}: finished in {summary['wall_time_s']:.1f} s -> {run_dir / 'metrics.json'}",
        f"  {_test_metrics_text(summary)} (instance labels of the test split, used for nothing else)",
        f"  selection_loss {summary['selection_loss']:.4f} = {key} ({meaning}, of the returned model): what "
        "model selection and a sweeper minimise; lower is better",
    ]
    records = run_dir / "metrics.jsonl"
    if records.exists() and '"oracle/' in records.read_text(encoding="utf-8"):
        lines.append(
            "  oracle/* (metrics.jsonl): diagnostics from true labels, never used to train or choose"
        )
    return "\n".join(lines)


@hydra.main(version_base=None, config_path="configs", config_name="config")
def train(cfg: DictConfig) -> float:
    logging.getLogger("jax").setLevel(logging.WARNING)  # compilation chatter
    logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's warning about its own temporary folders
    hydra_config = HydraConfig.get()
    run_dir = hydra_config.runtime.output_dir
    if cfg.logger.group is None and hydra_config.mode == RunMode.MULTIRUN:  # a sweep's runs, one group
        excluded = hydra_config.job.config.override_dirname.exclude_keys
        cfg.logger.group = sweep_group(hydra_config.sweep.dir, list(hydra_config.overrides.task), excluded)
    # the config is saved in the run folder (config_resolved.yaml); printed only on request
    level = logging.INFO if cfg.get("print_config", False) else logging.DEBUG
    log.log(level, "config:\n%s", OmegaConf.to_yaml(cfg, resolve=True))
    use_compilation_cache(cfg.compilation_cache_dir)
    join_processes()  # several SLURM tasks or a named coordinator: one mesh over all their devices
    first_process_dir = None
    if jax.process_index() > 0:  # every process runs the same program; the first writes the run folder
        run_dir, first_process_dir = str(Path(run_dir) / f"process{jax.process_index()}"), run_dir
    try:
        summary = run_experiment(cfg, run_dir, first_process_dir)
    except USER_ERRORS as error:
        raise UserError(f"{type(error).__name__}: {error}") from error
    except Preempted as error:  # SIGTERM: recorded in failed.json (status preempted); 143, as SIGTERM's
        log.warning("preempted: %s (run folder %s)", error, run_dir)
        sys.exit(PREEMPTED_EXIT_STATUS)
    log.info(summary_text(summary, Path(run_dir)))
    # valid JSON (NaN and infinity as null), one line: metrics.json keeps the per-bag lists
    printed = {key: value for key, value in summary.items() if not key.endswith("_per_bag")}
    print(json.dumps(json_safe(printed)))
    # a validation criterion of the returned model, as metrics.json holds it (checked in resolve): never a
    # test metric
    return summary[cfg.optimized_metric]


def main() -> None:
    """`llp-train`: the Hydra application `train`, which also takes `+experiment=<name>`, the older
    spelling of `experiment=<name>` (llp_jax.config.current_spelling)."""
    sys.argv[1:] = current_spelling(sys.argv[1:])
    train()


if __name__ == "__main__":
    main()
