"""The shard record format of encoded training data, writer and reader side by side.

The encode stage writes the training pairs as GZIP TFRecord shards (`shard_file`) and
their stats (ENCODED_STATS); training reads them back. A record is int32
little-endian [len(src), *src, *tgt]: src ends with </s>, tgt has neither <s> nor
</s> (batches._to_example adds them). Each pair goes to a seeded random shard and
each shard is written in a seeded random order, so every shard is a uniform sample
of the corpus in random order. Memory: one shard at a time.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import tensorflow as tf

from nmtpipe.errors import DataError
from nmtpipe.fileio import write_json
from nmtpipe.layout import ENCODED_STATS, shard_file

SHARD_PAIRS = 50_000  # pairs per shard (about 2 MB compressed): the encode stage's memory


def record_bytes(src: list[int], tgt: list[int]) -> bytes:
    """One pair as a record: int32 little-endian [len(src), *src, *tgt]."""
    return np.array([len(src), *src, *tgt], dtype="<i4").tobytes()


def parse_record(record):
    """One record (record_bytes) -> (src, tgt) int32 tensors, inside tf.data."""
    values = tf.io.decode_raw(record, tf.int32)
    return values[1 : values[0] + 1], values[values[0] + 1 :]


def write_shards(
    pairs: Iterable[tuple[list, list]],
    out_dir: Path,
    seed: int,
    total: int,
    shard_pairs: int = SHARD_PAIRS,
    params: dict | None = None,
) -> dict:
    """Write id pairs to shuffled shards and their stats (ENCODED_STATS) in out_dir.

    total: the pairs read, `pairs` being those kept (too_long = total - kept); it sets
    the shard count (shard_pairs each). Stats: pairs, too_long, tgt_tokens (targets +
    </s>), shards, and lengths: [[length, pairs]] of each example length (the longer of
    src and tgt + 1, what bucketing sees), params (what they were encoded with).
    Returns the stats.
    """
    shards = max(1, math.ceil(total / shard_pairs))
    rng, lengths, tokens = random.Random(seed), Counter(), 0
    spills = [out_dir / f".spill-{index}" for index in range(shards)]
    with ExitStack() as stack:
        outs = [stack.enter_context(open(path, "wb")) for path in spills]
        for src, tgt in pairs:
            record = record_bytes(src, tgt)
            outs[rng.randrange(shards)].write(struct.pack("<I", len(record)) + record)
            lengths[max(len(src), len(tgt) + 1)] += 1
            tokens += len(tgt) + 1
    for index, spill in enumerate(spills):
        records = _read_spill(spill)
        random.Random(f"{seed}:{index}").shuffle(records)
        with tf.io.TFRecordWriter(str(shard_file(out_dir, index, shards)), "GZIP") as writer:
            for record in records:
                writer.write(record)
        spill.unlink()
    stats = {
        "pairs": sum(lengths.values()),
        "too_long": total - sum(lengths.values()),
        "tgt_tokens": tokens,
        "shards": shards,
        "lengths": sorted([length, count] for length, count in lengths.items()),
        "params": params or {},
    }
    write_json(out_dir / ENCODED_STATS, stats)
    return stats


def _read_spill(path: Path) -> list[bytes]:
    data, records, offset = path.read_bytes(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        records.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return records


def read_encoded(encoded_dir: Path) -> tuple[dict, list[str]]:
    """Encode's stats (pairs, lengths: pairs per example length) and its shard files; a
    DataError when they are missing."""
    try:
        stats = json.loads((Path(encoded_dir) / ENCODED_STATS).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{encoded_dir}: encoded training data not found (run encode)") from None
    stats["lengths"] = {length: count for length, count in stats["lengths"]}
    files = [shard_file(encoded_dir, i, stats["shards"]) for i in range(stats["shards"])]
    if missing := [f for f in files if not f.is_file()]:
        raise DataError(f"{missing[0]}: shard not found (run encode)")
    return stats, [str(f) for f in files]
