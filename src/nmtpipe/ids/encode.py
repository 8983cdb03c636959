"""The encode stage: text pairs -> subword ids -> the shard records training streams.

`encode_split` encodes the training split with the SentencePiece models (sources end
with </s>), drops the pairs over the length limits and writes the rest through
`records.write_shards`: shuffled, sharded TFRecord files that training reads
(batches.make_train_dataset) instead of holding the corpus in memory. Dev and test
pairs are encoded the same way (`encode_pairs`) and batched in memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from nmtpipe.config import TrainConfig
from nmtpipe.errors import DataError
from nmtpipe.fileio import atomic_dir, count_parallel, iter_parallel
from nmtpipe.ids.records import write_shards
from nmtpipe.ids.tokenizer import encode_source, load_tokenizer
from nmtpipe.layout import SIDES, split_files, tokenizer_file
from nmtpipe.logs import progress

log = logging.getLogger(__name__)

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
