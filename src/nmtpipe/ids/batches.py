"""Subword ids -> tf.data batches bucketed by length, by pair count or by token budget
(training: streamed from encode's shard records; dev: in memory)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from nmtpipe.ids.records import parse_record, read_encoded
from nmtpipe.model.ids import BOS_ID, EOS_ID, PAD_ID

# One bucket per length up to 16 (most sentences; Tatoeba's median is 10 pieces), wider
# above: on Tatoeba en-es 91% of the padded tokens are real (80% with buckets 4 wide), for
# 5.6% more real tokens per second in training (bench, 2 cores).
BUCKET_BOUNDARIES = (*range(6, 17), 18, 20, 24, 28, 32, 40, 64, 96)
# Training reads this many shards at once, through a shuffle buffer of this many pairs
# (about 20 MB): each shard is already a random sample in random order (encode.py),
# the buffer gives every epoch its own order.
SHARD_CYCLE = 16
SHUFFLE_BUFFER = 50_000


def _ragged(sequences: list[list[int]]) -> tf.RaggedTensor:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    flat = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(flat, lengths)


def _to_example(src, tgt):
    """Teacher forcing: the decoder reads <s> + tgt and predicts tgt + </s>."""
    tgt_in = tf.concat([[BOS_ID], tgt], axis=0)
    tgt_out = tf.concat([tgt, [EOS_ID]], axis=0)
    return (src, tgt_in), tgt_out


def bucket_batch_sizes(batch_size: int, max_tokens: int = 0, max_len: int = 0) -> list[int]:
    """Pairs per batch of each length bucket of _bucketed.

    Without max_tokens every bucket batches batch_size pairs. With it, a bucket whose
    examples are at most n long (src and tgt_in each, padded) batches
    max_tokens // (2 n) pairs, at most batch_size, at least 1, rounded down to a multiple
    of 8 from 8 up (GEMM-friendly, and even over up to 8 replicas): no batch holds more
    than max_tokens padded source + target tokens. max_len: the longest example
    (max(train.max_src_len, train.max_tgt_len + 1)), which bounds the last buckets.
    """
    if not max_tokens:
        return [batch_size] * (len(BUCKET_BOUNDARIES) + 1)
    longest = [b - 1 for b in BUCKET_BOUNDARIES] + [max(max_len, BUCKET_BOUNDARIES[-1])]
    sizes = []
    for n in longest:
        size = max(1, min(batch_size, max_tokens // (2 * min(n, max_len or n))))
        sizes.append(size - size % 8 if size >= 8 else size)
    return sizes


def train_batch_sizes(cfg) -> list[int]:
    """bucket_batch_sizes of a TrainConfig (train.batch_size, max_tokens and length limits)."""
    return bucket_batch_sizes(
        cfg.batch_size, cfg.max_tokens, max(cfg.max_src_len, cfg.max_tgt_len + 1)
    )


def _per_bucket(batch_size: int | Sequence[int]) -> list[int]:
    """A batch size for every bucket (an int: the same for all)."""
    if isinstance(batch_size, int):
        return [batch_size] * (len(BUCKET_BOUNDARIES) + 1)
    return list(batch_size)


def _bucketed(ds: tf.data.Dataset, batch_size: int | Sequence[int]) -> tf.data.Dataset:
    """Zero-padded batches of examples of similar length (see batches_per_epoch);
    batch_size: pairs per batch, one for all buckets or one per bucket."""
    return ds.bucket_by_sequence_length(
        element_length_func=lambda inputs, tgt_out: tf.maximum(
            tf.shape(inputs[0])[0], tf.shape(tgt_out)[0]
        ),
        bucket_boundaries=list(BUCKET_BOUNDARIES),
        bucket_batch_sizes=_per_bucket(batch_size),
        padded_shapes=(([None], [None]), [None]),
        padding_values=((PAD_ID, PAD_ID), PAD_ID),
    )


def make_dataset(
    src_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int | Sequence[int]
) -> tf.data.Dataset:
    """Batches ((src, tgt_in), tgt_out) in corpus order, for evaluation (the dev set).

    Order: cache -> bucket/batch -> prefetch. The batch count is declared, so Keras
    knows where the data end.
    """
    ds = tf.data.Dataset.from_tensor_slices((_ragged(src_ids), _ragged(tgt_ids)))
    ds = ds.map(_to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    ds = _bucketed(ds, batch_size)
    steps = batches_per_epoch(example_lengths(src_ids, tgt_ids), batch_size)
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    return ds.prefetch(tf.data.AUTOTUNE)


def example_lengths(src_ids: list[list[int]], tgt_ids: list[list[int]]) -> Counter:
    """Pairs per example length: what element_length_func sees (tgt_in and tgt_out are
    len(tgt) + 1 long)."""
    return Counter(max(len(s), len(t) + 1) for s, t in zip(src_ids, tgt_ids, strict=True))


def bucket_sizes(lengths: Mapping[int, int]) -> Counter:
    """Pairs per length bucket of _bucketed. lengths: pairs per example length
    (example_lengths, or encode's stats)."""
    buckets = Counter()
    for length, count in lengths.items():
        buckets[int(np.searchsorted(BUCKET_BOUNDARIES, length, side="right"))] += count
    return buckets


def batches_per_epoch(lengths: Mapping[int, int], batch_size: int | Sequence[int]) -> int:
    """Batches in one epoch of _bucketed, in any order: only a bucket's last batch is
    partial. lengths: pairs per example length (example_lengths, or encode's stats);
    batch_size: one for all buckets or one per bucket."""
    sizes = _per_bucket(batch_size)
    return sum(-(-count // sizes[bucket]) for bucket, count in bucket_sizes(lengths).items())


def make_train_dataset(
    encoded_dir: Path, batch_size: int | Sequence[int], seed: int, epochs: range
) -> tuple[tf.data.Dataset, int]:
    """The training batches of `epochs`, one epoch after another, streamed from encode's
    shards, and the batches per epoch (batch_size: one for all length buckets, or one per
    bucket: train_batch_sizes).

    Epoch e reads the shards in an order drawn from (seed, e), SHARD_CYCLE at a time,
    through a SHUFFLE_BUFFER-pair shuffle seeded by (seed, e): its order comes from
    (seed, e) alone, the same whether training runs straight through or resumes at e in
    a new process. Pass the batch count to `fit(steps_per_epoch=...)`: Keras then reads
    every epoch from this one iterator. Order: shuffle -> bucket/batch -> prefetch.
    """
    stats, files = read_encoded(encoded_dir)

    def epoch(e):
        order = tf.random.experimental.stateless_shuffle(
            tf.constant(files), seed=tf.stack([tf.constant(seed, tf.int64), e])
        )
        records = tf.data.Dataset.from_tensor_slices(order).interleave(
            lambda path: tf.data.TFRecordDataset(path, compression_type="GZIP"),
            cycle_length=min(len(files), SHARD_CYCLE),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        pairs = records.map(parse_record, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        pairs = pairs.shuffle(SHUFFLE_BUFFER, seed=seed * 1_000_003 + e)
        pairs = pairs.map(_to_example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return _bucketed(pairs, batch_size)

    steps = batches_per_epoch(stats["lengths"], batch_size)
    ds = tf.data.Dataset.range(epochs.start, epochs.stop).flat_map(epoch)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(epochs) * steps))
    return ds.prefetch(tf.data.AUTOTUNE), steps
