"""Tests of llp_jax.sharding: the kNN search, BP and a training step over 4 devices give the results of one.

JAX reads XLA_FLAGS once, at start, so the sharded checks run in a subprocess that sees 4 CPU devices
(--xla_force_host_platform_device_count=4) and prints what it measured as JSON; this process has one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest
from conftest import FAST, run_script

from llp_jax import sharding
from llp_jax.checkpoint import load_encoder
from llp_jax.experiment import join_processes, run_experiment, several_processes

N_DEVICES = 4
TOLERANCE = 1e-5


def _knn_checks() -> dict:
    """Indices and distances of the kNN search on one device and on the mesh, both metrics; 203 points in
    blocks of 50 queries, so neither divides by the devices."""
    from llp_jax.graph.knn import _knn_block, _scored_points, knn

    z = np.random.default_rng(0).normal(size=(203, 7)).astype(np.float32)
    out = {}
    for metric in ("cosine", "euclidean"):
        one = knn(z, 5, metric, block_size=50, chunk_size=64, progress=False)
        with sharding.use_devices("auto"):
            many = knn(z, 5, metric, block_size=50, chunk_size=64, progress=False)
        out[metric] = {
            "indices_equal": bool(np.array_equal(one.indices, many.indices)),
            "distance_gap": float(np.max(np.abs(one.distances - many.distances))),
        }
    with sharding.use_devices("auto"):  # each device its share of a block's queries, gathered at the end
        queries, corpus, exact = _scored_points(jax.numpy.asarray(z), "cosine")
        padding = np.zeros((256 - 203, corpus.shape[1]), np.float32)
        padding[:, -1] = -np.inf  # rows that score -inf, as knn pads the corpus to whole chunks
        corpus = jax.numpy.concatenate([corpus, padding])
        queries, corpus, exact = sharding.replicate((queries, corpus, exact))
        block = _knn_block.lower(
            np.int32(0),
            queries,
            corpus,
            exact,
            metric="cosine",
            block_size=50,
            chunk_size=64,
            group_size=32,
            n_candidates=16,
            k=5,
        )
        out["gathers"] = "all-gather" in block.compile().as_text()
    return out


def _bp_checks() -> dict:
    """BP marginals of a kNN graph with count bags (unequal sizes, 7 bags: the bags and the edges are
    padded) on one device and on the mesh, and how the mesh holds the problem's arrays."""
    from llp_jax.bp import BPSettings, build_problem, run_bp
    from llp_jax.data.bags import Bags
    from llp_jax.graph import GraphSettings, build_graph

    rng = np.random.default_rng(1)
    z = rng.normal(size=(61, 4)).astype(np.float32)
    graph = build_graph(z, GraphSettings(k=3))
    sizes = np.array([12, 9, 9, 8, 8, 8, 7])
    members = np.zeros((len(sizes), sizes.max()), np.int32)
    mask = np.arange(sizes.max()) < sizes[:, None]
    members[mask] = rng.permutation(61)[: sizes.sum()]
    counts = np.round(sizes * rng.uniform(0.2, 0.8, len(sizes))).astype(np.float32)
    bags = Bags(members, mask, sizes.astype(np.int32), counts)
    out = {}
    for factor in ("count", "gaussian"):
        settings = BPSettings(bag_factor=factor, lambda_s=1.0, lambda_b=2.0, max_iters=60)
        one = run_bp(graph, bags, settings)
        with sharding.use_devices("auto"):
            many = run_bp(graph, bags, settings)
            problem = sharding.shard_problem(build_problem(graph, bags, settings))
        out[factor] = {
            "marginal_gap": float(np.max(np.abs(np.asarray(one.marginals) - np.asarray(many.marginals)))),
            "iterations": [int(one.n_iters), int(many.n_iters)],
            "bag_members_shards": [s.data.shape[0] for s in problem.bag_members.addressable_shards],
            "senders_shards": [s.data.shape[1] for s in problem.senders.addressable_shards],
            "field_replicated": bool(problem.field.sharding.is_fully_replicated),
            "bag_members_devices": len(problem.bag_members.sharding.device_set),
        }
    return out


def _training_checks() -> dict:
    """Parameters and step losses after one epoch (several optimiser steps, bags of unequal width in two
    buckets, 6 and 3 bags a batch) on one device and on the mesh."""
    import optax
    from flax import nnx

    from llp_jax.data.bags import Bags
    from llp_jax.models import MLPSettings, make_encoder
    from llp_jax.train.loop import TrainState, _buckets, _make_step, bucket_widths, train_epoch
    from llp_jax.train.losses import bag_proportion_bce

    rng = np.random.default_rng(2)
    sizes = np.concatenate([rng.integers(2, 5, 30), rng.integers(9, 17, 9)])
    members = np.zeros((len(sizes), sizes.max()), np.int32)
    mask = np.arange(sizes.max()) < sizes[:, None]
    members[mask] = np.arange(sizes.sum())
    counts = np.round(sizes * rng.uniform(0, 1, len(sizes))).astype(np.float32)
    bags = Bags(members, mask, sizes.astype(np.int32), counts)
    x = rng.normal(size=(sizes.sum(), 5)).astype(np.float32)

    def loss(model, logits, embedding, batch):
        return bag_proportion_bce(logits, batch.mask, batch.proportions)

    def one_epoch():
        model = make_encoder(MLPSettings(widths=(8, 4)), (5,), jax.random.key(0))
        graphdef, params = nnx.split(model)
        tx = optax.adamw(1e-2)
        state = sharding.replicate(TrainState(params, tx.init(params)))
        buckets = _buckets(bags, np.zeros(len(x), np.float32), bucket_widths(bags.sizes), batch_size=24)
        x_device = sharding.replicate(jax.numpy.asarray(x))
        state, losses = train_epoch(
            _make_step(graphdef, tx, loss), state, x_device, buckets, jax.random.key(1)
        )
        return state, losses, [bucket.per_batch for bucket in buckets], x_device

    one_state, one_losses, per_batch, _ = one_epoch()
    with sharding.use_devices("auto"):
        many_state, many_losses, _, x_many = one_epoch()
    with sharding.use_devices("auto"):  # the compiled step sums the devices' gradients
        model = make_encoder(MLPSettings(widths=(8, 4)), (5,), jax.random.key(0))
        graphdef, params = nnx.split(model)
        tx = optax.adamw(1e-2)
        buckets = _buckets(bags, np.zeros(len(x), np.float32), bucket_widths(bags.sizes), batch_size=24)
        args = (params, tx.init(params), sharding.replicate(np.arange(6, dtype=np.int32)), x_many)
        hlo = _make_step(graphdef, tx, loss).lower(*args, buckets[1].members, buckets[1].data).compile()
    gaps = jax.tree.map(
        lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), one_state, many_state
    )
    return {
        "per_batch": per_batch,
        "n_steps": [len(one_losses), len(many_losses)],
        "loss_gap": float(np.max(np.abs(one_losses - many_losses))),
        "param_gap": max(jax.tree.leaves(gaps.params)),
        "x_devices": len(x_many.sharding.device_set),
        "all_reduce": "all-reduce" in hlo.as_text(),
        "params_devices": min(len(a.sharding.device_set) for a in jax.tree.leaves(many_state.params)),
    }


def _constraint_checks() -> dict:
    """Where a row constraint puts an array inside jit, with and without the mesh, and a shard count."""

    @jax.jit
    def split(a):
        return sharding.constrain_rows(a) * 1.0

    a = np.arange(24.0).reshape(8, 3)
    without = split(a)
    with sharding.use_devices("auto"):
        with_mesh = split(a)
        shards = sharding.n_shards()
        padded = sharding.shard_rows(np.arange(6), fill=-1)
    return {
        "without_devices": len(without.sharding.device_set),
        "with_devices": len(with_mesh.sharding.device_set),
        "with_shard_rows": sorted(s.data.shape[0] for s in with_mesh.addressable_shards),
        "n_shards": shards,
        "padded": np.asarray(padded).tolist(),
        "off": sharding.mesh_for("off") is None,
    }


def _run_checks() -> dict:
    return {
        "device_count": jax.device_count(),
        "constraint": _constraint_checks(),
        "knn": _knn_checks(),
        "bp": _bp_checks(),
        "training": _training_checks(),
    }


@pytest.fixture(scope="module")
def four_devices() -> dict:
    """The checks' JSON from a subprocess with 4 CPU devices."""
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={N_DEVICES}"}
    env["JAX_PLATFORMS"] = "cpu"
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, __file__], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_subprocess_sees_four_devices_and_constraints_split_rows(four_devices):
    assert four_devices["device_count"] == N_DEVICES
    checks = four_devices["constraint"]
    assert checks["n_shards"] == N_DEVICES and checks["off"]
    assert checks["without_devices"] == 1  # no mesh: one device, as before
    assert checks["with_devices"] == N_DEVICES and checks["with_shard_rows"] == [2, 2, 2, 2]
    assert checks["padded"] == [0, 1, 2, 3, 4, 5, -1, -1]


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_sharded_knn_equals_one_device(four_devices, metric):
    assert four_devices["knn"]["gathers"]  # the queries were split over the devices
    checks = four_devices["knn"][metric]
    assert checks["indices_equal"]
    assert checks["distance_gap"] <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("factor", ["count", "gaussian"])
def test_sharded_bp_equals_one_device_with_whole_bags_on_each_shard(four_devices, factor):
    checks = four_devices["bp"][factor]
    assert checks["marginal_gap"] <= TOLERANCE
    assert checks["bag_members_devices"] == N_DEVICES
    assert checks["bag_members_shards"] == [2, 2, 2, 2]  # 7 bags padded to 8, each row a whole bag
    assert len(set(checks["senders_shards"])) == 1 and len(checks["senders_shards"]) == N_DEVICES
    assert checks["field_replicated"]


@pytest.mark.slow
def test_sharded_training_epoch_equals_one_device(four_devices):
    checks = four_devices["training"]
    assert checks["n_steps"][0] == checks["n_steps"][1] > 2
    assert checks["per_batch"] == [11, 6, 1]  # batches of 11 and 6 bags split unevenly over 4 devices
    assert checks["all_reduce"]
    assert checks["loss_gap"] <= TOLERANCE
    assert checks["param_gap"] <= TOLERANCE
    assert checks["x_devices"] == N_DEVICES and checks["params_devices"] == N_DEVICES


def test_one_device_changes_nothing():
    """In this process (one device) auto sets no mesh and every helper returns its argument itself."""
    assert jax.device_count() == 1
    array = np.arange(5)
    with sharding.use_devices("auto") as mesh:
        assert mesh is None and sharding.n_shards() == 1
        assert sharding.shard_rows(array) is array and sharding.replicate(array) is array
        assert sharding.constrain_rows(array) is array


def test_an_unknown_shard_setting_is_named():
    with pytest.raises(ValueError, match=r"shard='all'.*auto"):
        sharding.mesh_for("all")


def test_a_run_with_an_unknown_shard_setting_writes_nothing(compose_config, tmp_path):
    with pytest.raises(ValueError, match=r"shard='all'"):
        run_experiment(compose_config(*FAST, "shard=all"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


class FakeDevice(NamedTuple):
    platform: str
    device_kind: str = "NVIDIA H100 80GB HBM3"


def test_require_gpu_passes_with_an_accelerator_and_is_off_by_default():
    sharding.check_accelerator(False)  # this machine's CPU
    sharding.check_accelerator(True, [FakeDevice("gpu")])
    sharding.check_accelerator(True, [FakeDevice("tpu", "TPU v4")])


def test_require_gpu_without_one_names_the_cause_and_the_fix(monkeypatch):
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    with pytest.raises(ValueError, match=r"require_gpu=true, but JAX sees no GPU or TPU, only 1 cpu") as err:
        sharding.check_accelerator(True)  # this machine: JAX's CPU build
    assert 'pip install -e ".[gpu]"' in str(err.value) and "require_gpu=false" in str(err.value)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    with pytest.raises(ValueError, match=r"JAX_PLATFORMS=cpu keeps JAX off the accelerators: unset it"):
        sharding.check_accelerator(True, [FakeDevice("cpu", "cpu")])


def test_a_run_that_requires_a_gpu_without_one_writes_nothing(compose_config, tmp_path):
    with pytest.raises(ValueError, match=r"require_gpu=true"):
        run_experiment(compose_config(*FAST, "require_gpu=true"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("environ", "several"),
    [
        ({}, False),
        ({"SLURM_NTASKS": "1"}, False),
        ({"SLURM_NTASKS": "8"}, True),
        ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, True),
    ],
)
def test_several_processes_are_told_by_slurm_tasks_or_a_coordinator(environ, several):
    assert several_processes(environ) is several


def test_processes_join_once_and_only_when_several(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **numbers: calls.append(numbers))
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: bool(calls))
    assert not join_processes({})
    assert calls == []
    assert join_processes({"SLURM_NTASKS": "2"})
    assert not join_processes({"SLURM_NTASKS": "2"})  # already joined: a sweep's second run in the process
    assert calls == [{}]  # SLURM's numbers are JAX's to find


def test_a_named_coordinator_passes_the_process_numbers(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda **numbers: calls.append(numbers))
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    environ = {"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert join_processes(environ)
    assert calls == [{"num_processes": 2, "process_id": 1}]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_run_one_experiment_with_the_numbers_of_one(tmp_path):
    """Two processes joined through a coordinator (as two SLURM tasks of one job, one CPU device each) run
    an LLP-BP experiment with checkpoints to the end in one run folder (the second process's metrics in
    process1/, its checkpoints and encoder the first's) and give the single process's numbers. Under
    orbax's default multi-process checkpoints (before train/checkpoints.py process_local) process 1 waited
    for process 0 to create a checkpoint folder and timed out after 600 s. About 2 minutes on 2 CPU cores."""
    overrides = [*FAST, "method=llp_bp", "schedule=easyllp_warm", "bp.max_iters=20", "train.epochs=2"]
    overrides += ["train.checkpoint_every=1", "compilation_cache_dir=null"]
    port, jobs = _free_port(), []
    for process in range(2):
        numbers = {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(process)}
        env = {**os.environ, "JAX_COORDINATOR_ADDRESS": f"localhost:{port}", **numbers}
        jobs.append(run_script(*overrides, f"hydra.run.dir={tmp_path / 'two'}", cwd=tmp_path, env=env))
    jobs.append(run_script(*overrides, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path))
    for job in jobs:
        _, stderr = job.communicate(timeout=480)
        assert job.returncode == 0, stderr[-3000:]
    folders = [tmp_path / "two", tmp_path / "two" / "process1", tmp_path / "one"]
    summaries = [json.loads((folder / "metrics.json").read_text()) for folder in folders]
    assert summaries[0]["test_auc"] == summaries[1]["test_auc"]
    for key in ("test_auc", "test_log_loss", "val_count_nll"):
        assert abs(summaries[0][key] - summaries[2][key]) < 1e-3, key
    assert not (folders[1] / "encoder").exists()  # the first process's is the run's
    x = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    logits = [np.asarray(load_encoder(folder)(x)[0]) for folder in (folders[0], folders[2])]
    # summed over 2 devices the gradients differ by float32 rounding, which training carries on: 1.1e-3
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-2)


if __name__ == "__main__":
    print(json.dumps(_run_checks()))
