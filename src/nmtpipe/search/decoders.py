"""Greedy and beam search as Python objects: id lists in, id lists out.

Each decoder wraps its search (`greedy`, `beam`) in one `tf.function` with a
shape-generic signature, so batches of any size and length reuse one trace.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from nmtpipe.model.ids import PAD_ID
from nmtpipe.search.beam import beam_search
from nmtpipe.search.greedy import greedy_search, hyp_lengths
from nmtpipe.search.settings import SearchSettings

SRC_SPEC = tf.TensorSpec([None, None], tf.int32, name="src")  # batch x src_len


def pad_batch(src_ids: list[list[int]]) -> np.ndarray:
    """Right-pad id sequences with PAD_ID into a batch x max_len int32 array."""
    src = np.full((len(src_ids), max(len(s) for s in src_ids)), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(src_ids):
        src[row, : len(ids)] = ids
    return src


class GreedyDecoder:
    """Greedy search over a Seq2Seq model; traced once, on its first batch."""

    def __init__(self, model, settings: SearchSettings):
        self.model, self.settings = model, settings
        self.search = tf.function(self._search, input_signature=[SRC_SPEC])

    def _search(self, src):
        """src: batch x src_len -> (hyps batch x steps, lengths before EOS batch)."""
        hyps = greedy_search(self.model, src, self.settings.max_len_ratio)
        return hyps, hyp_lengths(hyps)

    def decode_batch(self, src_ids: list[list[int]]) -> list[list[int]]:
        """Target ids (without BOS/EOS) for a batch of source id sequences."""
        hyps, lengths = self.search(pad_batch(src_ids))
        return [row[:n].tolist() for row, n in zip(hyps.numpy(), lengths.numpy(), strict=True)]


class BeamSearchDecoder(GreedyDecoder):
    """Batched beam search; hypotheses rank by log-probability / length**length_penalty.

    A sentence is done when it has `beam_size` finished hypotheses (see `beam` for the
    rules); beam_size 1 is greedy search.
    """

    def _search(self, src):
        """src: batch x src_len -> (scores batch x k, hyps batch x k x steps, lengths)."""
        s = self.settings
        return beam_search(self.model, src, s.beam_size, s.length_penalty, s.max_len_ratio)

    def nbest_batch(self, src_ids: list[list[int]]) -> list[list[tuple[float, list[int]]]]:
        """Up to beam_size (normalised score, target ids) per source, best first.

        A hypothesis' length counts its EOS, the log-probability includes it.
        """
        scores, hyps, lengths = (x.numpy() for x in self.search(pad_batch(src_ids)))
        return [
            [
                (float(sc), row[:n].tolist())
                for sc, row, n in zip(*best, strict=True)
                if sc > -np.inf
            ]
            for best in zip(scores, hyps, lengths, strict=True)
        ]

    def decode_batch(self, src_ids: list[list[int]]) -> list[list[int]]:
        return [nbest[0][1] if nbest else [] for nbest in self.nbest_batch(src_ids)]


def make_decoder(model, settings: SearchSettings) -> GreedyDecoder:
    """Greedy search for beam_size 1, beam search otherwise."""
    if settings.beam_size == 1:
        return GreedyDecoder(model, settings)
    return BeamSearchDecoder(model, settings)
