"""Seconds a run spends compiling, by stage: what JAX reports through jax.monitoring.

A small experiment on a GPU is mostly compilation (benchmarks/RESULTS.md, "GPU"): these figures say how
much, and where (training steps, the kNN graph, BP, evaluation), so that a sweep can check that its later
jobs reuse what the first compiled. Compiling here is JAX's three timed steps of a jit: tracing to a
jaxpr, lowering to an MLIR module and the backend's compile (or its read from the persistent compilation
cache). Nested jits trace inside their caller's trace, so the seconds of a stage are the length of the
union of those steps' time spans, never a span counted twice.

Usage: `with compile_clock() as clock:` around the run, `with compile_stage("bp"):` around a stage (the
innermost stage wins; compilation outside every stage is "other"); `clock.seconds()` the totals so far.
The stage is a context variable: a compilation in another thread (none of the run's) counts as "other".
"""

import contextvars
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from jax import monitoring

COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)
STAGES = ("train", "graph", "bp", "evaluate", "other")  # the keys of CompileClock.seconds, then "total"

_stage = contextvars.ContextVar("llp_jax_compile_stage", default="other")


@contextmanager
def compile_stage(name: str) -> Iterator[None]:
    """Compilation inside the block counts toward stage `name` (one of STAGES)."""
    if name not in STAGES:
        raise ValueError(f"compile stage {name!r}; choose one of {list(STAGES)}")
    token = _stage.set(name)
    try:
        yield
    finally:
        _stage.reset(token)


class CompileClock:
    """The time spans of compile steps, by the stage they happened in (from a jax.monitoring listener)."""

    def __init__(self) -> None:
        self._spans: dict[str, list[tuple[float, float]]] = defaultdict(list)

    def record(self, event: str, start: float, end: float, **_: object) -> None:
        """jax.monitoring's time-span callback: keeps the spans of COMPILE_EVENTS."""
        if event in COMPILE_EVENTS:
            self._spans[_stage.get()].append((start, end))

    def seconds(self) -> dict[str, float]:
        """Seconds spent compiling in each of STAGES, and their "total" (the union of all spans)."""
        totals = {stage: union_length(self._spans.get(stage, [])) for stage in STAGES}
        totals["total"] = union_length([span for spans in self._spans.values() for span in spans])
        return totals


def union_length(spans: list[tuple[float, float]]) -> float:
    """The length of the union of intervals [start, end] (seconds): overlapping spans count once."""
    length, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            length += end - max(start, reach)
            reach = end
    return length


@contextmanager
def compile_clock() -> Iterator[CompileClock]:
    """A CompileClock listening to JAX's compile events while the block runs."""
    clock = CompileClock()
    monitoring.register_event_time_span_listener(clock.record)
    try:
        yield clock
    finally:
        monitoring.unregister_event_time_span_listener(clock.record)
