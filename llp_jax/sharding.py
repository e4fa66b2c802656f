"""Several devices: the instance axis over a 1-D mesh of the visible devices.

With more than one device (8 GPUs of one process, or the devices of several processes joined by
jax.distributed.initialize), `use_devices("auto")` sets a mesh over all of them (axis AXIS) and the kNN
search, BP and training place their arrays through the helpers here; jit (GSPMD) partitions the work:

- kNN: each device scores its share of a block's queries against the whole corpus, held by every device.
- BP: the directed edges and the bags are split over the devices, each bag whole on one device (its count
  messages need all its members at once); the node vectors (fields, beliefs) are on every device, so an
  edge's sender or a bag's members are gathered locally, and the sums into the nodes are per-device sums
  added across the devices once an iteration.
- training: data-parallel; each device takes a share of a batch's bags, parameters are on every device
  and the gradients are summed across them.

Without a mesh (one device, or shard=off) every helper returns its argument as it is: no padding, no
copies, the programs of one device. Sharded results equal one device's up to the order of floating-point
sums (float32 rounding).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from importlib.metadata import distributions
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

if TYPE_CHECKING:  # annotations only: the BP package imports this module
    from llp_jax.bp.problem import BPProblem

AXIS = "instances"
SHARD_MODES = ("auto", "off")
logger = logging.getLogger("llp_jax")


def device_mesh(devices=None) -> Mesh:
    """A 1-D mesh (axis AXIS, GSPMD's automatic partitioning) over `devices` (None: jax.devices(), every
    process's)."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (AXIS,), axis_types=(AxisType.Auto,))


def check_shard(shard: str) -> None:
    """ValueError naming `shard` unless it is one of SHARD_MODES."""
    if shard not in SHARD_MODES:
        raise ValueError(
            f"shard={shard!r}; choose one of {SHARD_MODES} (auto: every visible device when there are "
            "several; off: one device)"
        )


def mesh_for(shard: str) -> Mesh | None:
    """The mesh the setting `shard` asks for: "auto", every visible device when there are several (None
    with one); "off", None (one device). ValueError for any other value."""
    check_shard(shard)
    if shard == "off" or jax.device_count() == 1:
        return None
    return device_mesh()


@contextlib.contextmanager
def use_devices(shard: str = "auto") -> Iterator[Mesh | None]:
    """Within it, the kNN search, BP and training run over the mesh `mesh_for(shard)` (as it is without a
    mesh); yields the mesh."""
    mesh = mesh_for(shard)
    if mesh is None:
        yield None
        return
    logger.info(
        "sharding the instance axis over %d devices (%d processes): %s",
        mesh.size,
        jax.process_count(),
        ", ".join(sorted({device.device_kind for device in mesh.devices.flat})),
    )
    with jax.set_mesh(mesh):
        yield mesh


ACCELERATORS = ("gpu", "tpu")  # jax.Device.platform of an accelerator (CUDA and ROCm GPUs are "gpu")
# pip distributions of JAX's accelerator builds (jax[cuda12] installs jax-cuda12-plugin)
ACCELERATOR_BUILDS = ("jax-cuda", "jax-rocm", "libtpu")


def check_accelerator(required: bool, devices=None) -> None:
    """When `required` (the setting require_gpu), ValueError naming the cause and the fix unless one of
    `devices` (None: jax.devices()) is a GPU or TPU, so that a cluster job given a GPU that JAX cannot
    see fails at once rather than running for hours on the CPU; logs the accelerators it found."""
    if not required:
        return
    devices = jax.devices() if devices is None else devices
    accelerators = [device for device in devices if device.platform in ACCELERATORS]
    if accelerators:
        kinds = sorted({f"{device.platform} ({device.device_kind})" for device in accelerators})
        logger.info("require_gpu: JAX sees %d accelerator(s): %s", len(accelerators), ", ".join(kinds))
        return
    platforms = sorted({device.platform for device in devices})
    raise ValueError(
        f"require_gpu=true, but JAX sees no GPU or TPU, only {len(devices)} {'/'.join(platforms)} "
        f"device(s). {_no_accelerator_hint()} Or set require_gpu=false to run on the CPU."
    )


def _no_accelerator_hint() -> str:
    """Why JAX likely found no accelerator here, and the fix."""
    platforms = os.environ.get("JAX_PLATFORMS")
    if platforms and not set(platforms.lower().split(",")) & {"cuda", "gpu", "rocm", "tpu"}:
        return f"JAX_PLATFORMS={platforms} keeps JAX off the accelerators: unset it."
    builds = sorted(
        name
        for name in {(dist.metadata["Name"] or "").lower().replace("_", "-") for dist in distributions()}
        if name.startswith(ACCELERATOR_BUILDS)
    )
    if not builds:
        return (
            f"This Python ({sys.executable}) has JAX's CPU build only: install the CUDA build into the "
            'environment the jobs run (pip install -e ".[gpu]", which is jax[cuda12]).'
        )
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (
        f"JAX's accelerator build is installed ({', '.join(builds)}) but found no device: check that the "
        "job was given a GPU (hydra.launcher.gpus_per_node; nvidia-smi inside the job"
        + (f"; CUDA_VISIBLE_DEVICES={visible}" if visible is not None else "")
        + ") and that the node's driver is loaded (the cluster's module lines: hydra.launcher.setup)."
    )


def n_shards() -> int:
    """The devices of the active mesh, 1 without one (inside or outside jit)."""
    mesh = jax.sharding.get_abstract_mesh()
    return 1 if mesh.empty else mesh.size


def constrain_rows(tree: Any) -> Any:
    """Inside jit: every array of `tree` split along its leading axis over the active mesh (no-op without
    one). The length need not divide by the devices: XLA pads the last share."""
    if n_shards() == 1:
        return tree
    return jax.lax.with_sharding_constraint(tree, P(AXIS))


def constrain_replicated(tree: Any) -> Any:
    """Inside jit: every array of `tree` whole on every device of the active mesh (no-op without one), so
    that any process can read it back to the host."""
    if n_shards() == 1:
        return tree
    return jax.lax.with_sharding_constraint(tree, P())


def replicate(tree: Any) -> Any:
    """Every array of `tree` copied once onto each device of the active mesh (as it is without one), so
    that the compiled steps that read it do not copy it again at every call."""
    if n_shards() == 1:
        return tree
    return jax.device_put(tree, NamedSharding(jax.sharding.get_mesh(), P()))


def shard_rows(array, axis: int = 0, fill=0) -> jax.Array:
    """array: [..., m, ...] -> [..., m + pad, ...] split along `axis` over the active mesh, padded with
    `fill` to a multiple of the devices (as it is without a mesh)."""
    shards = n_shards()
    if shards == 1:
        return array
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, -array.shape[axis] % shards)
    spec = P(*([None] * axis), AXIS)
    return jax.device_put(
        np.pad(np.asarray(array), pad, constant_values=fill), NamedSharding(jax.sharding.get_mesh(), spec)
    )


def shard_problem(problem: BPProblem) -> BPProblem:
    """A BP problem over the active mesh (as it is without one): directed edges (axis 1 of senders,
    receivers, couplings) and bags (axis 0 of bag_members, bag_mask, bag_counts) split over the devices,
    node vectors (field, reach) on every device. Padding changes no marginal: a padding edge joins node 0
    to itself with coupling 0, whose messages are 0; a padding bag has no members and count 0."""
    if n_shards() == 1:
        return problem
    edges = {
        name: shard_rows(getattr(problem, name), axis=1) for name in ("senders", "receivers", "couplings")
    }
    return problem._replace(
        field=replicate(problem.field),
        reach=replicate(problem.reach),
        bag_members=shard_rows(problem.bag_members),
        bag_mask=shard_rows(problem.bag_mask, fill=False),
        bag_counts=shard_rows(problem.bag_counts),
        **edges,
    )
