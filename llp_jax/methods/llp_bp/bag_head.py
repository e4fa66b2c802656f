"""The paper's aggregate-embedding bag loss: a linear head on each bag's mean embedding, trained against
the bag's proportion beside the pseudo-labels' cross-entropy."""

from __future__ import annotations

import jax
from flax import nnx

from llp_jax.data.bags import Bags
from llp_jax.data.dataset import Dataset
from llp_jax.methods.common import fresh_encoder
from llp_jax.methods.llp_bp.settings import LLPBPSettings
from llp_jax.models import Encoder
from llp_jax.models.encoder import head_logits, head_width
from llp_jax.streams import stream_key
from llp_jax.train.class_counts import proportion_loss
from llp_jax.train.loop import BagBatch
from llp_jax.train.losses import instance_loss


class WithBagHead(nnx.Module):
    """An encoder plus a linear head on a bag's mean embedding, for the aggregate-embedding bag loss.
    Called like the encoder: x -> (logits float32[n], embedding float32[n, e])."""

    def __init__(self, encoder: Encoder, *, rngs: nnx.Rngs):
        self.encoder = encoder
        self.bag_head = nnx.Linear(encoder.embedding_width, head_width(encoder.n_classes), rngs=rngs)
        self.n_classes = encoder.n_classes

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.encoder(x)


def pseudo_label_loss(
    model, logits, embedding, batch: BagBatch, lambda_agg: float, lambda_bag: float = 0.0
) -> jax.Array:
    """Cross-entropy against the pseudo-labels, plus lambda_agg * CE(k_b/|b|, bag_head(mean embedding of
    b)), plus lambda_bag * CE(k_b/|b|, mean prediction of b) (DLLP's loss on the encoder's own
    predictions); binary or K-class as the logits are (llp_jax.train.losses.instance_loss)."""
    value = instance_loss(logits, batch.targets, batch.mask)
    if lambda_bag > 0:
        value = value + lambda_bag * proportion_loss(logits, batch.mask, batch.proportions)
    if lambda_agg > 0:
        weights = batch.mask[..., None] / batch.sizes[:, None, None]
        # one member per bag, its mean embedding: logits float32[b, 1] (K classes: [b, 1, K])
        bag_logits = head_logits(model.bag_head((embedding * weights).sum(axis=1)), model.n_classes)[:, None]
        value = value + lambda_agg * proportion_loss(bag_logits, batch.mask[:, :1], batch.proportions)
    return value


def round_model(data: Dataset, train_bags: Bags, settings: LLPBPSettings, key: jax.Array) -> nnx.Module:
    """A fresh encoder for a round, wrapped with a bag head when the aggregate-embedding loss is on."""
    encoder = fresh_encoder(data, train_bags, settings, key)
    if settings.schedule.lambda_agg == 0:
        return encoder
    return WithBagHead(encoder, rngs=nnx.Rngs(stream_key(key, "bag_head")))


def encoder_of(model: nnx.Module) -> Encoder:
    """The encoder of a round's model, without its bag head."""
    return model.encoder if isinstance(model, WithBagHead) else model
