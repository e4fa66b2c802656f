"""Methods, one module each, all with the same signature:

    fit(data: Dataset, train_bags: Bags, val_bags: Bags, cfg: DictConfig, seed: int,
        log: Callable[[dict], None]) -> TrainResult

where cfg is the whole run config (llp_jax.config.Config): each method reads the groups it needs.
"""

from llp_jax.methods import dllp, easyllp, llp_bp, supervised

METHODS = {"supervised": supervised.fit, "dllp": dllp.fit, "easyllp": easyllp.fit, "llp_bp": llp_bp.fit}
