"""One experiment from a composed config: data -> bags -> method -> test metrics, written to a run folder."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from llp_jax.checkpoint import save_encoder
from llp_jax.compile_clock import CompileClock, compile_clock, compile_stage
from llp_jax.config import RunSettings, resolve
from llp_jax.data import load_dataset, make_bags
from llp_jax.data.bags import Bags, check_bags_learnable, check_classes_present
from llp_jax.data.dataset import Dataset
from llp_jax.data.paths import recording_files
from llp_jax.degenerate import strict_setups
from llp_jax.methods import METHODS
from llp_jax.methods.registry import check_method_classes
from llp_jax.preemption import preemption_signals
from llp_jax.provenance import check_same_data, data_fingerprint, provenance, record_data_fingerprint
from llp_jax.sharding import check_accelerator, use_devices
from llp_jax.streams import stream_key, stream_seed
from llp_jax.train.checkpoints import RunCheckpoints, checkpointing, records_covered
from llp_jax.train.loop import TrainResult, ValInputs, predict, selection_scores, validation_bag_scores
from llp_jax.train.metrics import classification_metrics, confusion_record
from llp_jax.train.settings import SelectOn
from llp_jax.writers import MetricsWriter

CHECKPOINTS = "checkpoints"  # the run folder's checkpoints of the training state, until the run ends
logger = logging.getLogger("llp_jax")


def several_processes(environ: Mapping[str, str]) -> bool:
    """Whether this process is one of several of one run: SLURM started several tasks (SLURM_NTASKS > 1,
    e.g. hydra.launcher.tasks_per_node > 1 under the submitit launcher) or a coordinator is named
    (JAX_COORDINATOR_ADDRESS, with JAX_NUM_PROCESSES and JAX_PROCESS_ID)."""
    return int(environ.get("SLURM_NTASKS", "1")) > 1 or "JAX_COORDINATOR_ADDRESS" in environ


def join_processes(environ: Mapping[str, str] = os.environ) -> bool:
    """jax.distributed.initialize() when this process is one of several (`several_processes`) and has not
    joined yet, so that jax.devices() holds every process's devices; True when it joined now. JAX finds
    SLURM's processes itself; beside a coordinator address, JAX_NUM_PROCESSES and JAX_PROCESS_ID give the
    count and this process's number (JAX reads neither). It must come before any JAX computation; one
    process alone (one GPU or all of a node's) never calls it."""
    if not several_processes(environ) or jax.distributed.is_initialized():
        return False
    numbers = {"num_processes": "JAX_NUM_PROCESSES", "process_id": "JAX_PROCESS_ID"}
    jax.distributed.initialize(
        **{key: int(environ[name]) for key, name in numbers.items() if name in environ}
    )
    logger.info(
        "joined %d processes as process %d: %d devices in all, %d here",
        jax.process_count(),
        jax.process_index(),
        jax.device_count(),
        jax.local_device_count(),
    )
    return True


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
    validation bags are built like training bags, with the data's classes (counts float32[n_bags, K] for
    K > 2)."""
    train, val = (
        make_bags(
            getattr(data, split),
            run.bagging,
            stream_seed(run.seed, f"{split}_bags"),
            data.given_counts.get(split),
            n_classes=data.n_classes,
        )
        for split in ("train", "val")
    )
    return train, val


def run_experiment(cfg: DictConfig, run_dir: str | Path, first_process_dir: str | Path | None = None) -> dict:
    """Run the method of `cfg` and return the final summary, also written to run_dir/metrics.json.

    The config is resolved and checked (llp_jax.config.resolve), and with require_gpu the devices
    (llp_jax.sharding.check_accelerator), before anything is written or loaded;
    run_dir must not hold another run (llp_jax.writers.claim_run_dir), unless the run resumes the
    unfinished run there (train.resume, or a SLURM requeue) with the same settings and the same data
    (run_dir/data_fingerprint.json: llp_jax.provenance.check_same_data). A run that fails leaves
    run_dir/failed.json with its traceback and provenance (`failure_details`), and the error is raised
    again; one stopped by SIGTERM (llp_jax.preemption.Preempted) the same with status "preempted". The
    training state is checkpointed into run_dir/checkpoints while the run goes on
    (llp_jax.train.checkpoints).
    first_process_dir: for process i > 0 of several processes of one run, the first process's run_dir,
    whose checkpoints and encoder this process shares rather than writes (None: run_dir)."""
    start = time.perf_counter()
    run = resolve(cfg)
    check_accelerator(run.require_gpu)  # require_gpu: no GPU or TPU, no run (nothing loaded or written)
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
            "tags": list(dict.fromkeys([*run.tags, *logger.tags])),  # the run's tags, then wandb's own
            "job_type": logger.job_type,
            "notes": logger.notes,
        }
    folder = Path(first_process_dir or run_dir) / CHECKPOINTS
    resume_from = None
    if _resuming(run, run_dir):
        _check_same_run(cfg, run_dir)
        check_same_data(run_dir)  # the files it started with, hashed again before anything is loaded
        resume_from = records_covered(folder)
    config = OmegaConf.to_container(cfg, resolve=True)
    writer = MetricsWriter(
        run_dir, wandb_settings, config, run.logger.log_every, resume_from, run.logger.log_encoder
    )
    checkpoints = RunCheckpoints(folder, run.method.train.checkpoint_every, lambda: writer.records)
    with preemption_signals() as signals:  # SIGTERM: Preempted, recorded as status "preempted"
        try:
            with checkpointing(checkpoints), use_devices(run.shard), compile_clock() as clock:
                summary = _run(cfg, run, run_dir, writer.log, start, clock)
        except BaseException as error:
            preempted = {"signal": signals.received} if signals.received else {}  # SIGTERM, submitit's USR2
            writer.fail(error, failure_details(run) | preempted, "preempted" if preempted else "failed")
            raise
    writer.finish(summary)
    if jax.process_index() == 0:  # several processes: the checkpoints are the first's to remove
        shutil.rmtree(folder, ignore_errors=True)  # the run is finished and its encoder saved
    return summary


def failure_details(run: RunSettings) -> dict:
    """What failed.json records of a run beside its error: the run's method, dataset, seed and tags, and
    the provenance metrics.json carries (git commit, versions, device, host, Python). Provenance that cannot
    be read (JAX finds no device, say) is replaced by its own error, which never hides the run's."""
    try:
        origin = provenance()
    except Exception as error:  # the run's error is the one to report
        origin = {"error": f"{type(error).__name__}: {error}"}
    details = {"method": run.method_name, "dataset": run.dataset.name, "seed": run.seed}
    return details | {"tags": list(run.tags), "provenance": origin}


def _resuming(run: RunSettings, run_dir: Path) -> bool:
    """train.resume, or a job that SLURM requeued (SLURM_RESTART_COUNT > 0) into its unfinished folder, or
    a submitit job started again in the folder of its preempted run (failed.json status preempted: submitit's
    local executor requeues a job by running it again, without SLURM's count)."""
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
    failed = run_dir / "failed.json"
    if "SUBMITIT_EXECUTOR" in os.environ and failed.exists():
        requeued = requeued or json.loads(failed.read_text()).get("status") == "preempted"
    return run.method.train.resume or (requeued and (run_dir / "metrics.jsonl").exists())


def _check_same_run(cfg: DictConfig, run_dir: Path) -> None:
    """A run resumes only the run of the same settings (train.resume and train.progress aside)."""
    saved_file = run_dir / "config_resolved.yaml"
    if not saved_file.exists():
        raise FileNotFoundError(
            f"{saved_file} is missing: there is no run to resume in {run_dir}; point hydra.run.dir at the "
            "folder of the run to resume, or drop train.resume=true to start a new run"
        )
    ignored = ("resume", "progress")
    saved, now = OmegaConf.to_container(OmegaConf.load(saved_file)), OmegaConf.to_container(cfg, resolve=True)
    for config in (saved, now):
        config["train"] = {key: value for key, value in config["train"].items() if key not in ignored}
    if saved != now:
        changed = sorted(key for key in set(saved) | set(now) if saved.get(key) != now.get(key))
        raise ValueError(
            f"the run in {run_dir} was started with other settings ({', '.join(changed)} differ); resume it "
            "with the settings of its config_resolved.yaml, or start a new run in another folder"
        )


def load_data(run: RunSettings) -> Dataset:
    """The run's dataset, split as the run split it (the stream "split" of its seed); the loader checks
    its files and features (llp_jax.data)."""
    return load_dataset(
        run.dataset.name,
        data_dir=run.dataset.data_dir,
        seed=stream_seed(run.seed, "split"),
        **run.dataset.options,
    )


def load_inputs(run: RunSettings) -> tuple[Dataset, Bags, Bags]:
    """The run's dataset and its (train_bags, val_bags), every input checked before anything trains: the
    loader checks its files and features (llp_jax.data), the test split must hold two classes or more, the
    bags must fit the data (make_bags), the method must take its number of classes, every class must be in
    some training bag (K > 2) and the method's settings must fit the data (FitSettings.check_data).
    Degenerate setups warn (llp_jax.degenerate: one training bag, bags of one class, a categorical
    column of very many levels), or fail under strict=true."""
    with strict_setups(run.strict):
        data = load_data(run)
        _check_test_labels(data.test.y)
        train_bags, val_bags = build_bags(data, run)
        check_method_classes(run.method_name, data.n_classes)
        check_classes_present(train_bags, "train")
        run.method.check_data(data, train_bags)
        check_bags_learnable(train_bags, "train")
    return data, train_bags, val_bags


def _check_test_labels(labels: np.ndarray) -> None:
    """ValueError before any training when the test labels (int[n]) hold fewer than two classes: the
    test AUC (K classes: every one-vs-rest AUC) would be undefined."""
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(
            f"the test split has {len(classes)} class(es) ({len(labels)} rows, labels {classes.tolist()}): "
            "its AUC is undefined; use a test set with both positive and negative rows (K classes: rows of "
            "two classes or more)"
        )


def returned_model_criteria(result: TrainResult, data: Dataset, val_bags: Bags, run: RunSettings) -> dict:
    """The validation criteria of the model the method returned, computed on that model itself (means over
    the validation bags): val_bag_loss, val_count_nll and selection_loss, the one train.select_on names
    (llp_jax.train.loop.selection_scores, as every epoch computes them). This selection_loss is what
    metrics.json holds, what the run returns to a sweeper (optimized_metric) and what llp-report ranks
    variants by; it can differ from the last fit's best epoch's (best_epoch_selection_loss): LLP-BP returns
    a later round or its warm start, recalibrated on the training bag counts."""
    settings = run.method.train._replace(select_on=SelectOn(result.selection))
    return selection_scores(result.model, ValInputs(data.val.x, val_bags, data.val.y), settings)


def _run(cfg: DictConfig, run: RunSettings, run_dir: Path, log, start: float, clock: CompileClock) -> dict:
    """The run proper: data, bags, the method, the saved encoder and the test metrics (the summary, with
    the seconds this process spent compiling, by stage, from `clock`)."""
    (run_dir / "config_resolved.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    with recording_files() as files:
        data, train_bags, val_bags = load_inputs(run)
    fingerprint = data_fingerprint(data, files)  # a resumed run's must equal its first start's
    record_data_fingerprint(run_dir, fingerprint)
    key = stream_key(jax.random.key(run.seed), "method")
    result = METHODS[run.method_name].fit(data, train_bags, val_bags, run.method, key, log)
    if jax.process_index() == 0:  # several processes: the same encoder, saved once in the first's folder
        save_encoder(result.model, run_dir)
    with compile_stage("evaluate"):
        test_logits, _ = predict(result.model, data.test.x, run.method.train.eval_batch_size)
        val_logits, _ = predict(result.model, data.val.x, run.method.train.eval_batch_size)
        val_scores = validation_bag_scores(val_logits, val_bags)  # of the classifier returned, per bag
        criteria = returned_model_criteria(result, data, val_bags, run)
        test_metrics = classification_metrics(data.test.y, test_logits, "test")
        test_metrics |= confusion_record(data.test.y, test_logits, "test")  # K classes
    fixed_size = run.bagging.kind == "random" and run.bagging.size_range is None
    return {
        "status": "finished",
        "method": run.method_name,
        "dataset": run.dataset.name,
        "bagging": str(run.bagging.kind),
        "bag_size": run.bagging.bag_size if fixed_size else round(np.mean(train_bags.sizes)),
        "mean_bag_size": float(np.mean(train_bags.sizes)),
        "seed": run.seed,
        "tags": list(run.tags),
        **test_metrics,
        "n_train": int(train_bags.sizes.sum()),
        "feature_shape": list(data.feature_shape),
        "n_bags": train_bags.n_bags,
        "n_val_bags": val_bags.n_bags,
        "best_epoch": result.best_epoch,
        **criteria,
        **{f"{name}_per_bag": values.tolist() for name, values in val_scores.items()},
        "best_epoch_selection_loss": result.history[result.best_epoch - 1]["selection_loss"],
        "epochs_run": len(result.history),
        "selection": str(result.selection),
        "wall_time_s": time.perf_counter() - start,
        "compile_s": clock.seconds(),  # this process's, by stage (a resumed run's: since it resumed)
        "provenance": provenance() | {"data_sha256": fingerprint},
    }
