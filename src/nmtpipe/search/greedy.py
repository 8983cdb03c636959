"""Batched greedy search inside one TensorFlow graph: no Python runs between steps.

Each step takes the argmax piece of every sentence still searched; a sentence is done
when it emits EOS or reaches its length limit (`loop.max_target_len`). Used by
`GreedyDecoder` and inside the exported SavedModel.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from nmtpipe.model.ids import BOS_ID, EOS_ID
from nmtpipe.search import loop
from nmtpipe.search.loop import Growing, PerRow, PerRowList, PerSentence


class Greedy(NamedTuple):
    """The search state of the n sentences still searched (one decoder row each)."""

    index: PerSentence  # n int32: each sentence's row in the input batch
    limits: PerSentence  # n int32: most target pieces
    hyps: Growing  # n x t int32
    tokens: PerRow  # n int32: the last piece of each hypothesis
    states: PerRowList  # [n x units_i] float32 decoder states
    enc: PerRowList  # n x ...: encoder output, its mask (and attention keys)


def greedy_search(model, src: tf.Tensor, max_len_ratio: float) -> tf.Tensor:
    """Greedy target ids for src (batch x src_len int32, PAD_ID-padded).

    Returns hyps: batch x steps int32; a row that emitted EOS or reached its length
    limit holds EOS from there on (a row cut at the limit may have no EOS at all).
    steps is at most the longest limit.
    """
    batch = tf.shape(src)[0]
    enc, states = loop.encoder_inputs(model, src)
    start = Greedy(
        index=tf.range(batch),
        limits=loop.max_target_len(loop.source_lengths(src), max_len_ratio),
        hyps=tf.zeros([batch, 0], tf.int32),
        tokens=tf.fill([batch], tf.constant(BOS_ID, tf.int32)),
        states=states,
        enc=enc,
    )

    def step(t, search, hyps):
        logits, states = loop.decode_step(model, search.tokens, search.enc, search.states)
        tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)  # n
        search = search._replace(
            hyps=tf.concat([search.hyps, tokens[:, None]], axis=1), tokens=tokens, states=states
        )
        done = tf.equal(tokens, EOS_ID) | (t + 1 >= search.limits)
        return t + 1, *loop.drop_done(search, hyps, done, _write_hyps)

    return loop.search_loop(step, start, tf.zeros([batch, 0], tf.int32))


def _write_hyps(hyps: tf.Tensor, search: Greedy, done: tf.Tensor) -> tf.Tensor:
    """hyps (batch x steps) with the done sentences' hypotheses written in."""
    hyps = loop.pad_to(hyps, tf.shape(search.hyps)[1], EOS_ID)
    return loop.write_rows(hyps, search.index, search.hyps, done)


def hyp_lengths(hyps: tf.Tensor) -> tf.Tensor:
    """Pieces before each row's first EOS (the whole row when it has none): batch int32."""
    steps = tf.shape(hyps)[1]
    positions = tf.broadcast_to(tf.range(steps)[None, :], tf.shape(hyps))  # batch x steps
    first_eos = tf.where(hyps == EOS_ID, positions, steps)
    return tf.minimum(tf.reduce_min(first_eos, axis=1), steps)  # min of no columns: steps
