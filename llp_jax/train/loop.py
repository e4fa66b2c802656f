"""The training loop shared by every method: AdamW over batches of whole bags, early stopping and model
selection on the validation bags (or, by explicit option, on validation instance labels)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from llp_jax.compile_clock import compile_stage
from llp_jax.data.bags import Bags
from llp_jax.sharding import constrain_replicated, constrain_rows, replicate, shard_rows
from llp_jax.train.checkpoints import FitCheckpoints
from llp_jax.train.class_counts import bag_proportion_cross_entropy_per_bag, class_count_log_likelihood
from llp_jax.train.count_likelihood import count_log_likelihood
from llp_jax.train.losses import proportion_bce_per_bag
from llp_jax.train.metrics import ranking_auc
from llp_jax.train.settings import SelectOn, TrainSettings, check_train_settings


class BagBatch(NamedTuple):
    """What a loss sees of one batch of bags.

    mask: bool[b, m]; proportions: float32[b] (K classes: float32[b, K]); sizes: int32[b];
    targets: float32[b, m] (K classes: float32[b, m, K]) instance targets (true labels, pseudo-labels or
    zeros where a method has none).
    """

    mask: jax.Array
    proportions: jax.Array
    sizes: jax.Array
    targets: jax.Array


# loss(model, logits float32[b, m] (K classes: [b, m, K]), embedding float32[b, m, e], batch) -> scalar; the
# model is passed for
# losses with parameters of their own beyond the encoder's outputs (a bag-level head).
BagLoss = Callable[[nnx.Module, jax.Array, jax.Array, BagBatch], jax.Array]


class TrainInputs(NamedTuple):
    """x: float32[n, *f]; bags over its rows; targets: float32[n] (K classes: float32[n, K], class
    distributions) instance targets for the loss, or None (the loss then sees zeros)."""

    x: np.ndarray
    bags: Bags
    targets: np.ndarray | None = None


class ValInputs(NamedTuple):
    """x: float32[n_val, *f]; bags over its rows; labels: int[n_val], needed only to select on
    validation instances."""

    x: np.ndarray
    bags: Bags
    labels: np.ndarray | None = None


class TrainState(NamedTuple):
    """What an optimiser step updates: the model's parameters and AdamW's state."""

    params: nnx.State
    opt_state: optax.OptState


class BestEpoch(NamedTuple):
    """The epoch with the lowest selection loss so far (epoch 0: the initial parameters)."""

    epoch: int
    selection_loss: float
    params: nnx.State


class TrainResult(NamedTuple):
    """model: the best epoch's; history: one record per epoch run; selection: the SelectOn value used."""

    model: nnx.Module
    history: list[dict]
    best_epoch: int
    selection: str


@partial(jax.jit, static_argnums=0)
def _forward(graphdef, state, x):
    return constrain_replicated(nnx.merge(graphdef, state)(x))  # several devices: whole, for the host


def predict(model: nnx.Module, x: np.ndarray, batch_size: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Run the encoder over x in chunks: (logits float32[n] (K classes: [n, K]), embedding float32[n, e]) as
    host arrays."""
    graphdef, state = nnx.split(model)
    logits, embeddings = [], []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        # several devices: each runs its share of the rows
        chunk_logits, chunk_embedding = _forward(graphdef, state, shard_rows(padded))
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
    """One _Bucket per distinct width, in increasing width; targets: float32[n_rows] (K classes:
    float32[n_rows, K]) instance targets."""
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
        members, data = replicate((jnp.asarray(members), data))  # several devices: on each, once
        buckets.append(_Bucket(index, members, data, per_batch))
    return buckets


# step(params, opt_state, bag_index, x, members, batch_data) -> (params, opt_state, loss); see _make_step.
Step = Callable[..., tuple[nnx.State, optax.OptState, jax.Array]]


def _make_step(graphdef, tx: optax.GradientTransformation, loss: BagLoss) -> Step:
    """A jitted optimiser step on the bags bag_index: int32[per_batch] of one bucket, gathered on the device;
    loss_data: the loss's keyword arguments that are arrays (see `shared_step`), traced, not compiled in.

    Epochs loop over it on the host rather than in a lax.scan: inside XLA's CPU while loop a convolution
    ran 10x slower than the same step called on its own, and per-step dispatch costs little elsewhere.
    """

    def step(params, opt_state, bag_index, x, members, batch_data: BagBatch, loss_data: dict | None = None):
        per_batch, max_size = bag_index.shape[0], members.shape[1]
        bag_index = constrain_rows(bag_index)  # several devices: each a share of the batch's bags
        batch = jax.tree.map(lambda a: a[bag_index], batch_data)
        inputs = x[members[bag_index].reshape(-1)]

        def loss_of(p):
            model = nnx.merge(graphdef, p)
            logits, embedding = model(inputs)
            embedding = embedding.reshape(per_batch, max_size, -1)
            logits = logits.reshape(per_batch, max_size, *logits.shape[1:])  # K classes: a class axis last
            return loss(model, logits, embedding, batch, **(loss_data or {}))

        value, grads = jax.value_and_grad(loss_of)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        # several devices: the new parameters whole on each, as data parallelism needs
        return constrain_replicated((optax.apply_updates(params, updates), opt_state, value))

    return jax.jit(step)


def shared_step(graphdef, learning_rate: float, weight_decay: float, loss: BagLoss) -> Step:
    """`_make_step` with `_adamw(learning_rate, weight_decay)`, one per (encoder structure, optimiser
    settings, loss) in a process, so that fits alike reuse one compiled step: LLP-BP's rounds, and the
    jobs of a sweep run in one process (Hydra's basic launcher), compile it once. A loss is the same when
    it is the same function, or a functools.partial of it with equal arguments, where keyword arguments
    that are arrays (numpy or JAX, e.g. np.float32(prior)) are the fit's data: traced arguments of the
    step, so that a seed's other prior does not compile the step again; Python scalars are settings,
    compiled in (a loss may branch on them). One whose arguments cannot be hashed gets a step of its own.
    Returns step(params, opt_state, bag_index, x, members, batch_data)."""
    func, args, keywords = (
        (loss.func, loss.args, loss.keywords) if isinstance(loss, partial) else (loss, (), {})
    )
    loss_data = {
        name: value
        for name, value in keywords.items()
        if isinstance(value, (np.ndarray, np.generic, jax.Array))
    }
    settings = tuple(sorted((name, value) for name, value in keywords.items() if name not in loss_data))
    identity = (func, args, settings)
    try:
        hash(identity)
    except TypeError:  # compiled for this fit alone
        step = _cached_step.__wrapped__(graphdef, learning_rate, weight_decay, identity)
    else:
        step = _cached_step(graphdef, learning_rate, weight_decay, identity)
    return partial(step, loss_data=loss_data)


@lru_cache(maxsize=16)
def _cached_step(graphdef, learning_rate: float, weight_decay: float, identity: tuple) -> Step:
    func, args, keywords = identity
    loss = partial(func, *args, **dict(keywords)) if args or keywords else func
    return _make_step(graphdef, _adamw(learning_rate, weight_decay), loss)


def _adamw(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """The optimiser of every fit (its state made by `train_encoder`, its updates by the shared step)."""
    return optax.adamw(learning_rate, weight_decay=weight_decay)


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


def train_epoch(
    step: Step, state: TrainState, x: jax.Array, buckets: list[_Bucket], key: jax.Array
) -> tuple[TrainState, np.ndarray]:
    """One optimiser step per batch of one epoch (shuffled by `key`) over the bags of `buckets`, whose
    members index x: float32[n, *f] on the device. Returns the new state and the loss of each step,
    float32[n_steps], in the order taken."""
    n_bags = sum(len(bucket.index) for bucket in buckets)
    params, opt_state = state
    step_losses = []
    for bucket_index, bag_index in _epoch_batches(key, n_bags, buckets):
        bucket = buckets[bucket_index]
        # several devices: on each (left to the compiler, a 6-row index got a layout the mesh cannot name)
        bag_index = replicate(bag_index)
        params, opt_state, value = step(params, opt_state, bag_index, x, bucket.members, bucket.data)
        step_losses.append(value)
    return TrainState(params, opt_state), np.asarray(jnp.stack(step_losses))


class TrainingDiverged(FloatingPointError):
    """The training loss left every range a bounded loss can take (see check_training_loss)."""


# A loss bounded below (every cross-entropy against targets in [0, 1], every negative log-likelihood) stays
# above 0; EasyLLP's can fall without bound when its debiased targets leave [0, 1]. On adult at bags of 128
# it reached -5.5 while its validation AUC was still 0.87 (its published form, session 3); on natural bags
# of ~1,000 at a 0.9% positive rate it reached -2.7e5 in the first epoch and -1.2e6 by epoch 11 (issue 11).
DIVERGENCE_FACTOR = 1e3
# Upwards, the loss of a fit that trains leaves its first step's value behind within an epoch or two; ten
# times it (or 10 for a loss that starts below 1) means predictions confidently wrong on average: at
# learning rates of 10 and 1e6 debug=fast DLLP ended with validation losses of 4e6 and 5 to 11, from 0.69.
# Over the 363 fits of make results (issue 11) no epoch's loss exceeded 1.22 times max(1, the first's).
RISE_FACTOR = 10.0


def check_training_loss(
    train_loss: float, first_step_loss: float, epoch: int, settings: TrainSettings
) -> None:
    """Raise FloatingPointError if an epoch's mean training loss is not finite, and TrainingDiverged if it
    fell below -DIVERGENCE_FACTOR * max(1, |loss of the fit's first step|) (the logits then run off to
    magnitudes where the probabilities saturate, and no later epoch recovers) or rose above
    RISE_FACTOR * max(1, |loss of the first step|)."""
    if not np.isfinite(train_loss):
        raise FloatingPointError(
            f"training loss became {train_loss} at epoch {epoch}; lower train.learning_rate "
            f"(now {settings.learning_rate})"
        )
    floor = -DIVERGENCE_FACTOR * max(1.0, abs(first_step_loss))
    if train_loss < floor:
        raise TrainingDiverged(
            f"training diverged: the loss fell to {train_loss:.4g} at epoch {epoch}, below {floor:.4g} "
            f"({DIVERGENCE_FACTOR:g} times its first step's {first_step_loss:.4g}); the loss is unbounded "
            "below for these bags: train with a bounded one"
        )
    ceiling = RISE_FACTOR * max(1.0, abs(first_step_loss))
    if train_loss > ceiling:
        raise TrainingDiverged(
            f"training diverged: the loss rose to {train_loss:.4g} at epoch {epoch}, above {ceiling:.4g} "
            f"({RISE_FACTOR:g} times its first step's {first_step_loss:.4g}, or {RISE_FACTOR:g}); lower "
            f"train.learning_rate (now {settings.learning_rate})"
        )


def validation_bag_scores(logits: np.ndarray, bags: Bags) -> dict[str, np.ndarray]:
    """Each validation bag's criteria for logits float32[n_val]: "val_bag_loss", the proportion
    cross-entropy, and "val_count_nll", -log P(count) (Poisson-binomial), each float32[n_bags]. For K
    classes (logits float32[n_val, K], counts float32[n_bags, K]) the K-class proportion cross-entropy and
    minus the composite count log-likelihood (llp_jax.train.class_counts)."""
    bag_logits, mask = jnp.asarray(logits)[bags.members], jnp.asarray(bags.mask)
    proportions, counts = jnp.asarray(bags.proportions), jnp.asarray(bags.counts)
    if bag_logits.ndim == 3:
        bag_loss = bag_proportion_cross_entropy_per_bag(bag_logits, mask, proportions)
        count_ll = class_count_log_likelihood(bag_logits, mask, counts)
    else:
        bag_loss = proportion_bce_per_bag(bag_logits, mask, proportions)
        count_ll = count_log_likelihood(bag_logits, mask, counts)
    return {"val_bag_loss": np.asarray(bag_loss), "val_count_nll": -np.asarray(count_ll)}


def selection_scores(model: nnx.Module, val: ValInputs, settings: TrainSettings) -> dict[str, float]:
    """A model's validation numbers (means over the validation bags): val_bag_loss, val_count_nll (and
    val_instance_auc when selecting on validation instances), and `selection_loss`, the criterion
    settings.select_on names (lower is better), which model selection minimises. Computed for every epoch,
    and for the model a run returns (its metrics.json)."""
    logits, _ = predict(model, val.x, settings.eval_batch_size)
    scores = {
        name: float(np.mean(values)) for name, values in validation_bag_scores(logits, val.bags).items()
    }
    scores["selection_loss"] = scores["val_bag_loss"]
    if settings.select_on == SelectOn.val_count_nll:
        scores["selection_loss"] = scores["val_count_nll"]
    if settings.select_on == SelectOn.val_instances:
        scores["val_instance_auc"] = ranking_auc(val.labels, logits)
        scores["selection_loss"] = -scores["val_instance_auc"]
    return scores


@compile_stage("train")  # its compilation counts there
def train_encoder(
    model: nnx.Module,
    loss: BagLoss,
    train: TrainInputs,
    val: ValInputs,
    settings: TrainSettings,
    key: jax.Array,
    log: Callable[[dict], None] | None = None,
    checkpoints: FitCheckpoints | None = None,
) -> TrainResult:
    """Train `model` on batches of whole training bags; keep the parameters of the best validation epoch.

    Epoch e shuffles its batches with fold_in(key, e). Stops after `settings.patience` epochs without
    improvement of the selection loss. Each epoch's record goes to `log`. With `checkpoints` the state is
    saved every checkpoints.every epochs and at the end, and a saved state is resumed from: its epochs'
    records are logged again as they were, and a finished fit is not trained again.
    """
    check_train_settings(settings)
    if settings.select_on == SelectOn.val_instances and val.labels is None:
        raise ValueError(
            "train.select_on='val_instances' needs validation instance labels, and this dataset has none"
        )
    log = log or (lambda record: None)
    targets = train.targets
    if targets is None:  # K classes: a class axis, as the loss's batch.targets has
        targets = np.zeros((len(train.x), *([train.bags.n_classes] if train.bags.n_classes > 2 else [])))
    widths = bucket_widths(train.bags.sizes)
    buckets = _buckets(train.bags, np.asarray(targets, np.float32), widths, settings.batch_size)
    graphdef, params = nnx.split(model)
    tx = _adamw(settings.learning_rate, settings.weight_decay)
    state = replicate(TrainState(params, tx.init(params)))  # several devices: on each, once
    step = shared_step(graphdef, settings.learning_rate, settings.weight_decay, loss)
    x_device = replicate(jnp.asarray(train.x))

    best, history, first, done, first_step_loss = BestEpoch(0, np.inf, params), [], 1, False, None
    saved = checkpoints.restore(state) if checkpoints is not None else None
    if saved is not None:  # a resumed run: the epochs already run, logged again as they were
        state, best, history = saved.state, BestEpoch(*saved.best), saved.history
        first, done = saved.epoch + 1, saved.done
        for record in history:
            log(record)
    bar = tqdm(range(first, settings.epochs + 1), desc="epochs", disable=not settings.progress, leave=False)
    for epoch in bar if not done else ():
        start = time.perf_counter()
        state, step_losses = train_epoch(step, state, x_device, buckets, jax.random.fold_in(key, epoch))
        train_loss = float(np.mean(step_losses))
        first_step_loss = float(step_losses[0]) if first_step_loss is None else first_step_loss
        check_training_loss(train_loss, first_step_loss, epoch, settings)
        scores = selection_scores(nnx.merge(graphdef, state.params), val, settings)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            **scores,
            "epoch_time_s": time.perf_counter() - start,
        }
        history.append(record)
        log(record)
        bar.set_postfix(train=f"{train_loss:.4f}", val=f"{scores['selection_loss']:.4f}")
        improved = scores["selection_loss"] < best.selection_loss
        if improved:
            best = BestEpoch(epoch, scores["selection_loss"], state.params)
        done = epoch == settings.epochs or (not improved and epoch - best.epoch >= settings.patience)
        if checkpoints is not None and (done or checkpoints.due(epoch)):
            checkpoints.save(epoch, state, best, history, done)
        if done:
            break
    bar.close()
    return TrainResult(
        nnx.merge(graphdef, best.params), history, best.epoch, SelectOn(settings.select_on).value
    )
