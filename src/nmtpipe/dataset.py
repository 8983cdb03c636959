"""Sentence pairs -> subword ids -> tf.data batches bucketed by length."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nmtpipe.tokenizer import BOS_ID, EOS_ID, PAD_ID

BUCKET_BOUNDARIES = (8, 12, 16, 20, 28, 40, 64, 96)


def encode_source(sp_src, sentences: list[str]) -> list[list[int]]:
    """Source ids end with EOS so the encoder sees where the sentence stops."""
    return [ids + [EOS_ID] for ids in sp_src.encode(sentences)]


def encode_pairs(
    sp_src, sp_tgt, src: list[str], tgt: list[str], max_src_len: int, max_tgt_len: int
) -> tuple[list[list[int]], list[list[int]], int]:
    """Encode pairs, dropping those over the length limits; returns (src, tgt, dropped)."""
    src_ids, tgt_ids = encode_source(sp_src, src), sp_tgt.encode(tgt)
    kept = [
        (s, t)
        for s, t in zip(src_ids, tgt_ids, strict=True)
        if len(s) <= max_src_len and len(t) + 1 <= max_tgt_len and len(t) > 0
    ]
    return [s for s, _ in kept], [t for _, t in kept], len(src_ids) - len(kept)


def _ragged(sequences: list[list[int]]) -> tf.RaggedTensor:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    flat = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(flat, lengths)


def _to_example(src, tgt):
    """Teacher forcing: the decoder reads <s> + tgt and predicts tgt + </s>."""
    tgt_in = tf.concat([[BOS_ID], tgt], axis=0)
    tgt_out = tf.concat([tgt, [EOS_ID]], axis=0)
    return (src, tgt_in), tgt_out


def make_dataset(
    src_ids: list[list[int]],
    tgt_ids: list[list[int]],
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """Batches ((src, tgt_in), tgt_out), zero-padded, of sentences of similar length.

    Order: cache -> shuffle (seeded, reshuffled each epoch) -> bucket/batch -> prefetch.
    The dataset declares its number of batches: with an unknown one, Keras adds a
    step to `optimizer.iterations` at every epoch end, which learning-rate schedules
    (and Adam's bias correction) would count.
    """
    ds = tf.data.Dataset.from_tensor_slices((_ragged(src_ids), _ragged(tgt_ids)))
    ds = ds.map(_to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(len(src_ids), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda inputs, tgt_out: tf.maximum(
            tf.shape(inputs[0])[0], tf.shape(tgt_out)[0]
        ),
        bucket_boundaries=list(BUCKET_BOUNDARIES),
        bucket_batch_sizes=[batch_size] * (len(BUCKET_BOUNDARIES) + 1),
        padded_shapes=(([None], [None]), [None]),
        padding_values=((PAD_ID, PAD_ID), PAD_ID),
    )
    batches = batches_per_epoch(src_ids, tgt_ids, batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


def batches_per_epoch(src_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int) -> int:
    """The number of batches make_dataset yields per epoch, without iterating it.

    Bucketing depends on lengths only (a pair's length is max(source, target + EOS)),
    so every epoch has the same batches per bucket: ceil(pairs in bucket / batch_size).
    """
    lengths = [max(len(s), len(t) + 1) for s, t in zip(src_ids, tgt_ids, strict=True)]
    buckets = np.searchsorted(BUCKET_BOUNDARIES, lengths, side="right")  # as tf: lo <= len < hi
    return int(np.sum(-(-np.bincount(buckets) // batch_size)))
