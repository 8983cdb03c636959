"""Batched greedy and beam decoding: the encoder runs once per batch, the decoder one
step at a time, both searches as one `tf.while_loop` in a compiled graph.

The one-step decoder is the trained model's own `decode` on a single token with the
carried recurrent state (`graph_decoding`, `beam_search`). The graphs have
shape-generic signatures, so batches of any size and length reuse one trace per
decoder; `translate_sentences` keeps its decoders on the TrainedModel. The length
limit is per sentence, so a translation does not depend on its batch mates.
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from nmtpipe.dataset import encode_source
from nmtpipe.logs import progress
from nmtpipe.model.beam_search import beam_search
from nmtpipe.model.graph_decoding import greedy_search, hyp_lengths
from nmtpipe.tokenizer import BOS_ID, EOS_ID, PAD_ID

log = logging.getLogger(__name__)
MAX_INPUT_PIECES = 256  # longer inputs are truncated: far beyond any training sentence
SRC_SPEC = tf.TensorSpec([None, None], tf.int32, name="src")  # batch x src_len


def pad_batch(src_ids: list[list[int]]) -> np.ndarray:
    """Right-pad id sequences with PAD_ID into a batch x max_len int32 array."""
    src = np.full((len(src_ids), max(len(s) for s in src_ids)), PAD_ID, dtype=np.int32)
    for row, ids in enumerate(src_ids):
        src[row, : len(ids)] = ids
    return src


class GreedyDecoder:
    """Greedy search over a Seq2Seq model; traced once, on its first batch.

    Args:
        model: a trained nmtpipe Seq2Seq.
        max_len_ratio: at most max_len_ratio * source pieces + 10 target pieces.
    """

    def __init__(self, model, max_len_ratio: float = 2.0):
        self.model, self.max_len_ratio = model, max_len_ratio
        self.search = tf.function(self._search, input_signature=[SRC_SPEC])

    def _search(self, src):
        """src: batch x src_len -> (hyps batch x steps, lengths before EOS batch)."""
        hyps = greedy_search(self.model, src, self.max_len_ratio)
        return hyps, hyp_lengths(hyps)

    def max_len(self, src_len: int) -> int:
        """Most target pieces for a source of src_len pieces (EOS included)."""
        return int(self.max_len_ratio * src_len) + 10

    def decode_batch(self, src_ids: list[list[int]]) -> list[list[int]]:
        """Target ids (without BOS/EOS) for a batch of source id sequences."""
        hyps, lengths = self.search(pad_batch(src_ids))
        return [row[:n].tolist() for row, n in zip(hyps.numpy(), lengths.numpy(), strict=True)]


class BeamSearchDecoder(GreedyDecoder):
    """Batched beam search; hypotheses rank by log-probability / length**length_penalty.

    A sentence is done when it has `beam_size` finished hypotheses (see `beam_search`
    for the rules); beam_size 1 is greedy search.
    """

    def __init__(
        self, model, beam_size: int = 5, length_penalty: float = 1.0, max_len_ratio: float = 2.0
    ):
        super().__init__(model, max_len_ratio)
        self.beam_size, self.length_penalty = beam_size, length_penalty

    def _search(self, src):
        """src: batch x src_len -> (scores batch x k, hyps batch x k x steps, lengths)."""
        return beam_search(self.model, src, self.beam_size, self.length_penalty, self.max_len_ratio)

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


def make_decoder(
    model, beam_size: int = 1, length_penalty: float = 1.0, max_len_ratio: float = 2.0
) -> GreedyDecoder:
    """Greedy search for beam_size 1, beam search otherwise."""
    if beam_size == 1:
        return GreedyDecoder(model, max_len_ratio)
    return BeamSearchDecoder(model, beam_size, length_penalty, max_len_ratio)


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


def _truncate(ids: list[int]) -> list[int]:
    return ids if len(ids) <= MAX_INPUT_PIECES else ids[: MAX_INPUT_PIECES - 1] + [EOS_ID]


def translate_sentences(
    trained,
    sentences: list[str],
    batch_size: int = 64,
    max_len_ratio: float = 2.0,
    beam_size: int = 1,
    length_penalty: float = 1.0,
    desc: str = "translate",
    decoder: GreedyDecoder | None = None,
) -> list[str]:
    """Translate sentences in batches of similar length; one output per input, order kept.

    Empty or blank inputs translate to empty outputs; inputs longer than
    MAX_INPUT_PIECES subword pieces are truncated, with a warning. The decoder for
    (beam_size, length_penalty, max_len_ratio) is made once per TrainedModel and
    kept in `trained.decoders`, so later calls reuse its compiled graph. A `decoder`
    passed in is used instead (then those three are the decoder's own).
    """
    if decoder is None:
        key = (beam_size, length_penalty, max_len_ratio)
        if key not in trained.decoders:
            trained.decoders[key] = make_decoder(trained.model, *key)
        decoder = trained.decoders[key]
    outputs = [""] * len(sentences)
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    encoded = encode_source(trained.sp_src, [sentences[i] for i in todo])
    src_ids = {i: _truncate(ids) for i, ids in zip(todo, encoded, strict=True)}
    too_long = sum(len(ids) > MAX_INPUT_PIECES for ids in encoded)
    if too_long:
        log.warning("%d input(s) longer than %d pieces were truncated", too_long, MAX_INPUT_PIECES)
    order = sorted(todo, key=lambda i: len(src_ids[i]))
    with progress(total=len(order), desc=desc, unit=" sent") as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            hyps = decoder.decode_batch([src_ids[i] for i in batch])
            for i, ids in zip(batch, hyps, strict=True):
                outputs[i] = trained.sp_tgt.decode([int(t) for t in ids])
            bar.update(len(batch))
    return outputs
