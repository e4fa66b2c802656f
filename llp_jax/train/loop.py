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


class _Bucket(NamedTuple):
    """The training bags of one padded width: index int[n] (which bags), their members int32[n, width] and
    BagBatch on the device; per_batch bags make one batch."""

    index: np.ndarray
    members: jax.Array
    data: BagBatch
    per_batch: int


def bucket_widths(sizes: np.ndarray) -> np.ndarray:
    """int[n_bags]: the padded width each bag trains at. One width, the largest bag's, unless padding
    to it would more than double the work (bags of very unequal sizes, as feature bags are); then each
    bag's size rounded up to a power of two, so that a batch of small bags is not padded to the largest."""
    widest = int(sizes.max())
    if 2 * sizes.sum() >= len(sizes) * widest:
        return np.full(len(sizes), widest)
    return np.minimum(2 ** np.ceil(np.log2(sizes)).astype(int), widest)


def _buckets(bags: Bags, targets: np.ndarray, widths: np.ndarray, batch_size: int) -> list[_Bucket]:
    """One _Bucket per distinct width, in increasing width; targets: float32[n_rows] instance targets."""
    buckets = []
    for width in np.unique(widths):
        index = np.flatnonzero(widths == width)
        members = bags.members[index, :width]
        data = BagBatch(
            mask=jnp.asarray(bags.mask[index, :width]),
            proportions=jnp.asarray(bags.proportions[index]),
            sizes=jnp.asarray(bags.sizes[index]),
            targets=jnp.asarray(targets[members]),
        )
        per_batch = int(min(len(index), max(1, batch_size // width)))
        buckets.append(_Bucket(index, jnp.asarray(members), data, per_batch))
    return buckets


def _make_step(graphdef, tx: optax.GradientTransformation, loss: BagLoss):
    """A jitted optimiser step on the bags bag_index: int32[per_batch] of one bucket, gathered on the device.

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


def _epoch_batches(key: jax.Array, n_bags: int, buckets: list[_Bucket]) -> list[tuple[int, np.ndarray]]:
    """One epoch's batches as (bucket, int32[per_batch] bag indices within it), from one shuffle of all
    bags: each bucket's bags in shuffled order, cut into batches, the batches in the order of their first
    bag. The bags left over in each bucket (fewer than its per_batch) sit out this epoch."""
    position = np.empty(n_bags, np.int64)
    position[np.asarray(jax.random.permutation(key, n_bags))] = np.arange(n_bags)
    batches = []
    for bucket_index, bucket in enumerate(buckets):
        shuffled = np.argsort(position[bucket.index]).astype(np.int32)
        n_batches = len(shuffled) // bucket.per_batch
        for chunk in shuffled[: n_batches * bucket.per_batch].reshape(n_batches, bucket.per_batch):
            batches.append((position[bucket.index[chunk[0]]], bucket_index, chunk))
    return [(bucket_index, bag_index) for _, bucket_index, bag_index in sorted(batches, key=lambda b: b[0])]


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
    widths = bucket_widths(train_bags.sizes)
    buckets = _buckets(train_bags, np.asarray(targets, np.float32), widths, settings.batch_size)
    graphdef, params = nnx.split(model)
    tx = optax.adamw(settings.learning_rate, weight_decay=settings.weight_decay)
    opt_state = tx.init(params)
    step_fn = _make_step(graphdef, tx, loss)
    x_device = jnp.asarray(x_train)

    best = (np.inf, params, 0)
    history = []
    bar = tqdm(range(1, settings.epochs + 1), desc="epochs", disable=not settings.progress, leave=False)
    for epoch in bar:
        start = time.perf_counter()
        step_losses = []
        for bucket_index, bag_index in _epoch_batches(
            jax.random.fold_in(key, epoch), train_bags.n_bags, buckets
        ):
            bucket = buckets[bucket_index]
            params, opt_state, value = step_fn(
                params, opt_state, bag_index, x_device, bucket.members, bucket.data
            )
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
