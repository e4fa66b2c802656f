"""The training loop shared by every method: AdamW over batches of whole bags, early stopping and model
selection on the validation bags (or, by explicit option, on validation instance labels)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from llp_jax.config import TrainConfig
from llp_jax.data.bags import Bags
from llp_jax.train.losses import bag_proportion_bce
from llp_jax.train.metrics import roc_auc


class BagBatch(NamedTuple):
    """What a loss sees of one batch of bags.

    mask: bool[b, m]; proportions: float32[b]; sizes: int32[b];
    targets: float32[b, m] instance targets (true labels, pseudo-labels or zeros where a method has none).
    """

    mask: jax.Array
    proportions: jax.Array
    sizes: jax.Array
    targets: jax.Array


# loss(model, logits float32[b, m], embedding float32[b, m, e], batch) -> scalar; the model is passed for
# losses with parameters of their own beyond the encoder's outputs (a bag-level head).
BagLoss = Callable[[nnx.Module, jax.Array, jax.Array, BagBatch], jax.Array]


SELECTION_CRITERIA = ("val_bags", "val_instances")


class TrainResult(NamedTuple):
    model: nnx.Module
    history: list[dict]
    best_epoch: int
    selection: str


@partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, x):
    return nnx.merge(graphdef, state)(x)


def predict(model: nnx.Module, x: np.ndarray, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Run the encoder over x in chunks: (logits float32[n], embedding float32[n, e]) as host arrays."""
    graphdef, state = nnx.split(model)
    logits, embeddings = [], []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        chunk_logits, chunk_embedding = _forward(graphdef, state, jnp.asarray(padded))
        logits.append(np.asarray(chunk_logits[: len(chunk)]))
        embeddings.append(np.asarray(chunk_embedding[: len(chunk)]))
    return np.concatenate(logits), np.concatenate(embeddings)


def bags_per_batch(bags: Bags, batch_size: int) -> int:
    """How many whole bags make a batch of about batch_size instances (at least one bag)."""
    return int(min(bags.n_bags, max(1, batch_size // bags.max_size)))


def _make_step(graphdef, tx: optax.GradientTransformation, loss: BagLoss):
    """A jitted optimiser step on the bags bag_index: int32[bags_per_batch], gathered on the device.

    Epochs loop over it on the host rather than in a lax.scan: inside XLA's CPU while loop a convolution
    ran 10x slower than the same step called on its own, and per-step dispatch costs little elsewhere.
    """

    def step(params, opt_state, bag_index, x, members, batch_data: BagBatch):
        per_batch, max_size = bag_index.shape[0], members.shape[1]
        batch = jax.tree.map(lambda a: a[bag_index], batch_data)
        inputs = x[members[bag_index].reshape(-1)]

        def loss_of(p):
            model = nnx.merge(graphdef, p)
            logits, embedding = model(inputs)
            embedding = embedding.reshape(per_batch, max_size, -1)
            return loss(model, logits.reshape(per_batch, max_size), embedding, batch)

        value, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return jax.jit(step)


def _batch_order(key: jax.Array, n_bags: int, per_batch: int) -> jax.Array:
    """A shuffle of the bags cut into int32[n_batches, per_batch]; the n_bags % per_batch left over sit
    out this epoch."""
    n_batches = n_bags // per_batch
    return jax.random.permutation(key, n_bags)[: n_batches * per_batch].reshape(n_batches, per_batch)


def _selection_score(
    model: nnx.Module, x_val: np.ndarray, val_bags: Bags, y_val: np.ndarray | None, settings: TrainConfig
) -> dict[str, float]:
    """Validation numbers of one epoch; `selection_loss` is what model selection minimises."""
    logits, _ = predict(model, x_val, settings.eval_batch_size)
    bag_logits = jnp.asarray(logits)[val_bags.members]
    val_bag_loss = float(bag_proportion_bce(bag_logits, val_bags.mask, jnp.asarray(val_bags.proportions)))
    scores = {"val_bag_loss": val_bag_loss, "selection_loss": val_bag_loss}
    if settings.select_on == "val_instances":
        scores["val_instance_auc"] = roc_auc(y_val, logits)
        scores["selection_loss"] = -scores["val_instance_auc"]
    return scores


def train_encoder(
    model: nnx.Module,
    loss: BagLoss,
    x_train: np.ndarray,
    train_bags: Bags,
    instance_targets: np.ndarray | None,
    x_val: np.ndarray,
    val_bags: Bags,
    settings: TrainConfig,
    key: jax.Array,
    log: Callable[[dict], None] = lambda record: None,
    y_val: np.ndarray | None = None,
) -> TrainResult:
    """Train `model` on batches of whole training bags; keep the parameters of the best validation epoch.

    x_train: float32[n_train, *f]; instance_targets: float32[n_train] or None (zeros are passed to the loss);
    x_val: float32[n_val, *f]; y_val: int[n_val], needed only when settings.select_on == "val_instances".
    Stops after `patience` epochs without improvement. Each epoch's record goes to `log`.
    """
    _check_settings(settings, y_val)
    targets = np.zeros(len(x_train), np.float32) if instance_targets is None else instance_targets
    batch_data = BagBatch(
        mask=jnp.asarray(train_bags.mask),
        proportions=jnp.asarray(train_bags.proportions),
        sizes=jnp.asarray(train_bags.sizes),
        targets=jnp.asarray(np.asarray(targets, np.float32)[train_bags.members]),
    )
    graphdef, params = nnx.split(model)
    tx = optax.adamw(settings.learning_rate, weight_decay=settings.weight_decay)
    opt_state = tx.init(params)
    step_fn = _make_step(graphdef, tx, loss)
    per_batch = bags_per_batch(train_bags, settings.batch_size)
    x_device, members = jnp.asarray(x_train), jnp.asarray(train_bags.members)

    best = (np.inf, params, 0)
    history = []
    bar = tqdm(range(1, settings.epochs + 1), desc="epochs", disable=not settings.progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        step_losses = []
        for bag_index in _batch_order(jax.random.fold_in(key, epoch), train_bags.n_bags, per_batch):
            params, opt_state, value = step_fn(params, opt_state, bag_index, x_device, members, batch_data)
            step_losses.append(value)
        train_loss = float(jnp.mean(jnp.stack(step_losses)))
        if not np.isfinite(train_loss):
            raise FloatingPointError(
                f"training loss became {train_loss} at epoch {epoch}; lower train.learning_rate "
                f"(now {settings.learning_rate})"
            )
        scores = _selection_score(nnx.merge(graphdef, params), x_val, val_bags, y_val, settings)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            **scores,
            "epoch_time_s": time.perf_counter() - start,
        }
        history.append(record)
        log(record)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{scores['selection_loss']:.4f}")
        if scores["selection_loss"] < best[0]:
            best = (scores["selection_loss"], params, epoch)
        elif epoch - best[2] >= settings.patience:
            break
    bar.close()
    return TrainResult(nnx.merge(graphdef, best[1]), history, best[2], settings.select_on)


def _check_settings(settings: TrainConfig, y_val: np.ndarray | None) -> None:
    if settings.select_on not in SELECTION_CRITERIA:
        raise ValueError(f"train.select_on={settings.select_on!r}; choose one of {SELECTION_CRITERIA}")
    if settings.select_on == "val_instances" and y_val is None:
        raise ValueError(
            "train.select_on='val_instances' needs validation instance labels, and this dataset has none"
        )
    for name in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(settings, name) < 1:
            raise ValueError(f"train.{name}={getattr(settings, name)} must be at least 1")
    if settings.learning_rate <= 0:
        raise ValueError(f"train.learning_rate={settings.learning_rate} must be positive")
