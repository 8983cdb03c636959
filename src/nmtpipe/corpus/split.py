"""The split stage: a seeded train/dev/test split grouped by source sentence, streamed.

All pairs whose source sentences are equal up to case, punctuation and spacing
form a group and land in the same split, so no test source was seen in training,
and every reference translation of a test source stays in the test split.

A group's rank is a hash of (split.seed, its key): the lowest-ranked groups go to
test until it holds test_size pairs, the next ones to dev, all others to train.
The corpus is read three times (count, rank, write) and never held in memory: the
only state is the dev_size + test_size lowest-ranked groups.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

from nmtpipe.config import SplitConfig
from nmtpipe.errors import ConfigError, DataError
from nmtpipe.fileio import atomic_dir, count_parallel, iter_parallel, write_json
from nmtpipe.layout import SPLIT_SIZES, SPLITS, corpus_files, split_files
from nmtpipe.logs import progress

log = logging.getLogger(__name__)


def group_key(sentence: str) -> str:
    """Case-, punctuation- and spacing-insensitive form of a sentence."""
    folded = unicodedata.normalize("NFKC", sentence).casefold()
    kept = "".join(c if c.isalnum() else " " for c in folded)
    return " ".join(kept.split())


def group_rank(src: str, seed: int) -> bytes:
    """The seeded rank of a source sentence's group (a 128-bit hash of seed and key)."""
    return hashlib.blake2b(f"{seed}\0{group_key(src)}".encode(), digest_size=16).digest()


def _size(value: float, total: int, key: str) -> int:
    size = round(value * total) if value < 1 else int(value)
    if size < 1:
        raise ConfigError(f"split.{key} = {value} gives no pairs out of {total}")
    return size


def lowest_groups(ranks: Iterable[bytes], count: int) -> dict[bytes, int]:
    """The `count` lowest ranks of a stream, each with its number of occurrences.

    A rank pushed out of the kept set is above every rank kept from then on, so it
    never comes back: the counts of the kept ranks are exact.
    """
    sizes: dict[bytes, int] = {}
    heap: list[tuple[int, bytes]] = []  # max-heap of kept ranks (negated as ints)
    for rank in ranks:
        if rank in sizes:
            sizes[rank] += 1
        elif len(heap) < count:
            sizes[rank] = 1
            heapq.heappush(heap, (-int.from_bytes(rank), rank))
        elif rank < heap[0][1]:
            del sizes[heapq.heappushpop(heap, (-int.from_bytes(rank), rank))[1]]
            sizes[rank] = 1
    return sizes


def assign_groups(sizes: dict[bytes, int], dev_n: int, test_n: int) -> dict[bytes, str]:
    """Test, then dev, from the lowest ranks up; each split is filled to at least its size
    (a group is never divided, so the last group can take a split a few pairs over)."""
    chosen, filled = {}, {"test": 0, "dev": 0}
    targets = {"test": test_n, "dev": dev_n}
    for rank in sorted(sizes):
        name = next((n for n in ("test", "dev") if filled[n] < targets[n]), None)
        if name is None:
            break
        chosen[rank] = name
        filled[name] += sizes[rank]
    return chosen


WHAT = ("cleaned corpus", "clean")  # what the input is and the stage that writes it


def _pairs(clean_dir: Path) -> Iterator[tuple[str, str]]:
    return iter_parallel(*corpus_files(clean_dir), *WHAT)


def split_corpus(clean_dir: Path, cfg: SplitConfig, out_dir: Path) -> dict[str, int]:
    """Write {train,dev,test}.{src,tgt} and sizes.json into out_dir; return the sizes."""
    total = count_parallel(*corpus_files(clean_dir), *WHAT)
    dev_n, test_n = _size(cfg.dev_size, total, "dev_size"), _size(cfg.test_size, total, "test_size")
    if dev_n + test_n >= total:
        raise ConfigError(
            f"split.dev_size + split.test_size ({dev_n} + {test_n} pairs) leave no training "
            f"data out of {total} pairs"
        )
    ranks = (group_rank(src, cfg.seed) for src, _ in _pairs(clean_dir))
    chosen = assign_groups(lowest_groups(ranks, dev_n + test_n), dev_n, test_n)
    with atomic_dir(out_dir) as tmp:
        sizes = _write_splits(_pairs(clean_dir), chosen, cfg.seed, tmp, total)
        if not sizes["train"]:
            raise DataError(f"split: no training pairs left out of {total}")
        write_json(tmp / SPLIT_SIZES, sizes)
    log.info("split %d pairs: %s", total, sizes)
    return sizes


def _write_splits(pairs, chosen: dict[bytes, str], seed: int, out_dir: Path, total: int):
    """Write every pair, in corpus order, to the split its group was given (else train)."""
    sizes = dict.fromkeys(SPLITS, 0)
    with ExitStack() as stack:
        files = {
            name: [
                stack.enter_context(open(path, "w", encoding="utf-8", newline="\n"))
                for path in split_files(out_dir, name)
            ]
            for name in SPLITS
        }
        for src, tgt in progress(pairs, total=total, desc="split", unit=" pairs"):
            name = chosen.get(group_rank(src, seed), "train")
            files[name][0].write(src + "\n")
            files[name][1].write(tgt + "\n")
            sizes[name] += 1
    return sizes
