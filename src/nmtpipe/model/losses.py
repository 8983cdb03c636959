"""Training loss and metrics over padded target ids (pad id 0 carries no weight).

`token_stats` makes one softmax pass over the batch x tgt_len x vocab logits (the fused
cross-entropy kernel, whose gradient is computed in the same pass) and derives from it
the label-smoothed loss, the plain cross-entropy and the hits of the accuracy: the
model's `compute_loss` feeds all three from it, where a loss and two metrics used to
take a pass each.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from nmtpipe.model.ids import PAD_ID


def token_stats(y_true, logits, label_smoothing: float = 0.0) -> dict:
    """The loss and the token counts of one batch, from one softmax pass.

    With label_smoothing eps the target distribution is (1 - eps) * one-hot +
    eps / vocab (uniform over all pieces, as in keras' CategoricalCrossentropy), so
    per position: (1 - eps) * -log p(y) + eps * mean over pieces of -log p, where
    -log p(y) = logsumexp - logit_y gives logsumexp without a second pass.

    Returns loss (the smoothed cross-entropy averaged over the non-padding tokens of
    the global batch), nll (the plain cross-entropy summed over them), hits (of them
    predicted exactly) and tokens (this replica's non-padding tokens).
    """
    logits = ops.cast(logits, "float32")  # the loss in float32 under mixed precision
    y_true = ops.cast(y_true, "int32")
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")  # batch x tgt_len
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y_true, logits=logits)
    per_token = nll
    if label_smoothing:
        target_logit = ops.take_along_axis(logits, y_true[..., None], axis=-1)[..., 0]
        uniform = nll + target_logit - ops.mean(logits, axis=-1)  # logsumexp - mean logit
        per_token = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    tokens = ops.sum(mask)
    hits = ops.cast(ops.equal(y_true, ops.cast(ops.argmax(logits, axis=-1), "int32")), "float32")
    return {
        "loss": ops.sum(per_token * mask) / ops.maximum(global_tokens(tokens), 1.0),
        "nll": ops.sum(nll * mask),
        "hits": ops.sum(hits * mask),
        "tokens": tokens,
    }


def masked_loss(y_true, logits, label_smoothing: float = 0.0):
    """Token-level (smoothed) cross-entropy averaged over the non-padding target
    positions of the global batch (token_stats' loss)."""
    return token_stats(y_true, logits, label_smoothing)["loss"]


def global_tokens(tokens):
    """The non-padding tokens of the global batch, from this replica's `tokens`.

    Under a tf.distribute strategy each replica gets part of the global batch, and
    Keras 3 (TensorFlow trainer) sums the replicas' gradients. It scales a loss by
    1 / replicas only when it reduces per-example values itself, never a scalar like
    this one. So each replica divides its token sum by the global token count, and the
    sum of their gradients is the single-device gradient of the global token mean.
    """
    context = tf.distribute.get_replica_context()  # None outside a replica's step
    if context is None or context.num_replicas_in_sync == 1:
        return tokens
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tokens)


@keras.saving.register_keras_serializable(package="nmtpipe")
class TokenRate(keras.metrics.Metric):
    """A per-token rate over all batches seen: sum of `numerator` / non-padding tokens.

    Every token weighs the same, whatever its batch: the cross_entropy metric (token_stats'
    nll; exp(val_cross_entropy) is the dev perplexity, comparable across label smoothing)
    and masked_accuracy (its hits).
    """

    def __init__(self, numerator: str, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.numerator = numerator
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens")

    def update_state(self, stats: dict):
        """stats: token_stats of one batch."""
        self.total.assign_add(stats[self.numerator])
        self.tokens.assign_add(stats["tokens"])

    def result(self):
        return self.total / ops.maximum(self.tokens, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.tokens.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "numerator": self.numerator}
