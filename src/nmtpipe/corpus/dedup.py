"""OpusFilter with a `remove_duplicates` step in about 8 bytes per distinct pair.

OpusFilter's own step (3.3) keeps a collections.Counter entry per distinct pair,
about 90 bytes: +100 MB per million pairs, the one part of cleaning that grows with
the corpus. This one keeps the same 64-bit xxhash keys (OpusFilter's SegmentHasher,
so `compare`, `hash`, `lowercase`, `letters_only`, ... mean what they mean there) in
a sorted numpy array, checked and merged a chunk of pairs at a time. It writes the
same lines. A step with `overlap` or `hash: null` runs OpusFilter's own.
"""

from __future__ import annotations

import itertools
import logging
import os

import numpy as np
from opusfilter import segment_hash
from opusfilter.opusfilter import OpusFilter
from opusfilter.util import file_open

log = logging.getLogger(__name__)

CHUNK = 100_000  # pairs hashed and checked at a time
PARAMETERS = {"inputs", "outputs", "compare", "hash", "letters_only", "letter_words_only"}
PARAMETERS |= {"lowercase", "tokenizers", "overlap"}


class HashSet:
    """Distinct uint64 keys, sorted: 8 bytes each (transiently 24 while merging)."""

    def __init__(self):
        self.keys = np.empty(0, dtype=np.uint64)

    def add_new(self, keys: np.ndarray) -> np.ndarray:
        """Mark each key that is neither in the set nor earlier in `keys`; add those."""
        first = np.zeros(len(keys), dtype=bool)
        first[np.unique(keys, return_index=True)[1]] = True
        at = np.searchsorted(self.keys, keys)
        seen = at < len(self.keys)
        seen[seen] = self.keys[at[seen]] == keys[seen]
        new = first & ~seen
        self.keys = np.sort(np.concatenate([self.keys, keys[new]]), kind="stable")
        return new


class LowMemoryOpusFilter(OpusFilter):
    """OpusFilter whose remove_duplicates step keeps a HashSet instead of a Counter."""

    chunk = CHUNK

    def remove_duplicates(self, parameters, overwrite=False):
        if parameters.get("overlap") or parameters.get("hash", "xxh64") is None:
            return super().remove_duplicates(parameters, overwrite=overwrite)
        self._check_extra_parameters(PARAMETERS, parameters)
        hasher = segment_hash.SegmentHasher(
            compare=parameters.get("compare", "all"),
            method=parameters.get("hash", "xxh64"),
            letters_only=parameters.get("letters_only", False),
            letter_words_only=parameters.get("letter_words_only", False),
            lowercase=parameters.get("lowercase", False),
            tokenizers=parameters.get("tokenizers"),
        )
        paths = [
            [os.path.join(self.output_dir, name) for name in parameters[key]]
            for key in ("inputs", "outputs")
        ]
        seen, total = HashSet(), 0
        ins = [file_open(path) for path in paths[0]]
        outs = [file_open(path, "w") for path in paths[1]]
        try:
            pairs = zip(*ins, strict=True)
            while chunk := list(itertools.islice(pairs, self.chunk)):
                keys = np.fromiter((hasher.apply(lines) for lines in chunk), np.uint64, len(chunk))
                for lines, new in zip(chunk, seen.add_new(keys), strict=True):
                    if new:
                        self._lines_to_files(lines, outs)
                total += len(chunk)
        finally:
            self._close_files(*ins, *outs)
        log.info("removed %d duplicate pairs of %d", total - len(seen.keys), total)
