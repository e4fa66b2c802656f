"""SIGTERM, and a cluster's preemption signal, during a run: a record in the run folder, not a silent death.

SLURM sends a job SIGTERM when it preempts or cancels it and at its time limit, and SIGKILL KillWait
seconds later (30 s by default). Python's default for SIGTERM ends the process at once with status 143
(128 + 15) and no record: the run folder of a killed run looked like that of a running one. Within
`preemption_signals()`:

- SIGTERM, where no one else handles it (its handler is the default), raises `Preempted` in the main
  thread: the run stops where it is (a checkpoint being written is finished first: `uninterrupted`), its
  latest checkpoint stands (the training state is saved every train.checkpoint_every epochs and at the end
  of each fit; stopping at once keeps within SLURM's KillWait), llp_jax.experiment writes failed.json with
  `status: preempted`, and the command exits with status 143, as before, so that whatever requeues on it
  (slurm.conf's RequeueExit=143, a wrapper script) goes on working. `train.resume=true` (or a SLURM
  requeue, SLURM_RESTART_COUNT > 0) finishes the run with the numbers of an uninterrupted one.
- Under submitit (hydra/launcher=slurm or submitit_local) submitit's own handlers stay in charge: submitit
  (1.5) ignores SIGTERM (its handler only logs "Bypassing signal SIGTERM") and handles the preemption
  signal SUBMITIT_PREEMPT_SIGNAL (USR2 by default, sent signal_delay_s before the time limit, and on
  preemption where the cluster sets SlurmctldParameters=preempt_send_user_signal): it calls the
  launcher's `checkpoint` (hydra-submitit-launcher resubmits the same job), `scontrol requeue`s the job
  and exits (SystemExit(-1)), or raises UncompletedJobError past max_num_timeout. That handler is wrapped,
  not replaced: the signal is noted (`Signals.received`), submitit's handler runs as before (after a
  checkpoint being written, if any), and the run records `status: preempted` on its way out. The requeued
  job resumes by itself (SLURM_RESTART_COUNT > 0; submitit's local executor, which requeues by running the
  job again, finds its folder's run preempted: llp_jax.experiment).
- Outside the main thread (signal handlers can only be set there) nothing is changed.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The exit status of a preempted run: 128 + SIGTERM, what a shell reports for a process SIGTERM ended.
PREEMPTED_EXIT_STATUS = 128 + signal.SIGTERM


class Preempted(BaseException):
    """The run received SIGTERM. A BaseException, like KeyboardInterrupt, so that no `except Exception`
    on the way out swallows it."""

    def __init__(self, signal_name: str):
        super().__init__(
            f"{signal_name} received (preemption or cancellation): the run stopped, its latest checkpoint "
            "stands; resume it in its folder with the same command plus train.resume=true (a SLURM requeue "
            "resumes by itself)"
        )
        self.signal_name = signal_name


class _Deferral:
    """What a signal received inside `uninterrupted` blocks (depth > 0) does, pending until the outermost
    block ends: raise Preempted, or run submitit's handler."""

    depth = 0
    pending: Callable[[], object] | None = None


@contextmanager
def uninterrupted() -> Iterator[None]:
    """Within the block a SIGTERM, or submitit's preemption signal (under `preemption_signals`), waits for
    the block's end and acts there (Preempted, or submitit's requeue and exit): a checkpoint being written
    (llp_jax.train.checkpoints) is finished, with its progress record, before the run stops, rather than
    cut off midway."""
    _Deferral.depth += 1
    try:
        yield
    finally:
        _Deferral.depth -= 1
    if _Deferral.depth == 0 and _Deferral.pending is not None:
        action, _Deferral.pending = _Deferral.pending, None
        action()


class Signals:
    """What `preemption_signals` saw: `received`, the name of the first preemption signal (None: none)."""

    def __init__(self) -> None:
        self.received: str | None = None


def submitit_signal() -> int:
    """The signal submitit takes for preemption and timeouts: SIG + $SUBMITIT_PREEMPT_SIGNAL, USR2 by
    default (submitit.JobEnvironment.USR_SIG); SIGTERM where the platform has neither (no USR2 on
    Windows), which then is left as it is."""
    name = "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")
    return getattr(signal, name, getattr(signal, "SIGUSR2", signal.SIGTERM))


def _raise(error: BaseException) -> None:
    raise error


def later(action: Callable, *args) -> None:
    """action(*args) now, or at the end of the `uninterrupted` block being run (the first action only)."""
    if _Deferral.depth == 0:
        action(*args)
    elif _Deferral.pending is None:
        _Deferral.pending = functools.partial(action, *args)


@contextmanager
def preemption_signals() -> Iterator[Signals]:
    """Within the block, SIGTERM raises `Preempted` where its handler is the default, and a handler already
    set for submitit's preemption signal (`submitit_signal`) is wrapped so that the signal is noted before
    it runs; the handlers before the block are restored after it. Yields the `Signals` noted."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {number: signal.getsignal(number) for number in {signal.SIGTERM, submitit_signal()}}

    def stop(number, frame):  # the first SIGTERM stops the run; a second one must not cut its record short
        if signals.received is None:
            signals.received = signal.Signals(number).name
            later(_raise, Preempted(signals.received))

    def noted(handler):
        def note_then_handle(number, frame):
            signals.received = signals.received or signal.Signals(number).name
            later(handler, number, frame)

        return note_then_handle

    if previous[signal.SIGTERM] == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop)
    handler = previous[submitit_signal()]
    if callable(handler) and submitit_signal() != signal.SIGTERM:
        signal.signal(submitit_signal(), noted(handler))
    try:
        yield signals
    finally:
        _Deferral.pending = None
        for number, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python, which was never replaced
                signal.signal(number, handler)
