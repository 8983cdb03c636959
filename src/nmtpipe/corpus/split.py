"""The split stage: a seeded train/dev/test split grouped by source sentence.

All pairs whose source sentences are equal up to case, punctuation and spacing
land in the same split, so no test source was seen in training, and every
reference translation of a test source stays in the test split.
"""

from __future__ import annotations

import logging
import random
import unicodedata
from pathlib import Path

from nmtpipe.config import SplitConfig
from nmtpipe.errors import ConfigError, DataError
from nmtpipe.fileio import atomic_dir, read_parallel, write_json, write_lines
from nmtpipe.layout import SPLIT_SIZES, corpus_files, split_files

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")


def group_key(sentence: str) -> str:
    """Case-, punctuation- and spacing-insensitive form of a sentence."""
    folded = unicodedata.normalize("NFKC", sentence).casefold()
    kept = "".join(c if c.isalnum() else " " for c in folded)
    return " ".join(kept.split())


def _size(value: float, total: int, key: str) -> int:
    size = round(value * total) if value < 1 else int(value)
    if size < 1:
        raise ConfigError(f"split.{key} = {value} gives no pairs out of {total}")
    return size


def assign_groups(sources: list[str], dev_n: int, test_n: int, seed: int) -> dict[str, list[int]]:
    """Return the pair indices of each split: test first, then dev, the rest train."""
    groups: dict[str, list[int]] = {}
    for index, src in enumerate(sources):
        groups.setdefault(group_key(src), []).append(index)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    chosen: dict[str, list[int]] = {name: [] for name in SPLITS}
    targets = {"test": test_n, "dev": dev_n}
    for key in keys:
        name = next((n for n in ("test", "dev") if len(chosen[n]) < targets[n]), "train")
        chosen[name].extend(groups[key])
    return {name: sorted(indices) for name, indices in chosen.items()}


def split_corpus(clean_dir: Path, cfg: SplitConfig, out_dir: Path) -> dict[str, int]:
    """Write {train,dev,test}.{src,tgt} and sizes.json into out_dir; return the sizes."""
    src, tgt = read_parallel(*corpus_files(clean_dir), "cleaned corpus", "clean")
    total = len(src)
    dev_n, test_n = _size(cfg.dev_size, total, "dev_size"), _size(cfg.test_size, total, "test_size")
    if dev_n + test_n >= total:
        raise ConfigError(
            f"split.dev_size + split.test_size ({dev_n} + {test_n} pairs) leave no training "
            f"data out of {total} pairs"
        )
    indices = assign_groups(src, dev_n, test_n, cfg.seed)
    if not indices["train"]:
        raise DataError(f"split: no training pairs left out of {total}")
    sizes = {name: len(ids) for name, ids in indices.items()}
    with atomic_dir(out_dir) as tmp:
        for name, ids in indices.items():
            src_file, tgt_file = split_files(tmp, name)
            write_lines(src_file, (src[i] for i in ids))
            write_lines(tgt_file, (tgt[i] for i in ids))
        write_json(tmp / SPLIT_SIZES, sizes)
    log.info("split %d pairs: %s", total, sizes)
    return sizes
