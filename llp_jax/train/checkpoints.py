"""Checkpoints of a run's fits, so that a killed run resumes where it was and ends as it would have.

A run is a deterministic sequence of fits (one call of `train_encoder` each: a method's training, or each
LLP-BP round and its warm start). While a `RunCheckpoints` is active (`checkpointing`), every fit takes the
next `FitCheckpoints` in order, fit0, fit1, ..., and saves its state with orbax's CheckpointManager
(atomic, the latest kept) every `every` epochs and when it ends. A resumed run replays the sequence:
a finished fit is restored instead of trained, an unfinished one continues from its checkpoint, and
everything in between (graphs, BP) is computed again, which gives the same numbers.

progress.json records how many metric records the run had logged at its latest checkpoint; a resumed
run keeps those lines of metrics.jsonl and regenerates the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from llp_jax.preemption import uninterrupted
from llp_jax.sharding import replicate

PROGRESS_FILE = "progress.json"


class FitCheckpoint(NamedTuple):
    """A fit's saved state: epoch (the last epoch run), the optimiser state `state` (a TrainState), the
    best epoch's (epoch, selection_loss, params), the history of epoch records, and whether the fit
    ended."""

    epoch: int
    state: Any
    best: Any
    history: list[dict]
    done: bool


class FitCheckpoints:
    """The checkpoints of one fit, in `folder` (one orbax step per saved epoch, the latest kept)."""

    def __init__(self, folder: Path, every: int, on_save: Callable[[], None]):
        self.folder, self.every, self._on_save = folder, every, on_save
        self._manager = None

    def due(self, epoch: int) -> bool:
        """Whether epoch ends an interval of `every` epochs (every = 0: only when the fit ends)."""
        return self.every > 0 and epoch % self.every == 0

    def save(self, epoch: int, state, best, history: list[dict], done: bool) -> None:
        """Save state (TrainState), best (BestEpoch) and the history after `epoch`, and wait for it. Of
        several processes of one run only the first writes (the others hold the same replicated state and
        restore from its folder)."""
        if jax.process_index() > 0:
            return
        ocp = orbax_checkpoint()
        tree = jax.device_get(  # host copies, which every process can read back (`process_local`)
            {"params": state.params, "opt_state": state.opt_state, "best_params": best.params}
        )
        meta = {"epoch": epoch, "best_epoch": best.epoch, "best_loss": best.selection_loss}
        meta |= {"history": history, "done": done}
        args = ocp.args.Composite(state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta))
        with uninterrupted():  # a SIGTERM meanwhile stops the run after the save and its progress record
            self._manager_().save(epoch, args=args)
            self._manager_().wait_until_finished()
            self._on_save()

    def restore(self, template) -> FitCheckpoint | None:
        """The latest checkpoint, its arrays laid out like template (the fit's fresh TrainState); None
        where the fit has none."""
        manager = self._manager_()
        step = manager.latest_step()
        if step is None:
            return None
        ocp = orbax_checkpoint()
        tree = {"params": template.params, "opt_state": template.opt_state, "best_params": template.params}
        host = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), tree)  # as saved: host arrays
        args = ocp.args.Composite(state=ocp.args.StandardRestore(host), meta=ocp.args.JsonRestore())
        restored = manager.restore(step, args=args)
        tree, meta = replicate(restored["state"]), restored["meta"]  # several devices: on each, once
        state = type(template)(tree["params"], tree["opt_state"])
        best = (meta["best_epoch"], meta["best_loss"], tree["best_params"])
        return FitCheckpoint(meta["epoch"], state, best, meta["history"], meta["done"])

    def _manager_(self):
        if self._manager is None:
            ocp = orbax_checkpoint()
            # orbax refuses create=True with `process_local`'s active_processes
            self.folder.mkdir(parents=True, exist_ok=True)
            options = ocp.CheckpointManagerOptions(
                max_to_keep=1, create=False, multiprocessing_options=process_local()
            )
            self._manager = ocp.CheckpointManager(self.folder.resolve(), options=options)
        return self._manager


class RunCheckpoints:
    """The fits of one run, in order, under `folder` (fit0, fit1, ...). records() tells how many metric
    records the run has logged; each save writes it to progress.json."""

    def __init__(self, folder: Path, every: int, records: Callable[[], int]):
        self.folder, self.every, self._records = folder, every, records
        self._fits = 0

    def next_fit(self) -> FitCheckpoints:
        fit = FitCheckpoints(self.folder / f"fit{self._fits}", self.every, self._write_progress)
        self._fits += 1
        return fit

    def _write_progress(self) -> None:
        partial = self.folder / (PROGRESS_FILE + ".tmp")
        partial.write_text(json.dumps({"records": self._records()}))
        os.replace(partial, self.folder / PROGRESS_FILE)  # atomic: a kill leaves the old or the new


def records_covered(folder: Path) -> int:
    """How many metric records the latest checkpoint under folder covers (0 without checkpoints)."""
    progress = folder / PROGRESS_FILE
    return json.loads(progress.read_text())["records"] if progress.exists() else 0


_ACTIVE: ContextVar[RunCheckpoints | None] = ContextVar("llp_jax_run_checkpoints", default=None)


@contextmanager
def checkpointing(checkpoints: RunCheckpoints) -> Iterator[None]:
    """Within the block, every fit (`next_fit_checkpoints`) saves into `checkpoints`."""
    token = _ACTIVE.set(checkpoints)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def next_fit_checkpoints() -> FitCheckpoints | None:
    """The checkpoints of the next fit of the active run; None outside `checkpointing`."""
    checkpoints = _ACTIVE.get()
    return None if checkpoints is None else checkpoints.next_fit()


def process_local():
    """orbax's MultiprocessingOptions for a checkpoint that this process writes or reads alone. Of several
    processes of one run (README, Several devices) the first writes the replicated state as host arrays and
    every process reads it back. Under orbax's default, one checkpoint written by all processes together,
    process 1 waited for process 0 to create a folder and timed out after 600 s (two CPU processes,
    debug=fast); written by each process into its own folder, process 1's held no arrays (orbax writes
    host arrays from process 0 only). One process: orbax's default."""
    options = orbax_checkpoint().options.MultiprocessingOptions
    if jax.process_count() == 1:
        return options()
    return options(primary_host=jax.process_index(), active_processes={jax.process_index()})


def orbax_checkpoint():
    """orbax.checkpoint, imported when first needed: its import adds a handler to the root logger, which
    made Hydra's --info print every line twice, and it slows a --help."""
    import orbax.checkpoint

    return orbax.checkpoint
