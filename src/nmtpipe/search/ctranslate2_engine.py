"""The CTranslate2 engine: the Transformer's export (`serving.ctranslate2_export`) on the
CPU, without TensorFlow.

How nmtpipe's search settings map onto `Translator.translate_batch`:

- Sources are SentencePiece pieces without EOS: the converted model adds it
  (`add_source_eos`). Targets come back as pieces and are mapped to ids.
- Length limit: nmtpipe's is per sentence (`SearchSettings.max_target_len` of its
  pieces, EOS included), CTranslate2's `max_decoding_length` per call. Greedy search
  runs one call per batch with the batch's largest limit, and each hypothesis is cut
  to its own limit afterwards: a greedy hypothesis' first n pieces do not depend on
  the limit, so the cut one is the one its own limit gives, and a batch stays one call.
  Beam search runs one call per run of equal limits in the batch (a batch is sorted
  by length, so there are few): which hypotheses finish, and how they rank, depends on
  the limit, so a cut would not be exact.
- Length penalty: the same value. Both rank by log-probability /
  length**length_penalty with the EOS counted in the length (and its log-probability
  in the sum); a hypothesis cut at its limit has no EOS in either. CTranslate2 4.8
  counts the EOS whether or not it returns it: `test_ctranslate2s_length_penalty_is_
  nmtpipes` checks its scores against Keras' log-probabilities, with `call_options`.
  (The beam searches still differ in detail: CTranslate2 finishes only EOS
  candidates among a step's top beam_size, nmtpipe every EOS ranked before the
  beam_size-th live one; greedy search is the same, token for token.)
- Threads: `inter_threads` batches run at once, `intra_threads` threads each; one per
  core and one thread each was fastest for many short sentences (pitfalls.md), so
  each call is queued asynchronously, a few ahead of the one being read.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace

import ctranslate2
import numpy as np

from nmtpipe.cores import usable_cores
from nmtpipe.errors import ConfigError, ModelError, first_line
from nmtpipe.modeldir import CTranslate2Model
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import MAX_INPUT_PIECES

QUEUED_PER_WORKER = 2  # calls queued per inter thread, so none waits for the next batch


class CTranslate2Engine:
    """A CTranslate2 Translator over a CTranslate2 directory, on the CPU.

    Args:
        exported: a `modeldir.CTranslate2Model` (`load_ctranslate2_dir`).
        inter_threads: batches translated at once (default: the usable cores,
            `cores.usable_cores`, which NMTPIPE_THREADS caps).
        intra_threads: threads per batch.
    """

    name = "ctranslate2"

    def __init__(
        self, exported: CTranslate2Model, inter_threads: int | None = None, intra_threads: int = 1
    ):
        self.path, self.sp_src, self.sp_tgt = exported.path, exported.sp_src, exported.sp_tgt
        self.info = exported.info
        self.pair = (exported.info.get("src_lang"), exported.info.get("tgt_lang"))
        self.inter_threads, self.intra_threads = inter_threads or usable_cores(), intra_threads
        try:
            self.translator = ctranslate2.Translator(
                str(exported.path),
                device="cpu",
                inter_threads=self.inter_threads,
                intra_threads=intra_threads,
            )
        except (RuntimeError, ValueError) as err:
            raise ModelError(
                f"{self.path}: cannot load the CTranslate2 model ({first_line(err)})"
            ) from None

    def check(self, settings: SearchSettings) -> None:
        """A length limit beyond the model's position table is a ConfigError."""
        longest, rows = settings.max_target_len(MAX_INPUT_PIECES), self.info["max_positions"]
        if longest > rows:
            raise ConfigError(
                f"max_len_ratio {settings.max_len_ratio} allows {longest} target pieces, but "
                f"{self.path} has {rows} positions (export it with a larger export.max_len_ratio)"
            )

    def decode_batches(
        self, batches: Iterable[list[list[int]]], settings: SearchSettings
    ) -> Iterator[list[list[int]]]:
        """Target ids (no BOS/EOS) of each batch of source ids (each ending in EOS), in order;
        later batches are translated while earlier ones are read."""
        for nbest in self.nbest_batches(batches, settings, 1):
            yield [hyps[0] for hyps in nbest]

    def nbest_batches(
        self, batches: Iterable[list[list[int]]], settings: SearchSettings, n: int
    ) -> Iterator[list[list[list[int]]]]:
        """Up to n hypotheses' target ids per source, best first (at least n beams)."""
        self.check(settings)
        settings = replace(settings, beam_size=max(settings.beam_size, n))
        queued = deque()
        for batch in batches:
            queued.append(self._submit(batch, settings, n))
            if len(queued) > QUEUED_PER_WORKER * self.inter_threads:
                yield self._collect(*queued.popleft())
        while queued:
            yield self._collect(*queued.popleft())

    def attention(self, src_ids: list[int], tgt_ids: list[int]) -> np.ndarray:
        """Cross-attention of the last decoder layer, mean over heads (the export's
        alignment heads), teacher-forced on tgt_ids, then EOS."""
        pieces = [self.sp_src.id_to_piece(i) for i in src_ids[:-1]]  # the model adds EOS
        prefix = [self.sp_tgt.id_to_piece(i) for i in tgt_ids] + ["</s>"]
        # a piece after the EOS: a hypothesis that ends at a forced EOS comes back without
        # the EOS's attention row (CTranslate2 4.x); one that goes on keeps it
        (result,) = self.translator.translate_batch(
            [pieces],
            target_prefix=[prefix + ["<unk>"]],
            return_attention=True,
            max_decoding_length=len(prefix) + 2,
            min_decoding_length=0,
        )
        weights = np.asarray(result.attention[0], np.float32)[: len(prefix)]
        # CTranslate2 leaves out the column of the EOS it added: the rest of each row's 1
        return np.concatenate([weights, 1.0 - weights.sum(axis=1, keepdims=True)], axis=1)

    def _submit(self, batch: list[list[int]], settings: SearchSettings, n: int):
        """Queue a batch's calls; returns (each sentence's limit, its pending result, n)."""
        limits = [settings.max_target_len(len(ids)) for ids in batch]
        pieces = [[self.sp_src.id_to_piece(i) for i in ids[:-1]] for ids in batch]  # no EOS
        pending = []
        for start, stop in call_runs(limits, settings.beam_size):
            options = call_options(settings, max(limits[start:stop]))
            pending += self.translator.translate_batch(
                pieces[start:stop], asynchronous=True, num_hypotheses=n, **options
            )
        return limits, pending, n

    def _collect(self, limits: list[int], pending: list, n: int) -> list[list[list[int]]]:
        """Each sentence's n best hypotheses as ids, each cut to its own limit."""
        return [
            [
                [self.sp_tgt.piece_to_id(p) for p in hyp[:limit]]
                for hyp in result.result().hypotheses[:n]
            ]
            for limit, result in zip(limits, pending, strict=True)
        ]


def call_options(settings: SearchSettings, max_decoding_length: int) -> dict:
    """The search options of one `translate_batch` call (see the module docstring)."""
    return {
        "beam_size": settings.beam_size,
        "length_penalty": settings.length_penalty,
        "max_decoding_length": max_decoding_length,
        "min_decoding_length": 0,  # CTranslate2's default, 1, forbids an empty translation
        "return_scores": False,
    }


def call_runs(limits: list[int], beam_size: int) -> list[tuple[int, int]]:
    """The (start, stop) slices of a batch translated by one call each: the whole batch for
    greedy search, each run of equal limits for beam search (see the module docstring)."""
    if not limits:
        return []
    if beam_size == 1:
        return [(0, len(limits))]
    starts = [0] + [i for i in range(1, len(limits)) if limits[i] != limits[i - 1]]
    return list(zip(starts, starts[1:] + [len(limits)], strict=True))
