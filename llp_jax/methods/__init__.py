"""Methods, one module each, all with the same signature:

fit(data: Dataset, train_bags: Bags, val_bags: Bags, model_config, train_config, method_config,
    seed: int, log: Callable[[dict], None]) -> TrainResult
"""

from llp_jax.methods import dllp, easyllp, supervised

METHODS = {"supervised": supervised.fit, "dllp": dllp.fit, "easyllp": easyllp.fit}
