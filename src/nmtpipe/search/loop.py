"""The loop greedy and beam search share, inside one TensorFlow graph.

The encoder runs once (with attention, the keys are projected once too); a
`tf.while_loop` then calls the model's own one-step `decode` with the carried
recurrent state until every sentence is done. The length limit is per sentence
(`max_target_len` of its own source pieces), so a translation does not depend on its
batch mates. A sentence that is done leaves the decoder batch: its result is written
out and its rows are dropped.

A search state is a NamedTuple whose fields say, by their type, how they move:
`PerSentence` (one entry per sentence still searched), `Growing` (the same, one piece
longer every step along the last axis) and `PerRow` (one entry per decoder row:
beam_size rows per sentence, row i*k + b is beam b of sentence i).
"""

from __future__ import annotations

import enum
import typing
from functools import partial
from typing import Annotated, NamedTuple

import tensorflow as tf

from nmtpipe.model.ids import PAD_ID
from nmtpipe.search.settings import EXTRA_PIECES


class Axis(enum.Enum):
    SENTENCE = "one entry per sentence still searched"
    GROWING = "one entry per sentence, one piece longer every step (last axis)"
    ROW = "one entry per decoder row (beam_size per sentence)"


PerSentence = Annotated[tf.Tensor, Axis.SENTENCE]
Growing = Annotated[tf.Tensor, Axis.GROWING]
PerRow = Annotated[tf.Tensor, Axis.ROW]
PerRowList = Annotated[list, Axis.ROW]  # a list of PerRow tensors (states, encoder)


def field_axes(state_type: type) -> dict[str, Axis]:
    """Each field of a search state NamedTuple -> its Axis (from its annotation)."""
    hints = typing.get_type_hints(state_type, include_extras=True)
    return {name: hints[name].__metadata__[0] for name in state_type._fields}


def max_target_len(src_len: tf.Tensor, max_len_ratio: float) -> tf.Tensor:
    """Most target pieces for sources of src_len pieces: int(max_len_ratio * src_len) + 10.

    Elementwise, int32; computed in float64, like Python's float arithmetic, so the
    limit is exactly the rule as written, for every ratio.
    """
    limit = tf.floor(tf.constant(max_len_ratio, tf.float64) * tf.cast(src_len, tf.float64))
    return tf.cast(limit, tf.int32) + EXTRA_PIECES


def source_lengths(src: tf.Tensor) -> tf.Tensor:
    """Pieces of each source, EOS included (batch x src_len, PAD_ID-padded) -> batch int32."""
    return tf.reduce_sum(tf.cast(tf.not_equal(src, PAD_ID), tf.int32), axis=1)


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

    A step where no sentence is done copies nothing.
    """
    axes = field_axes(type(search))

    def drop():
        keep = tf.where(~done)[:, 0]  # the sentences kept
        rows = tf.reshape(keep[:, None] * beam_size + tf.range(beam_size, dtype=tf.int64), [-1])
        kept = {
            name: tf.nest.map_structure(
                partial(tf.gather, indices=rows if axes[name] is Axis.ROW else keep), value
            )
            for name, value in search._asdict().items()
        }
        return type(search)(**kept), write(out, search, done)

    return tf.cond(tf.reduce_any(done), drop, lambda: (search, out))


def shape_invariants(state: NamedTuple) -> NamedTuple:
    """The shapes of a search state (or result) that hold on every step: sentences leave
    (first axis), Growing fields grow by one piece (last axis), and a decoder's carried
    state may grow along any axis but its last (a Transformer's key/value cache)."""
    axes = field_axes(type(state))

    def relax(axis: Axis, x: tf.Tensor) -> tf.TensorShape:
        if axis is Axis.ROW:
            return tf.TensorShape([None] * (x.shape.rank - 1) + list(x.shape[-1:]))
        dims = [None, *x.shape[1:]]
        return tf.TensorShape(dims[:-1] + [None] if axis is Axis.GROWING else dims)

    return type(state)(
        **{
            name: tf.nest.map_structure(partial(relax, axes[name]), value)
            for name, value in state._asdict().items()
        }
    )


def search_loop(step, state: NamedTuple, out):
    """Run `step(t, state, out) -> (t + 1, state, out)` until no sentence is left; return out.

    out: the result for the whole batch (a tensor or a search-result NamedTuple).
    """
    out_shape = shape_invariants(out) if isinstance(out, tuple) else tf.TensorShape([None, None])
    _, _, out = tf.while_loop(
        lambda t, state, out: tf.size(state.index) > 0,
        step,
        (tf.constant(0), state, out),
        shape_invariants=(tf.TensorShape([]), shape_invariants(state), out_shape),
    )
    return out


def pad_to(hyps: tf.Tensor, steps, value: int = PAD_ID) -> tf.Tensor:
    """Pad the last axis of hyps (... x t) to steps with value."""
    paddings = [[0, 0]] * (hyps.shape.rank - 1) + [[0, steps - tf.shape(hyps)[-1]]]
    return tf.pad(hyps, paddings, constant_values=value)


def write_rows(result: tf.Tensor, index: tf.Tensor, values: tf.Tensor, done: tf.Tensor):
    """result (batch x ...) with the done sentences' values written at their batch rows."""
    at = tf.boolean_mask(index, done)[:, None]  # n_done x 1 batch rows
    return tf.tensor_scatter_nd_update(result, at, tf.boolean_mask(values, done))
