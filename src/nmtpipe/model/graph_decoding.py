"""Batched greedy search inside one TensorFlow graph: no Python runs between steps.

The encoder runs once; a `tf.while_loop` then calls the model's own one-step
`decode` with the carried recurrent state until every row has emitted EOS or the
length limit is reached. The limit is GreedyDecoder's rule,
int(max_len_ratio * src_len) + 10 with src_len the padded batch width, so the
output is the same as the step-by-step Python loop it replaces. Used by
`GreedyDecoder.decode_batch` and inside the exported SavedModel.
"""

from __future__ import annotations

import tensorflow as tf

from nmtpipe.tokenizer import BOS_ID, EOS_ID


def max_target_len(src_len: tf.Tensor, max_len_ratio: float) -> tf.Tensor:
    """int(max_len_ratio * src_len) + 10 as an int32 scalar.

    Computed in float64, like Python's float arithmetic, so the limit is exactly
    GreedyDecoder.max_len for every ratio.
    """
    limit = tf.floor(tf.constant(max_len_ratio, tf.float64) * tf.cast(src_len, tf.float64))
    return tf.cast(limit, tf.int32) + 10


def greedy_search(model, src: tf.Tensor, max_len_ratio: float) -> tf.Tensor:
    """Greedy target ids for src (batch x src_len int32, PAD_ID-padded).

    Returns hyps: batch x steps int32; a row that emitted EOS holds EOS from there on,
    a row without EOS was cut at the length limit. steps is at most the limit.
    """
    enc_out, enc_mask, states = model.encode(src)  # batch x src_len x units, mask, [batch x units]
    batch = tf.shape(src)[0]
    max_len = max_target_len(tf.shape(src)[1], max_len_ratio)

    def not_done(t, tokens, finished, states, hyps):
        return tf.logical_and(t < max_len, tf.logical_not(tf.reduce_all(finished)))

    def step(t, tokens, finished, states, hyps):
        logits, states, _ = model.decode(tokens[:, None], enc_out, enc_mask, states)
        tokens = tf.argmax(logits[:, 0, :], axis=-1, output_type=tf.int32)  # batch
        tokens = tf.where(finished, EOS_ID, tokens)  # finished rows only repeat EOS
        finished = tf.logical_or(finished, tokens == EOS_ID)
        return t + 1, tokens, finished, states, tf.concat([hyps, tokens[:, None]], axis=1)

    start = (
        tf.constant(0),
        tf.fill([batch], tf.constant(BOS_ID, tf.int32)),
        tf.zeros([batch], tf.bool),
        states,
        tf.zeros([batch, 0], tf.int32),
    )
    invariants = (
        tf.TensorShape([]),
        tf.TensorShape([None]),
        tf.TensorShape([None]),
        [tf.TensorShape([None, s.shape[-1]]) for s in states],
        tf.TensorShape([None, None]),  # hyps grows by one column per step
    )
    *_, hyps = tf.while_loop(not_done, step, start, shape_invariants=invariants)
    return hyps


def hyp_lengths(hyps: tf.Tensor) -> tf.Tensor:
    """Pieces before each row's first EOS (the whole row when it has none): batch int32."""
    steps = tf.shape(hyps)[1]
    positions = tf.broadcast_to(tf.range(steps)[None, :], tf.shape(hyps))  # batch x steps
    first_eos = tf.where(hyps == EOS_ID, positions, steps)
    return tf.minimum(tf.reduce_min(first_eos, axis=1), steps)  # min of no columns: steps
