"""The application layer's configuration: Hydra schemas derived from the settings types the subsystems
own, and the one place a composed config becomes typed, checked settings.

    register_configs()            # every schema into Hydra's ConfigStore (llp_jax/configs picks them)
    cfg = compose("dataset=adult", "method=llp_bp")   # the configs as the command line composes them
    run = resolve(cfg)            # RunSettings: typed, checked before any data is loaded

Schemas are derived (`schema_of`) from the subsystems' settings types, so that each default lives in
one place: BaggingSettings (data/bags.py), MLPSettings and CNNSettings (models/), TrainSettings
(train/settings.py), and each registered method's settings (methods/): the fields a method adds to
FitSettings are config groups of their own (llp_bp: graph, bp, schedule), composed only by that method's
yaml. Choice fields are Enums, so a mistyped choice (`bp.bag_factor=cliq`) fails when the config is
composed. Dataset schemas mirror their loaders' keyword arguments (a test holds them equal).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, NamedTuple

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from llp_jax.data import LOADERS, BaggingSettings, check_bagging
from llp_jax.hpo import register_sampler
from llp_jax.methods import METHODS, FitSettings
from llp_jax.models import MODELS
from llp_jax.sharding import check_shard
from llp_jax.train.settings import TrainSettings
from llp_jax.writers import check_log_every

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# ----------------------------------------------------------------------------------------------------
# Datasets: the loaders' keyword arguments (less data_dir and seed), as config fields.


@dataclass
class DatasetConfig:
    name: str = MISSING
    data_dir: str | None = None


@dataclass
class SyntheticConfig(DatasetConfig):
    name: str = "synthetic"
    n: int = 20_000
    dim: int = 16
    positive_rate: float = 0.3
    n_clusters: int = 32
    cluster_std: float = 1.0
    n_classes: int = 2  # > 2: the K-class generator (positive_rate then ignored)


@dataclass
class BankMarketingConfig(DatasetConfig):
    name: str = "bank_marketing"
    standardize: bool = True
    positive_rate: float | None = None


@dataclass
class AdultConfig(DatasetConfig):
    name: str = "adult"
    val_fraction: float = 0.1
    positive_rate: float | None = None


@dataclass
class FashionMnistConfig(DatasetConfig):
    name: str = "fashion_mnist"
    positive_classes: list[int] = field(default_factory=lambda: [0, 2, 4, 6])
    val_fraction: float = 0.1
    positive_rate: float | None = None
    classes: str = "binary"  # or "all": the 10-class task


@dataclass
class FilesConfig(DatasetConfig):
    name: str = "files"
    train_path: str = MISSING
    bags_path: str = MISSING
    test_path: str = MISSING
    val_path: str | None = None
    val_bags_path: str | None = None
    bag_id_column: str = "bag_id"
    count_column: str | None = "count"
    proportion_column: str | None = None
    count_columns: list[str] | None = None  # K-class, wide: one count column per class, in class order
    class_column: str | None = None  # K-class, long: rows (bag id, class, count_column)
    proportion_columns: list[str] | None = None  # K-class, wide: one proportion column per class
    label_column: str = "label"
    feature_columns: list[str] | None = None
    categorical_columns: list[str] = field(default_factory=list)
    val_fraction: float = 0.1


DATASET_SCHEMAS = {
    "synthetic": SyntheticConfig,
    "bank_marketing": BankMarketingConfig,
    "adult": AdultConfig,
    "fashion_mnist": FashionMnistConfig,
    "files": FilesConfig,
}


@dataclass
class LoggerConfig:
    """metrics.jsonl and metrics.json are always written; wandb is optional and offline by default.
    name: the wandb run's name (None: the run folder's); group: its group (None: in a sweep, one named
    after the sweep, llp_jax.cli.sweep_group); tags (after the run's top-level tags), job_type and notes
    as wandb takes them."""

    wandb: bool = False
    project: str = "llp_jax"
    entity: str | None = None
    mode: str | None = None  # None: the environment's WANDB_MODE when set, else offline
    name: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    job_type: str = "train"
    notes: str | None = None
    log_encoder: bool = False  # the trained encoder as a wandb artifact of type "model"
    log_every: int = 10  # an INFO log line every this many epochs (and for every round's events)


@dataclass
class MethodConfig:
    """The method's name; its own settings groups (llp_bp: graph, bp, schedule) sit beside it."""

    name: str = MISSING


# ----------------------------------------------------------------------------------------------------
# Schemas derived from settings types.


def _schema_type(hint: Any) -> Any:
    """The OmegaConf-compatible form of a settings field's type: tuple[X, ...] -> list[X]; a union other
    than X | None -> Any (OmegaConf types only Optional unions)."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        return list[typing.get_args(hint)[0]]
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) == 1 and len(typing.get_args(hint)) == 2:
            return _schema_type(args[0]) | None
        return Any
    return hint


def _field(default: Any) -> Any:
    """A dataclass field with `default` in schema form (a tuple as a fresh list)."""
    if isinstance(default, tuple):
        return field(default_factory=lambda: list(default))
    return field(default=default)


_SCHEMAS: dict[tuple, type] = {}


def schema_of(settings: type, name_field: str | None = None) -> type:
    """A Hydra schema (dataclass) with the fields, types and defaults of a settings NamedTuple, so that
    the defaults live in one place. name_field: prepend `name: str = name_field` (config groups whose
    choice is named in the config, e.g. model.name). The same arguments give the same schema."""
    cache_key = (settings, name_field)
    if cache_key not in _SCHEMAS:
        hints = typing.get_type_hints(settings)
        fields = [("name", str, field(default=name_field))] if name_field else []
        fields += [
            (key, _schema_type(hints[key]), _field(settings._field_defaults.get(key, MISSING)))
            for key in settings._fields
        ]
        schema = make_dataclass(f"{settings.__name__}Schema", fields)
        schema.__doc__ = settings.__doc__
        _SCHEMAS[cache_key] = schema
    return _SCHEMAS[cache_key]


def settings_from(settings: type, node: Any) -> Any:
    """The settings NamedTuple `settings` from a config node (lists become tuples); keys the type does
    not have (a `name`) are ignored."""
    values = {}
    for key in settings._fields:
        if key in node:
            value = node[key]
            values[key] = (
                tuple(value) if isinstance(value, list | tuple) or OmegaConf.is_list(value) else value
            )
    return settings(**values)


def method_groups(method: str) -> dict[str, type]:
    """The config groups a method reads beyond model and train: field name -> settings type."""
    settings = METHODS[method].settings
    base = {f.name for f in dataclasses.fields(FitSettings)}
    hints = typing.get_type_hints(settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(settings) if f.name not in base}


def schemas() -> dict[str, dict[str, type]]:
    """group -> {schema name -> schema}: every schema of every registered extension."""
    groups: dict[str, dict[str, type]] = {
        "dataset": DATASET_SCHEMAS,
        "bagging": {"default": schema_of(BaggingSettings)},
        "model": {name: schema_of(spec.settings, name_field=name) for name, spec in MODELS.items()},
        "train": {"default": schema_of(TrainSettings)},
        "method": {"default": MethodConfig},
        "logger": {"default": LoggerConfig},
    }
    for method in METHODS:
        for group, settings in method_groups(method).items():
            schema = schema_of(settings)
            known = groups.setdefault(group, {"default": schema})["default"]
            if known is not schema:
                raise ValueError(f"config group {group!r} is read with two settings types by the methods")
    return groups


def register_configs() -> None:
    """Store every schema as `hydra/schema/<group>/<name>`, which a config of the group extends
    (`- /hydra/schema/<group>@_here_: <name>` in its defaults). Under hydra/ the schemas stay out of the
    groups and options that --help and tab completion list for the application."""
    store = ConfigStore.instance()
    for group, named in schemas().items():
        for name, node in named.items():
            store.store(group=f"hydra/schema/{group}", name=name, node=node)
    OmegaConf.register_new_resolver("folder_name", folder_name, replace=True)
    OmegaConf.register_new_resolver("job_name", job_name, replace=True)
    OmegaConf.register_new_resolver("mem_fraction", mem_fraction, replace=True)
    register_sampler()  # hparams_search: the Optuna sampler that a resumed search needs (llp_jax.hpo)


# A file name holds at most 255 bytes on common file systems; an Optuna trial's float overrides exceed it.
MAX_FOLDER_NAME = 200
# A list override (model.widths=[16,8]) would put brackets in the name, and orbax finds the pieces of a
# checkpoint by glob: under ".../model.widths=[16,8]/" the encoder was saved without its manifest and could
# not be loaded back (llp_jax.writers.check_folder_name refuses such folders).
FOLDER_NAME_CHARACTERS = str.maketrans({"[": "(", "]": ")", "*": "_", "?": "_"})


# A path separator in an override's value ('dataset.data_dir=x/../../../escaped') would make a job's folder a
# path of several parts, some of them "..": the job's run folder was written outside hydra.sweep.dir.
PATH_SEPARATORS = str.maketrans({"/": "_", "\\": "_", "\0": "_"})


def folder_name(text: str) -> str:
    """`text` as one folder name that stays inside its parent folder: path separators (/ and \\) as _,
    brackets as parentheses (and * and ? as _), a name of dots alone ("." or "..") as underscores, cut to
    MAX_FOLDER_NAME characters. The `${folder_name:...}` resolver of a sweep's job folders (whose
    job-number prefix keeps them apart) and of a single run's folder (its method, dataset and seed):
    'dataset.data_dir=x/../escaped' -> 'dataset.data_dir=x_.._escaped', a name, not a path."""
    name = str(text).translate(PATH_SEPARATORS).translate(FOLDER_NAME_CHARACTERS)[:MAX_FOLDER_NAME]
    return name if name.strip(".") or not name else "_" * len(name)


def job_name(sweep_dir: str) -> str:
    """The name of a sweep's cluster jobs (the `${job_name:${hydra.sweep.dir}}` resolver of
    hydra/launcher/slurm.yaml, what squeue shows): the sweep folder's name (hydra.sweep.dir=multirun/bags:
    "bags"); under a folder named by a bare time, as the default multirun/<date>/<time> is, "llp_" and its
    date and time. Characters other than letters, digits, . _ - become _."""
    folder = Path(str(sweep_dir))
    name = folder.name
    if re.fullmatch(r"[\d_:.-]*", name):
        name = f"llp_{folder.parent.name}_{name}".rstrip("_")
    return re.sub(r"[^\w.-]", "_", name)[:MAX_FOLDER_NAME]


def mem_fraction(n_jobs) -> str:
    """XLA_PYTHON_CLIENT_MEM_FRACTION for each of n_jobs processes that share one GPU (the
    `${mem_fraction:${hydra.launcher.n_jobs}}` resolver of hydra/launcher/pack.yaml): 0.9 / n_jobs, so that
    all of them fit beside the CUDA context's own memory; JAX preallocates 0.75 of the GPU in each process
    otherwise, and the second process fails to allocate. ValueError for n_jobs below 1 (joblib's -1, a
    process per CPU core, would give each an unknown share)."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(
            f"hydra.launcher.n_jobs={n_jobs!r}: hydra/launcher=pack runs this many jobs on one GPU at once, "
            "each with 1/n_jobs of its memory; give a whole number >= 1, e.g. hydra.launcher.n_jobs=4"
        )
    return f"{0.9 / n_jobs:.4g}"


def current_spelling(overrides: list[str]) -> list[str]:
    """The overrides with `+experiment=<name>`, the older spelling of `experiment=<name>`, in the new one:
    the main config lists the experiment group (`experiment: null`), and Hydra refuses to add (+) a group
    the defaults list already holds ("Multiple values for experiment")."""
    old = "+experiment="
    return [f"experiment={o.removeprefix(old)}" if o.startswith(old) else o for o in overrides]


def compose(*overrides: str) -> DictConfig:
    """The config that `llp-train *overrides` runs, composed from the package's configs (any folder)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return hydra_compose(config_name="config", overrides=current_spelling(list(overrides)))


# ----------------------------------------------------------------------------------------------------
# A composed config as typed, checked settings.


class DatasetChoice(NamedTuple):
    """name: a key of llp_jax.data.LOADERS; data_dir; options: the loader's other keyword arguments."""

    name: str
    data_dir: str | os.PathLike | None
    options: dict[str, Any]


# What a sweeper may optimise: validation criteria of the model the run returns (metrics.json), lower is
# better; selection_loss is the one train.select_on names (val_count_nll by default). Never a test metric.
OPTIMIZED_METRICS = ("selection_loss", "val_count_nll", "val_bag_loss")
# The largest seed: jax.random.key takes a 64-bit signed integer (a larger one is an OverflowError).
MAX_SEED = 2**63 - 1


class RunSettings(NamedTuple):
    """Everything a run reads, typed: seed (>= 0), dataset, bagging, the method's name and settings
    (FitSettings or the method's subclass), the logger config, the summary key a sweeper minimises, the
    devices used (shard, llp_jax.sharding; require_gpu: fail at once unless JAX sees a GPU or TPU) and the
    run's tags (metrics.json, failed.json, wandb); strict: a degenerate setup (llp_jax.degenerate) fails
    instead of warning."""

    seed: int
    dataset: DatasetChoice
    bagging: BaggingSettings
    method_name: str
    method: FitSettings
    logger: LoggerConfig
    optimized_metric: str
    shard: str
    tags: tuple[str, ...] = ()
    require_gpu: bool = False
    strict: bool = False


def resolve(cfg: DictConfig) -> RunSettings:
    """The composed config as RunSettings, every setting checked (ValueError naming the key and the fix)
    before any data is loaded or anything trains."""
    seed = cfg.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer; use e.g. seed=0")
    if seed > MAX_SEED:
        raise ValueError(
            f"seed={seed} is above {MAX_SEED} (2**63 - 1), the largest seed JAX takes; use e.g. seed=0"
        )
    optimized = cfg.get("optimized_metric", OPTIMIZED_METRICS[0])
    if optimized not in OPTIMIZED_METRICS:
        raise ValueError(
            f"optimized_metric={optimized!r}; a sweeper may only optimise a validation criterion (lower is "
            f"better), never a test metric: choose one of {OPTIMIZED_METRICS}"
        )
    name = cfg.method.name
    if name not in METHODS:
        raise ValueError(f"method={name!r} is not known; choose one of {sorted(METHODS)}")
    if cfg.model.name not in MODELS:
        raise ValueError(f"model={cfg.model.name!r} is not known; choose one of {sorted(MODELS)}")
    groups = {key: settings_from(settings, cfg[key]) for key, settings in method_groups(name).items()}
    train = settings_from(TrainSettings, cfg.train)
    if train.progress is None:  # progress bars on a terminal only, plain log lines elsewhere
        train = train._replace(progress=sys.stderr.isatty())
    method = METHODS[name].settings(
        model=settings_from(MODELS[cfg.model.name].settings, cfg.model), train=train, **groups
    )
    method.check()
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    if dataset["name"] not in LOADERS:
        raise ValueError(f"dataset={dataset['name']!r} is not known; choose one of {sorted(LOADERS)}")
    options = {key: value for key, value in dataset.items() if key not in ("name", "data_dir")}
    bagging = settings_from(BaggingSettings, cfg.bagging)
    check_bagging(bagging)
    shard = cfg.shard
    check_shard(shard)
    require_gpu = cfg.get("require_gpu", False)
    if not isinstance(require_gpu, bool):
        raise ValueError(f"require_gpu={require_gpu!r} must be true or false")
    strict = cfg.get("strict", False)
    if not isinstance(strict, bool):
        raise ValueError(f"strict={strict!r} must be true or false")
    logger_config = OmegaConf.to_object(cfg.logger)
    check_log_every(cfg.logger.log_every)  # a DictConfig: a saved config (llp-eval) has no schema
    tags = check_tags(cfg.get("tags", []))
    return RunSettings(
        seed=seed,
        dataset=DatasetChoice(dataset["name"], dataset["data_dir"], options),
        bagging=bagging,
        method_name=name,
        method=method,
        logger=logger_config,
        optimized_metric=optimized,
        shard=shard,
        tags=tags,
        require_gpu=require_gpu,
        strict=strict,
    )


def check_tags(tags: Any) -> tuple[str, ...]:
    """The run's labels (the top-level `tags`, e.g. tags=[baseline,bank]) as a tuple of strings; ValueError
    for anything but a list of strings and numbers."""
    values = list(tags) if OmegaConf.is_list(tags) or isinstance(tags, list | tuple) else None
    if values is None or not all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in values
    ):
        raise ValueError(f"tags={tags!r} must be a list of words, e.g. tags=[baseline,bank]")
    return tuple(str(value) for value in values)
