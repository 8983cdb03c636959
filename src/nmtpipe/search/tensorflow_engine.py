"""The TensorFlow engine: nmtpipe's own greedy and beam search over a Keras model.

Every architecture; the search is `decoders.make_decoder`, each sentence with its own
length limit inside the graph (`loop`), so batches need no care here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from nmtpipe.model.ids import BOS_ID
from nmtpipe.modeldir import TrainedModel
from nmtpipe.search.decoders import GreedyDecoder, make_decoder
from nmtpipe.search.settings import SearchSettings


class TensorFlowEngine:
    """A trained model and its decoders, one per SearchSettings, each traced on its first
    batch and reused by later calls (keep one engine per model).

    Args:
        trained: a `modeldir.TrainedModel` (`load_model_dir`, or built in training).
    """

    name = "tensorflow"

    def __init__(self, trained: TrainedModel):
        self.model, self.sp_src, self.sp_tgt = trained.model, trained.sp_src, trained.sp_tgt
        self.pair = (trained.config.get("src_lang"), trained.config.get("tgt_lang"))
        self.decoders: dict[SearchSettings, GreedyDecoder] = {}

    def decoder(self, settings: SearchSettings) -> GreedyDecoder:
        """The decoder for settings, made once."""
        if settings not in self.decoders:
            self.decoders[settings] = make_decoder(self.model, settings)
        return self.decoders[settings]

    def decode_batches(
        self, batches: Iterable[list[list[int]]], settings: SearchSettings
    ) -> Iterator[list[list[int]]]:
        """Target ids (no BOS/EOS) of each batch of source ids (each ending in EOS)."""
        decoder = self.decoder(settings)
        for batch in batches:
            yield decoder.decode_batch(batch)

    def nbest_batches(
        self, batches: Iterable[list[list[int]]], settings: SearchSettings, n: int
    ) -> Iterator[list[list[list[int]]]]:
        """Up to n hypotheses' target ids per source, best first (at least n beams)."""
        settings = replace(settings, beam_size=max(settings.beam_size, n))
        if settings.beam_size == 1:  # greedy search: one hypothesis
            yield from ([[ids] for ids in hyps] for hyps in self.decode_batches(batches, settings))
            return
        decoder = self.decoder(settings)
        for batch in batches:
            yield [[ids for _, ids in nbest[:n]] for nbest in decoder.nbest_batch(batch)]

    def attention(self, src_ids: list[int], tgt_ids: list[int]) -> np.ndarray | None:
        return attention_weights(self.model, src_ids, tgt_ids)


def attention_weights(model, src_ids: list[int], tgt_ids: list[int]) -> np.ndarray | None:
    """Attention of one translation, (len(tgt_ids) + 1) x len(src_ids), the last row for EOS.

    Teacher-forced on the translation's own pieces: the decoder is deterministic
    given its prefix, so these are the weights the search computed. None without
    attention.
    """
    src = np.array([src_ids], dtype=np.int32)
    tgt_in = np.array([[BOS_ID, *tgt_ids]], dtype=np.int32)
    enc_out, enc_mask, states = model.encode(src)
    _, _, weights = model.decode(tgt_in, enc_out, enc_mask, states)
    return None if weights is None else np.asarray(weights)[0]
