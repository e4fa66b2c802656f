"""The application layer: schemas derived from the subsystems' settings, every registered extension
composing from the command line, choices checked at composition, and a core free of Hydra."""

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, open_dict

from llp_jax.bp import BAG_FACTORS, BPSettings
from llp_jax.config import (
    CONFIG_DIR,
    DATASET_SCHEMAS,
    folder_name,
    job_name,
    register_configs,
    resolve,
    schema_of,
)
from llp_jax.data import LOADERS
from llp_jax.graph import GraphSettings
from llp_jax.methods import METHODS
from llp_jax.methods.llp_bp import LLPBPSettings, ScheduleSettings
from llp_jax.models import MODELS
from llp_jax.train.settings import TrainSettings


def schema_defaults(schema):
    """field -> default of a schema dataclass (its default_factory called)."""
    instance = schema()
    return {name: getattr(instance, name) for name in schema.__dataclass_fields__}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_dataset_loader_arguments_match_the_config_schema(name):
    assert name in DATASET_SCHEMAS, f"dataset {name!r} has a loader but no config schema"
    parameters = inspect.signature(LOADERS[name]).parameters
    loader = {key: p.default for key, p in parameters.items() if key != "seed"}
    schema = {key: value for key, value in schema_defaults(DATASET_SCHEMAS[name]).items() if key != "name"}
    assert sorted(loader) == sorted(schema), f"{name}: loader {sorted(loader)} vs schema {sorted(schema)}"
    for key, default in schema.items():
        expected = loader[key]
        if default == MISSING:  # a required field: the loader fails clearly on None
            assert expected is None, (name, key)
        else:
            assert default == (list(expected) if isinstance(expected, tuple) else expected), (name, key)


def test_derived_schemas_carry_the_settings_defaults():
    for settings in (TrainSettings, BPSettings, GraphSettings, ScheduleSettings):
        defaults = schema_defaults(schema_of(settings))
        expected = {key: list(v) if isinstance(v, tuple) else v for key, v in settings()._asdict().items()}
        assert defaults == expected, settings.__name__


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_registered_method_composes_and_resolves(method, compose_config):
    run = resolve(compose_config(f"method={method}"))
    assert run.method_name == method and type(run.method) is METHODS[method].settings


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_registered_model_composes_and_resolves(model, compose_config):
    run = resolve(compose_config(f"model={model}"))
    assert type(run.method.model) is MODELS[model].settings


@pytest.mark.parametrize("bag_factor", sorted(BAG_FACTORS))
def test_every_registered_bag_factor_composes_from_the_command_line(bag_factor, compose_config):
    run = resolve(compose_config("method=llp_bp", f"bp.bag_factor={bag_factor}"))
    assert run.method.bp.bag_factor == bag_factor


def test_llp_bp_groups_belong_to_llp_bp_only(compose_config):
    dllp = compose_config("method=dllp")
    assert not {"graph", "bp", "schedule"} & set(dllp), "DLLP runs should not carry LLP-BP's groups"
    with pytest.raises(ConfigCompositionException, match="Could not override 'bp'"):
        compose_config("method=dllp", "bp=clique")
    run = resolve(compose_config("method=llp_bp", "bp=clique", "bp.lambda_s=3", "graph.k=7"))
    assert isinstance(run.method, LLPBPSettings)
    assert run.method.bp.bag_factor == "clique" and run.method.bp.lambda_s == 3.0 and run.method.graph.k == 7
    graph = resolve(
        compose_config("method=llp_bp", "graph.backend=faiss_hnsw", "graph.hnsw_ef_search=32")
    ).method.graph
    assert (graph.backend, graph.hnsw_ef_search, graph.max_block_bytes) == ("faiss_hnsw", 32, None)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("bp.bag_factor=cliq", "cliq"),
        ("graph.metric=manhattan", "manhattan"),
        ("graph.kernel=laplace", "laplace"),
        ("graph.backend=annoy", "annoy"),
        ("schedule.warm_start=mean", "mean"),
        ("train.select_on=val_auc", "val_auc"),
        ("bagging.kind=bagged", "bagged"),
    ],
)
def test_a_mistyped_choice_fails_when_the_config_is_composed(override, words, compose_config):
    with pytest.raises(ConfigCompositionException) as failure:
        compose_config("method=llp_bp", override)
    assert words in str(failure.value.__cause__ or failure.value)


def test_the_core_never_imports_hydra_or_the_application_layer():
    core = "llp_jax.data, llp_jax.graph, llp_jax.bp, llp_jax.models, llp_jax.train.loop, llp_jax.methods"
    code = f"import sys, {core}; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('hydra', 'omegaconf') or m in ('llp_jax.config', 'llp_jax.experiment')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_size_range_and_positive_rate_compose_from_the_command_line(compose_config):
    run = resolve(
        compose_config("dataset=adult", "bagging.size_range=[500,1500]", "dataset.positive_rate=0.02")
    )
    assert run.bagging.size_range == (500, 1500)
    assert run.dataset.options["positive_rate"] == 0.02
    assert resolve(compose_config("dataset=adult")).bagging.size_range is None


@pytest.mark.parametrize("spelling", ["experiment=paper_bank", "+experiment=paper_bank"])
def test_an_experiment_is_chosen_as_a_group_and_its_values_win(spelling, compose_config):
    # experiment= as in lightning-hydra-template (the main config lists `experiment: null`); +experiment=,
    # the older spelling, still works
    cfg = compose_config(spelling)
    assert cfg.bagging.bag_size == 8 and cfg.bp.bag_factor == "clique" and cfg.schedule.rounds == 2
    assert cfg.dataset.standardize is False and cfg.train.select_on == "val_instances"
    assert compose_config(spelling, "bagging.bag_size=16").bagging.bag_size == 16  # the command line wins
    assert compose_config().bagging.bag_size == 512


def test_tags_are_a_top_level_list_of_words(compose_config):
    assert resolve(compose_config("tags=[baseline,bank]")).tags == ("baseline", "bank")
    assert resolve(compose_config()).tags == ()
    with pytest.raises(ValueError, match=r"tags='baseline' must be a list of words, e.g. tags=\[baseline"):
        resolve(compose_config("tags=baseline"))


def test_a_folder_name_is_one_name_that_cannot_leave_its_parent():
    assert folder_name("dataset.data_dir=x/../../../escaped") == "dataset.data_dir=x_.._.._.._escaped"
    assert folder_name("data_dir=C:\\data\\..\\up") == "data_dir=C:_data_.._up"
    assert [folder_name(name) for name in ("..", ".", "")] == ["__", "_", ""]
    assert folder_name("model.widths=[16,8]") == "model.widths=(16,8)"  # orbax globs checkpoint paths
    assert len(folder_name("a/" * 300)) == 200
    # the cluster jobs' name (squeue), no folder: one word of letters, digits, . _ -
    assert [job_name(sweep) for sweep in ("S/../../x", "a/..")] == ["x", "llp_a_.."]


def test_sweep_and_run_folders_stay_under_their_parent_whatever_the_overrides(tmp_path):
    """`-m 'dataset.data_dir=x/../../../escaped' hydra.sweep.dir=S` once wrote the job's folder outside S."""
    sweep = tmp_path / "sweep"
    overrides = ["debug=fast", "dataset.data_dir=x/../../../escaped", "method.name=../../../m"]
    register_configs()  # the folder_name resolver
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=[*overrides, f"hydra.sweep.dir={sweep}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job.num = 0  # what the launcher sets for the sweep's first job
    job = sweep / cfg.hydra.sweep.subdir
    assert len(Path(cfg.hydra.sweep.subdir).parts) == 1 and job.resolve().parent == sweep.resolve()
    assert cfg.hydra.sweep.subdir.startswith("0_dataset.data_dir=x_.._.._.._escaped,")
    run = Path(
        cfg.hydra.run.dir
    )  # a single run's folder: outputs/<date>/<time>_<method>_<dataset>_seed<seed>
    assert len(run.parts) == 3 and run.name.endswith("_.._.._.._m_synthetic_seed0")
    assert (tmp_path / run).resolve().parents[2] == tmp_path.resolve()
