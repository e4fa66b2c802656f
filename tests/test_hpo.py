"""Tests of llp_jax.hpo: the Optuna sampler of a search that a second start continues (the whole search,
killed and started again, is in tests/test_cluster.py)."""

import pytest

from llp_jax.hpo import tpe_sampler, trials_so_far

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"x": optuna.distributions.UniformDistribution(0.0, 1.0)}


def first_draws(sampler, n=3) -> list[float]:
    """The settings a fresh in-memory study asks `sampler` for first."""
    study = optuna.create_study(sampler=sampler)
    return [study.ask(SPACE).params["x"] for _ in range(n)]


def test_a_fresh_search_samples_as_tpe_with_its_seed(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    expected = first_draws(optuna.samplers.TPESampler(seed=3))
    assert first_draws(tpe_sampler(seed=3)) == expected  # no storage
    assert first_draws(tpe_sampler(seed=3, storage=storage, study_name="new")) == expected


def test_a_continued_search_moves_the_seed_on_by_the_trials_so_far(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="s")
    study.tell(study.ask(SPACE), 1.0)
    study.ask(SPACE)  # a trial cut off by a kill: RUNNING for ever, counted as well
    assert trials_so_far(storage, "s") == 2 and trials_so_far(storage, "other") == 0
    assert trials_so_far(None, "s") == 0 and trials_so_far(storage, None) == 0
    continued = first_draws(tpe_sampler(seed=3, storage=storage, study_name="s"))
    assert continued == first_draws(optuna.samplers.TPESampler(seed=5))
    assert continued != first_draws(optuna.samplers.TPESampler(seed=3))


def test_the_optuna_search_config_uses_the_resumable_sampler(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from llp_jax.config import CONFIG_DIR, register_configs

    register_configs()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    overrides = [
        "hparams_search=llp_bp_optuna",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=s",
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    sampler = cfg.hydra.sweeper.sampler
    assert sampler._target_ == "llp_jax.hpo.tpe_sampler" and sampler.seed == 0
    assert (sampler.storage, sampler.study_name) == (storage, "s")
    assert isinstance(instantiate(sampler), optuna.samplers.TPESampler)
