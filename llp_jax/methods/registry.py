"""The registry of methods: a name -> its fit function and the settings type it reads.

Every method's fit has one signature:

    fit(data: Dataset, train_bags: Bags, val_bags: Bags, settings: FitSettings (or a subclass),
        key: jax.Array, log: Callable[[dict], None]) -> TrainResult

A method module registers itself with `@register("name", SettingsType, multiclass=...)` (whether it trains
on K > 2 classes); llp_jax.methods imports every module of the package, so a new method is its module plus
its configs/method/<name>.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from llp_jax.methods.common import FitSettings


class Method(NamedTuple):
    """fit: the method's fit function; settings: the FitSettings type it reads (its fields beyond model
    and train are config groups of their own, e.g. llp_bp's graph, bp and schedule); multiclass: whether
    it trains on K > 2 classes (bags with count vectors), or on two only."""

    fit: Callable
    settings: type[FitSettings]
    multiclass: bool = False


METHODS: dict[str, Method] = {}


def register(
    name: str, settings: type[FitSettings] = FitSettings, multiclass: bool = False
) -> Callable[[Callable], Callable]:
    """Decorator: register `fit` under `name` with its settings type and whether it takes K > 2 classes."""

    def decorate(fit: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"method {name!r} is registered twice ({METHODS[name].fit} and {fit})")
        METHODS[name] = Method(fit, settings, multiclass)
        return fit

    return decorate


def check_method_classes(name: str, n_classes: int) -> None:
    """ValueError, before anything trains, when the method `name` cannot train on n_classes classes."""
    if n_classes > 2 and not METHODS[name].multiclass:
        takers = sorted(method for method, entry in METHODS.items() if entry.multiclass)
        raise ValueError(
            f"method={name} trains on two classes only and these data have {n_classes}; choose one of "
            f"{takers} (method=dllp, say), or binary labels (e.g. dataset.classes=binary for fashion_mnist)"
        )
