"""Degenerate but legal setups: a run that can finish but can hardly learn (one training bag, bags of one
class, a categorical column of a thousand levels) warns rather than fails.

    warn_degenerate("the train split has 1 bag ...")   # a subsystem's check: warns and logs
    with strict_setups(run.strict): ...                 # the application layer: strict=true makes it an error

Each warning is a DegenerateWarning (a UserWarning, so that `python -W error::UserWarning` also stops the
run) and a WARNING line of the `llp_jax` logger; under `strict_setups(True)` the first one raises
DegenerateSetupError (a ValueError) instead, before anything trains.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("llp_jax")


class DegenerateWarning(UserWarning):
    """A setup that is legal but leaves the run little or nothing to learn from."""


class DegenerateSetupError(ValueError):
    """A DegenerateWarning under strict=true."""


def warn_degenerate(message: str) -> None:
    """Warn (DegenerateWarning) and log `message`, which names the value and the fix."""
    warnings.warn(message, DegenerateWarning, stacklevel=2)
    logger.warning(message)


@contextmanager
def strict_setups(strict: bool) -> Iterator[None]:
    """Inside, with strict, the first DegenerateWarning raises DegenerateSetupError with its message."""
    if not strict:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateWarning)
        try:
            yield
        except DegenerateWarning as warning:
            raise DegenerateSetupError(
                f"{warning} (strict=true turns this warning into an error; set strict=false to run anyway)"
            ) from None
