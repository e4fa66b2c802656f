"""SIGTERM during a run raises Preempted; submitit's own handlers stay in charge under submitit."""

import signal

import pytest

from llp_jax.preemption import (
    PREEMPTED_EXIT_STATUS,
    Preempted,
    preemption_signals,
    submitit_signal,
    uninterrupted,
)


def test_sigterm_raises_preempted_inside_the_block_only():
    assert PREEMPTED_EXIT_STATUS == 143
    with (
        pytest.raises(Preempted, match="SIGTERM received.*train.resume=true"),
        preemption_signals() as signals,
    ):
        signal.raise_signal(signal.SIGTERM)
    assert signals.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # restored


def test_a_second_sigterm_does_not_cut_the_record_short():
    with pytest.raises(Preempted), preemption_signals():
        try:
            signal.raise_signal(signal.SIGTERM)
        finally:  # the run writes its failed.json here: a second SIGTERM raises nothing
            signal.raise_signal(signal.SIGTERM)


def test_a_checkpoint_being_written_is_finished_before_the_run_stops():
    written = []
    with pytest.raises(Preempted), preemption_signals():
        with uninterrupted():  # as FitCheckpoints.save writes a checkpoint and its progress record
            signal.raise_signal(signal.SIGTERM)
            written.append("checkpoint")
            with uninterrupted():
                written.append("progress.json")
            written.append("done")
        written.append("after")  # never reached
    assert written == ["checkpoint", "progress.json", "done"]
    with uninterrupted():  # nothing pending: nothing raised
        pass


def test_submitits_handlers_stay_in_charge(monkeypatch):
    """Under submitit SIGTERM is bypassed and the preemption signal (USR2) requeues and exits: both handlers
    run as submitit set them; the preemption signal is noted on the way."""
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    seen = []

    def bypass(number, frame):
        seen.append(signal.Signals(number).name)

    def checkpoint_and_try_requeue(number, frame):
        seen.append(signal.Signals(number).name)
        raise SystemExit(-1)  # submitit's exit after `scontrol requeue`

    before = {
        signal.SIGTERM: signal.getsignal(signal.SIGTERM),
        signal.SIGUSR2: signal.getsignal(signal.SIGUSR2),
    }
    signal.signal(signal.SIGTERM, bypass)
    signal.signal(submitit_signal(), checkpoint_and_try_requeue)
    try:
        with pytest.raises(SystemExit), preemption_signals() as signals:
            signal.raise_signal(signal.SIGTERM)  # bypassed: the run goes on
            assert signals.received is None
            with uninterrupted():  # a checkpoint being written: submitit's handler waits for its end
                signal.raise_signal(signal.SIGUSR2)
                assert seen == ["SIGTERM"] and signals.received == "SIGUSR2"
        assert seen == ["SIGTERM", "SIGUSR2"]
        assert signal.getsignal(signal.SIGUSR2) is checkpoint_and_try_requeue  # restored
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)
