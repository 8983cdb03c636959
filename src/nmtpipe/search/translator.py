"""Sentences in, translations out, over either engine.

`translate_sentences` tokenizes, truncates to MAX_INPUT_PIECES, sorts by length,
batches and detokenizes; an engine turns batches of source ids into target ids:

- `tensorflow_engine.TensorFlowEngine`: nmtpipe's own greedy and beam search
  (`decoders`), every architecture, from a trained-model directory;
- `ctranslate2_engine.CTranslate2Engine`: CTranslate2 on the CPU, the Transformer's
  export, without TensorFlow.

`load_engine` opens either from a directory. This module imports neither engine (nor
TensorFlow) until one is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from nmtpipe.errors import ModelError
from nmtpipe.ids.tokenizer import encode_source
from nmtpipe.layout import MODEL_FILE
from nmtpipe.logs import progress
from nmtpipe.model.ids import EOS_ID
from nmtpipe.modeldir import (
    CT2_DIR,
    CT2_INFO,
    is_ctranslate2_dir,
    load_ctranslate2_dir,
    load_model_dir,
)
from nmtpipe.search.settings import SearchSettings

log = logging.getLogger(__name__)
MAX_INPUT_PIECES = 256  # longer inputs are truncated: far beyond any training sentence
ENGINES = ("auto", "tensorflow", "ctranslate2")
DEFAULT_SETTINGS = SearchSettings()


class Engine(Protocol):
    """What `translate_sentences` drives: batches of source ids in, target ids out."""

    name: str  # "tensorflow" or "ctranslate2"
    sp_src: object  # sentencepiece.SentencePieceProcessor
    sp_tgt: object

    def decode_batches(
        self, batches: Iterable[list[list[int]]], settings: SearchSettings
    ) -> Iterator[list[list[int]]]:
        """Target ids (no BOS/EOS) of each batch of source ids (each ending in EOS), batch
        by batch in order; each sentence with its own length limit."""
        ...

    def nbest_batches(
        self, batches: Iterable[list[list[int]]], settings: SearchSettings, n: int
    ) -> Iterator[list[list[list[int]]]]:
        """Up to n hypotheses' target ids per source, best first (beam search with at
        least n beams), batch by batch in order."""
        ...

    def attention(self, src_ids: list[int], tgt_ids: list[int]):
        """Cross-attention of one translation, (len(tgt_ids) + 1) x len(src_ids) (the last
        row for EOS; src_ids ending in EOS), or None for a network without attention."""
        ...

    @property
    def pair(self) -> tuple[str | None, str | None]:
        """(source language, target language) the model translates."""
        ...


def truncate(ids: list[int]) -> list[int]:
    """Source ids cut to MAX_INPUT_PIECES, the last one kept EOS."""
    return ids if len(ids) <= MAX_INPUT_PIECES else ids[: MAX_INPUT_PIECES - 1] + [EOS_ID]


def translate_sentences(
    engine: Engine,
    sentences: list[str],
    settings: SearchSettings = DEFAULT_SETTINGS,
    batch_size: int = 64,
    desc: str = "translate",
) -> list[str]:
    """Translate sentences in batches of similar length; one output per input, order kept.

    Args:
        engine: a `TensorFlowEngine` or `CTranslate2Engine` (`load_engine`).
        sentences: the sources. Blank ones translate to empty outputs; inputs longer
            than MAX_INPUT_PIECES subword pieces are truncated, with a warning.
        settings: beam size, length penalty and length limit.
        batch_size: sentences decoded per batch.
        desc: the progress bar's label.
    """
    batches, outputs = _batches(engine, sentences, batch_size), [""] * len(sentences)
    hyps = engine.decode_batches(([ids for _, ids in batch] for batch in batches), settings)
    with progress(total=sum(map(len, batches)), desc=desc, unit=" sent") as bar:
        for batch, batch_hyps in zip(batches, hyps, strict=True):
            for (i, _), ids in zip(batch, batch_hyps, strict=True):
                outputs[i] = engine.sp_tgt.decode(ids)
            bar.update(len(batch))
    return outputs


def translate_nbest(
    engine: Engine,
    sentences: list[str],
    settings: SearchSettings,
    n: int,
    batch_size: int = 64,
) -> list[list[str]]:
    """Up to n translations of each sentence, best first (beam search with at least n
    beams); a blank sentence gets [""]. Batched and truncated as `translate_sentences`."""
    batches, outputs = _batches(engine, sentences, batch_size), [[""] for _ in sentences]
    hyps = engine.nbest_batches(([ids for _, ids in b] for b in batches), settings, n)
    for batch, batch_hyps in zip(batches, hyps, strict=True):
        for (i, _), nbest in zip(batch, batch_hyps, strict=True):
            outputs[i] = [engine.sp_tgt.decode(ids) for ids in nbest] or [""]
    return outputs


def _batches(engine: Engine, sentences: list[str], batch_size: int) -> list[list[tuple]]:
    """The non-blank sentences as (index, source ids) batches, sorted by length; sources
    longer than MAX_INPUT_PIECES truncated, with a warning."""
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    encoded = encode_source(engine.sp_src, [sentences[i] for i in todo])
    too_long = sum(len(ids) > MAX_INPUT_PIECES for ids in encoded)
    if too_long:
        log.warning("%d input(s) longer than %d pieces were truncated", too_long, MAX_INPUT_PIECES)
    pairs = sorted(zip(todo, map(truncate, encoded), strict=True), key=lambda p: len(p[1]))
    return [pairs[start : start + batch_size] for start in range(0, len(pairs), batch_size)]


@dataclass
class Attention:
    """Cross-attention of one translation: target pieces (then EOS) x source pieces (then
    EOS)."""

    src_pieces: list[str]
    tgt_pieces: list[str]
    weights: object  # numpy array, len(tgt_pieces) x len(src_pieces); None without attention


def attention_of(engine: Engine, src_ids: list[int], tgt_ids: list[int]) -> Attention:
    """The Attention of translating src_ids (ending in EOS) into tgt_ids (no BOS/EOS),
    teacher-forced on tgt_ids: the decoder is deterministic given its prefix, so for a
    search's own output these are the weights it searched with."""
    return Attention(
        [engine.sp_src.id_to_piece(i) for i in src_ids],
        [engine.sp_tgt.id_to_piece(i) for i in [*tgt_ids, EOS_ID]],
        engine.attention(src_ids, tgt_ids),
    )


def translate_with_attention(
    engine: Engine, sentence: str, settings: SearchSettings = DEFAULT_SETTINGS
) -> tuple[str, Attention]:
    """One sentence's translation and its Attention."""
    src_ids = truncate(encode_source(engine.sp_src, [sentence])[0])
    tgt_ids = next(iter(engine.decode_batches([[src_ids]], settings)))[0]
    return engine.sp_tgt.decode(tgt_ids), attention_of(engine, src_ids, tgt_ids)


def ctranslate2_dir(path: Path) -> Path | None:
    """The CTranslate2 directory path is, or holds as an export directory's CT2_DIR."""
    for candidate in (Path(path), Path(path) / CT2_DIR):
        if is_ctranslate2_dir(candidate):
            return candidate
    return None


def load_engine(
    path: Path, engine: str = "auto", pair: tuple[str | None, str | None] = (None, None)
) -> Engine:
    """The engine for a model directory or a CTranslate2 directory (or an export directory
    holding one); a wrong directory for the engine asked is a one-line ModelError.

    Args:
        path: the directory.
        engine: "auto" (CTranslate2 for a CTranslate2 directory, else TensorFlow),
            "tensorflow" or "ctranslate2".
        pair: (src_lang, tgt_lang) the model must translate, None for either's "any".
    """
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
    path, ct2 = Path(path), ctranslate2_dir(path)
    if engine == "ctranslate2" and ct2 is None:
        raise ModelError(
            f"{path}: no CTranslate2 model (no {CT2_INFO}, nor {CT2_DIR}/{CT2_INFO}): --engine "
            "ctranslate2 needs a Transformer's export (dvc repro export)"
        )
    if engine == "tensorflow" and ct2 is not None and not (path / MODEL_FILE).is_file():
        raise ModelError(
            f"{path}: a CTranslate2 model: --engine tensorflow needs a trained model "
            f"directory ({MODEL_FILE})"
        )
    if ct2 is not None and engine != "tensorflow":
        from nmtpipe.search.ctranslate2_engine import CTranslate2Engine

        return CTranslate2Engine(load_ctranslate2_dir(ct2, pair))
    from nmtpipe.search.tensorflow_engine import TensorFlowEngine

    return TensorFlowEngine(load_model_dir(path, pair))
