"""Methods, one module each, registered by name (llp_jax.methods.registry):

    METHODS["dllp"].fit(data, train_bags, val_bags, settings, key, log) -> TrainResult

Importing the package imports every method module, which registers it.
"""

import importlib
import pkgutil

from llp_jax.methods.common import FitSettings
from llp_jax.methods.registry import METHODS, Method, register

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "FitSettings", "Method", "register"]
