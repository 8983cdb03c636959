"""The TensorFlow engine: nmtpipe's own greedy and beam search over a Keras model.

Every architecture; the search is `decoders.make_decoder`, each sentence with its own
length limit inside the graph (`loop`), so batches need no care here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

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
