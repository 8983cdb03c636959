"""Training losses and metrics over padded target ids (pad id 0 carries no weight)."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from nmtpipe.model.ids import PAD_ID


def masked_loss(y_true, logits, label_smoothing: float = 0.0):
    """Token-level cross-entropy averaged over the non-padding target positions of the
    global batch.

    With label_smoothing eps the target distribution is (1 - eps) * one-hot +
    eps / vocab (uniform over all pieces, as in keras' CategoricalCrossentropy), so
    per position: (1 - eps) * -log p(y) + eps * mean over pieces of -log p.
    """
    logits = ops.cast(logits, "float32")  # the loss in float32 under mixed precision
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), logits.dtype)  # batch x tgt_len
    loss = keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
    if label_smoothing:
        uniform = -ops.mean(ops.log_softmax(logits, axis=-1), axis=-1)  # batch x tgt_len
        loss = (1.0 - label_smoothing) * loss + label_smoothing * uniform
    return ops.sum(loss * mask) / ops.maximum(global_tokens(ops.sum(mask)), 1.0)


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


def training_loss(label_smoothing: float):
    """The loss to compile with: masked_loss, label-smoothed when label_smoothing > 0."""
    if not label_smoothing:
        return masked_loss

    def smoothed_masked_loss(y_true, logits):
        return masked_loss(y_true, logits, label_smoothing)

    return smoothed_masked_loss


@keras.saving.register_keras_serializable(package="nmtpipe")
class CrossEntropy(keras.metrics.Metric):
    """Plain cross-entropy per non-padding target token over all batches seen (no smoothing).

    Unlike the loss (a mean of per-batch means, smoothed with train.label_smoothing),
    every token weighs the same, so exp(val_cross_entropy) is the dev perplexity.
    """

    def __init__(self, name="cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.tokens = self.add_variable(shape=(), initializer="zeros", name="tokens")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """y_true: batch x tgt_len ids, y_pred: logits batch x tgt_len x vocab."""
        mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
        logits = ops.cast(y_pred, "float32")
        loss = keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
        self.total.assign_add(ops.sum(loss * mask))
        self.tokens.assign_add(ops.sum(mask))

    def result(self):
        return self.total / ops.maximum(self.tokens, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.tokens.assign(0.0)


def masked_accuracy(y_true, logits):
    """Share of non-padding target positions predicted exactly."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
    hits = ops.cast(ops.equal(ops.cast(y_true, "int32"), ops.argmax(logits, axis=-1)), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)
