"""Batched greedy search inside one TensorFlow graph: no Python runs between steps,
and the pieces it shares with beam search (`beam_search`).

The encoder runs once (with attention, the keys are projected once too); a
`tf.while_loop` then calls the model's own one-step `decode` with the carried
recurrent state until every row has emitted EOS or reached its length limit. The
limit is per sentence, int(max_len_ratio * src_len) + 10 with src_len its own source
pieces (EOS included, padding not), so a translation does not depend on its batch
mates. A sentence that is done leaves the decoder batch: its result is written out
and its rows are dropped. Used by `GreedyDecoder.decode_batch` and inside the
exported SavedModel.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import tensorflow as tf

from nmtpipe.tokenizer import BOS_ID, EOS_ID, PAD_ID

ROW_FIELDS = ("tokens", "states", "enc")  # one row per decoder row, others one per sentence


class Greedy(NamedTuple):
    """The search state of the n sentences still searched."""

    index: tf.Tensor  # n int32: each sentence's row in the input batch
    limits: tf.Tensor  # n int32: most target pieces
    hyps: tf.Tensor  # n x t int32
    tokens: tf.Tensor  # n int32: the last piece of each hypothesis
    states: list  # [n x units_i] float32 decoder states
    enc: list  # n x ...: encoder output, its mask (and attention keys)


def source_lengths(src: tf.Tensor) -> tf.Tensor:
    """Pieces of each source, EOS included (batch x src_len, PAD_ID-padded) -> batch int32."""
    return tf.reduce_sum(tf.cast(tf.not_equal(src, PAD_ID), tf.int32), axis=1)


def max_target_len(src_len: tf.Tensor, max_len_ratio: float) -> tf.Tensor:
    """int(max_len_ratio * src_len) + 10, elementwise, int32.

    Computed in float64, like Python's float arithmetic, so the limit is exactly
    GreedyDecoder.max_len for every ratio.
    """
    limit = tf.floor(tf.constant(max_len_ratio, tf.float64) * tf.cast(src_len, tf.float64))
    return tf.cast(limit, tf.int32) + 10


def greedy_search(model, src: tf.Tensor, max_len_ratio: float) -> tf.Tensor:
    """Greedy target ids for src (batch x src_len int32, PAD_ID-padded).

    Returns hyps: batch x steps int32; a row that emitted EOS or reached its length
    limit holds EOS from there on (a row cut at the limit may have no EOS at all).
    steps is at most the longest limit.
    """
    batch = tf.shape(src)[0]
    enc, states = encoder_inputs(model, src)
    start = Greedy(
        index=tf.range(batch),
        limits=max_target_len(source_lengths(src), max_len_ratio),
        hyps=tf.zeros([batch, 0], tf.int32),
        tokens=tf.fill([batch], tf.constant(BOS_ID, tf.int32)),
        states=states,
        enc=enc,
    )

    def step(t, search, hyps):
        logits, states = decode_step(model, search.tokens, search.enc, search.states)
        tokens = tf.argmax(logits, axis=-1, output_type=tf.int32)  # n
        search = search._replace(
            hyps=tf.concat([search.hyps, tokens[:, None]], axis=1), tokens=tokens, states=states
        )
        done = tf.equal(tokens, EOS_ID) | (t + 1 >= search.limits)
        return t + 1, *drop_done(search, hyps, done, _write_hyps)

    _, _, hyps = tf.while_loop(
        lambda t, search, hyps: tf.size(search.index) > 0,
        step,
        (tf.constant(0), start, tf.zeros([batch, 0], tf.int32)),
        shape_invariants=(
            tf.TensorShape([]),
            shape_invariants(start),
            tf.TensorShape([None, None]),
        ),
    )
    return hyps


def _write_hyps(hyps: tf.Tensor, search: Greedy, done: tf.Tensor) -> tf.Tensor:
    """hyps (batch x steps) with the done sentences' hypotheses written in."""
    at = tf.boolean_mask(search.index, done)[:, None]  # n_done x 1 batch rows
    hyps = pad_to(hyps, tf.shape(search.hyps)[1], EOS_ID)
    return tf.tensor_scatter_nd_update(hyps, at, tf.boolean_mask(search.hyps, done))


def hyp_lengths(hyps: tf.Tensor) -> tf.Tensor:
    """Pieces before each row's first EOS (the whole row when it has none): batch int32."""
    steps = tf.shape(hyps)[1]
    positions = tf.broadcast_to(tf.range(steps)[None, :], tf.shape(hyps))  # batch x steps
    first_eos = tf.where(hyps == EOS_ID, positions, steps)
    return tf.minimum(tf.reduce_min(first_eos, axis=1), steps)  # min of no columns: steps


def encoder_inputs(model, src: tf.Tensor) -> tuple[list, list]:
    """What every decoder step reads, computed once: ([enc_out batch x src_len x units,
    enc_mask batch x src_len, attention keys if any], decoder states [batch x units_i])."""
    enc_out, enc_mask, states = model.encode(src)
    enc_keys = model.attention_keys(enc_out)
    return [enc_out, enc_mask] + ([] if enc_keys is None else [enc_keys]), states


def decode_step(model, tokens: tf.Tensor, enc: list, states: list) -> tuple[tf.Tensor, list]:
    """One decoder step: tokens (rows) -> logits (rows x vocab), new states."""
    enc_out, enc_mask, *enc_keys = enc
    logits, states, _ = model.decode(
        tokens[:, None], enc_out, enc_mask, states, enc_keys=enc_keys[0] if enc_keys else None
    )
    return logits[:, 0, :], states


def drop_done(search: NamedTuple, out, done: tf.Tensor, write, beam_size: int = 1):
    """(search without its done sentences, write(out, search, done)).

    search: a NamedTuple of tensors (or lists of them), one row per sentence, or
    beam_size rows per sentence for ROW_FIELDS. A step where no sentence is done
    copies nothing.
    """

    def drop():
        keep = tf.where(~done)[:, 0]  # the sentences kept
        rows = tf.reshape(keep[:, None] * beam_size + tf.range(beam_size, dtype=tf.int64), [-1])
        kept = {
            name: tf.nest.map_structure(
                partial(tf.gather, indices=rows if name in ROW_FIELDS else keep), value
            )
            for name, value in search._asdict().items()
        }
        return type(search)(**kept), write(out, search, done)

    return tf.cond(tf.reduce_any(done), drop, lambda: (search, out))


def shape_invariants(search: NamedTuple) -> NamedTuple:
    """The shapes of search that hold on every step: sentences leave (first axis) and
    the fields named *hyps grow by one piece (last axis)."""

    def relax(name: str, x: tf.Tensor) -> tf.TensorShape:
        dims = [None, *x.shape[1:]]
        return tf.TensorShape(dims[:-1] + [None] if name.endswith("hyps") else dims)

    fields = {
        name: tf.nest.map_structure(lambda x, name=name: relax(name, x), value)
        for name, value in search._asdict().items()
    }
    return type(search)(**fields)


def pad_to(hyps: tf.Tensor, steps, value: int = PAD_ID) -> tf.Tensor:
    """Pad the last axis of hyps (... x t) to steps with value."""
    paddings = [[0, 0]] * (hyps.shape.rank - 1) + [[0, steps - tf.shape(hyps)[-1]]]
    return tf.pad(hyps, paddings, constant_values=value)
