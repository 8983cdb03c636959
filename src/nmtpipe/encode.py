"""The encode stage: the training split as subword ids in shuffled, sharded TFRecord files.

Training streams these files (dataset.make_train_dataset) instead of holding the
corpus in memory. Each pair goes to a seeded random shard and each shard is written
in a seeded random order, so every shard is a uniform sample of the corpus in random
order: a corpus file sorted by length (Tatoeba's is) is mixed before training reads
it through a bounded shuffle buffer. Memory: one shard (SHARD_PAIRS pairs) at a time.

A record is int32 little-endian [len(src), *src, *tgt]: src ends with </s>, tgt has
neither <s> nor </s> (dataset._to_example adds them).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import tensorflow as tf

from nmtpipe.config import TrainConfig
from nmtpipe.dataset import encode_pairs
from nmtpipe.errors import DataError
from nmtpipe.fileio import atomic_dir, count_parallel, iter_parallel, write_json
from nmtpipe.layout import ENCODED_STATS, SIDES, shard_file, split_files, tokenizer_file
from nmtpipe.logs import progress
from nmtpipe.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

SHARD_PAIRS = 50_000  # pairs per shard (about 2 MB compressed): the encode stage's memory
CHUNK = 10_000  # sentences per SentencePiece call


def encode_split(split_dir: Path, tok_dir: Path, cfg: TrainConfig, out_dir: Path) -> dict:
    """Encode the train split into out_dir's shards; return (and write) their stats.

    Pairs over train.max_src_len / max_tgt_len pieces, or with an empty target, are
    dropped and counted.
    """
    sp_src, sp_tgt = (load_tokenizer(tokenizer_file(tok_dir, side)) for side in SIDES)
    files = split_files(split_dir, "train")
    total = count_parallel(*files, "train split", "split")
    pairs = iter_parallel(*files, "train split", "split")
    pairs = progress(pairs, total=total, desc="encode", unit=" pairs")
    encoded = (pair for chunk in _chunks(pairs) for pair in _encoded(sp_src, sp_tgt, chunk, cfg))
    with atomic_dir(out_dir) as tmp:
        stats = write_shards(encoded, tmp, cfg.seed, total, params=encode_params(cfg))
        if not stats["pairs"]:
            raise DataError("no training pairs within train.max_src_len/max_tgt_len")
    log.info("encoded %d training pairs (%d too long, skipped)", stats["pairs"], stats["too_long"])
    return stats


def encode_params(cfg: TrainConfig) -> dict:
    """The train.* params the shards depend on (stats.json records them; train checks)."""
    return {key: getattr(cfg, key) for key in ("max_src_len", "max_tgt_len", "seed")}


def _encoded(sp_src, sp_tgt, chunk: list[tuple[str, str]], cfg: TrainConfig):
    """The id pairs of one chunk of text pairs within the length limits."""
    src, tgt = zip(*chunk, strict=True)
    src_ids, tgt_ids, _ = encode_pairs(
        sp_src, sp_tgt, list(src), list(tgt), cfg.max_src_len, cfg.max_tgt_len
    )
    return zip(src_ids, tgt_ids, strict=True)


def _chunks(pairs: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    """Lists of CHUNK pairs at a time (SentencePiece encodes a list in one call)."""
    pairs = iter(pairs)
    while chunk := list(itertools.islice(pairs, CHUNK)):
        yield chunk


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
            record = np.array([len(src), *src, *tgt], dtype="<i4").tobytes()
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
