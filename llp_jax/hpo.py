"""Optuna searches (hparams_search=...) that a second start continues: the sampler of
configs/hparams_search/llp_bp_optuna.yaml (`hydra/sweeper/sampler: resumable_tpe`).

hydra-optuna-sweeper opens its study with load_if_exists=True, so a search started again with the same
hydra.sweeper.storage and study_name adds its trials to the study already there. Its sampler, though, is
made afresh with the same seed and would draw the first trials' settings again (TPE's first
n_startup_trials are random draws from that seed), running the same runs once more, into the same folders
of a fixed sweep dir. `tpe_sampler` moves the seed on by the trials the study already holds: a fresh
search samples as TPESampler(seed) does, a continued one samples new settings, reproducibly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("llp_jax")


def trials_so_far(storage: Any, study_name: str | None) -> int:
    """The trials (finished, failed or cut off) of the study `study_name` in `storage` (an Optuna storage
    URL such as sqlite:///study.db); 0 without storage or name, or when the study does not exist yet."""
    if storage is None or study_name is None:
        return 0
    import optuna

    summaries = optuna.study.get_all_study_summaries(storage=storage)
    return next((summary.n_trials for summary in summaries if summary.study_name == study_name), 0)


def tpe_sampler(seed: int | None = None, storage: Any = None, study_name: str | None = None, **options: Any):
    """optuna.samplers.TPESampler(seed=seed + the study's trials so far, **options) (seed None: unseeded)."""
    import optuna

    done = trials_so_far(storage, study_name)
    if done:
        logger.info("study %s in %s holds %d trials: the search continues it", study_name, storage, done)
    return optuna.samplers.TPESampler(seed=None if seed is None else seed + done, **options)


def register_sampler() -> None:
    """Store the sampler option `resumable_tpe` in Hydra's group hydra/sweeper/sampler: the plugin's
    TPESamplerConfig (every TPESampler option) with `tpe_sampler` as its target and the sweeper's storage
    and study_name. Nothing without hydra-optuna-sweeper (pip install -e ".[hpo]")."""
    try:
        from hydra_plugins.hydra_optuna_sweeper.config import TPESamplerConfig
    except ImportError:
        return
    from hydra.core.config_store import ConfigStore

    @dataclass
    class ResumableTPESamplerConfig(TPESamplerConfig):
        _target_: str = "llp_jax.hpo.tpe_sampler"
        storage: Any = "${hydra.sweeper.storage}"
        study_name: Any = "${hydra.sweeper.study_name}"

    ConfigStore.instance().store(
        group="hydra/sweeper/sampler",
        name="resumable_tpe",
        node=ResumableTPESamplerConfig,
        provider="llp_jax",
    )
