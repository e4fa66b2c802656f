"""The registry of methods: a name -> its fit function and the settings type it reads.

Every method's fit has one signature:

    fit(data: Dataset, train_bags: Bags, val_bags: Bags, settings: FitSettings (or a subclass),
        key: jax.Array, log: Callable[[dict], None]) -> TrainResult

A method module registers itself with `@register("name", SettingsType)`; llp_jax.methods imports every
module of the package, so a new method is its module plus its configs/method/<name>.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from llp_jax.methods.common import FitSettings


class Method(NamedTuple):
    """fit: the method's fit function; settings: the FitSettings type it reads (its fields beyond model
    and train are config groups of their own, e.g. llp_bp's graph, bp and schedule)."""

    fit: Callable
    settings: type[FitSettings]


METHODS: dict[str, Method] = {}


def register(name: str, settings: type[FitSettings] = FitSettings) -> Callable[[Callable], Callable]:
    """Decorator: register `fit` under `name` with its settings type."""

    def decorate(fit: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice ({METHODS[name].fit} and {fit})")
        METHODS[name] = Method(fit, settings)
        return fit

    return decorate
