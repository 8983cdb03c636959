"""SentencePiece subword models: training (byte-reproducible) and loading."""

from __future__ import annotations

import io
import itertools
import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from nmtpipe.config import TokenizerConfig
from nmtpipe.errors import DataError, ModelError
from nmtpipe.fileio import atomic_dir
from nmtpipe.layout import SIDES, split_files, tokenizer_file, vocab_file
from nmtpipe.model.ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID

log = logging.getLogger(__name__)

# Thread count changes the unigram model: fixed, so every machine gets the same bytes.
NUM_THREADS = 1
# The seed of the sentence sample (tokenizer.max_sentences): fixed, so the same split
# and params give the same models.
SAMPLE_SEED = 20261206


def train_sentencepiece(sentences: list[str], vocab_size: int, cfg: TokenizerConfig) -> bytes:
    """Train one SentencePiece model from memory and return its serialized bytes.

    Training from an iterator (not a file path) keeps input paths out of the
    model, so the bytes depend only on the sentences and the options.
    """
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=model,
            model_type=cfg.model_type,
            vocab_size=vocab_size,
            character_coverage=cfg.character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            num_threads=NUM_THREADS,
            input_sentence_size=0,  # use every sentence: sampling is not reproducible
            minloglevel=2,
        )
    except RuntimeError as err:
        reason = str(err).splitlines()[-1].split("] ")[-1]  # drop the C++ source position
        raise DataError(f"SentencePiece training failed: {reason}") from None
    return model.getvalue()


def sample_lines(lines: Iterable[str], count: int, seed: int = SAMPLE_SEED) -> list[str]:
    """A seeded uniform sample of at most `count` lines of a stream, in stream order.

    Reservoir sampling: memory for `count` lines whatever the stream's length, and
    every line when there are at most `count` (so small corpora train on all of them).
    """
    rng = random.Random(seed)
    kept: list[tuple[int, str]] = []
    for index, line in enumerate(lines):
        if index < count:
            kept.append((index, line))
        elif (slot := rng.randrange(index + 1)) < count:
            kept[slot] = (index, line)
    return [line for _, line in sorted(kept)]


def train_tokenizers(split_dir: Path, cfg: TokenizerConfig, out_dir: Path) -> dict[str, int]:
    """Train src.model and tgt.model on the training split; return their vocab sizes.

    Each model trains on a seeded sample of at most `cfg.max_sentences` sentences
    (all of them on a smaller split), streamed from the files. With `cfg.shared` one
    model is trained on a sample of the source sentences followed by the target
    sentences, and written as both src.model and tgt.model.
    """
    sizes = {"src": cfg.src_vocab_size, "tgt": cfg.tgt_vocab_size}
    files = dict(zip(SIDES, split_files(split_dir, "train"), strict=True))
    for path in files.values():
        if not path.is_file():
            raise DataError(f"{path}: train split not found (run split)")
    with atomic_dir(out_dir) as tmp:
        if cfg.shared:
            lines = itertools.chain(*(_lines(path) for path in files.values()))
            models = dict.fromkeys(SIDES, _train("shared", lines, cfg))
        else:
            models = {side: _train(side, _lines(files[side]), cfg) for side in SIDES}
        for side, model in models.items():
            _write(tmp, side, model)
    return sizes


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            yield line.rstrip("\n")


def _train(name: str, lines: Iterable[str], cfg: TokenizerConfig) -> bytes:
    """Train the src, tgt or shared model on a sample of `lines`; a DataError names the
    params key of its size."""
    sentences = sample_lines(lines, cfg.max_sentences)
    log.info("training the %s tokenizer on %d sentences", name, len(sentences))
    size = cfg.tgt_vocab_size if name == "tgt" else cfg.src_vocab_size  # shared: both equal
    key = "src_vocab_size=tgt_vocab_size" if name == "shared" else f"{name}_vocab_size"
    try:
        return train_sentencepiece(sentences, size, cfg)
    except DataError as err:
        raise DataError(f"tokenizer.{key}={size}: {err}") from None


def _write(tok_dir: Path, side: str, model: bytes) -> None:
    """Write one side's model and its human-readable vocabulary (piece, score)."""
    tokenizer_file(tok_dir, side).write_bytes(model)
    processor = spm.SentencePieceProcessor(model_proto=model)
    vocab = (
        f"{processor.id_to_piece(i)}\t{processor.get_score(i)}"
        for i in range(processor.get_piece_size())
    )
    vocab_file(tok_dir, side).write_text("\n".join(vocab) + "\n", encoding="utf-8")


def load_tokenizer(path: Path) -> spm.SentencePieceProcessor:
    """Load a SentencePiece model; a missing or corrupt file is a ModelError."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: tokenizer model not found") from None
    try:
        return spm.SentencePieceProcessor(model_proto=data)
    except RuntimeError:
        raise ModelError(f"{path}: not a valid SentencePiece model") from None


def encode_source(sp_src, sentences: list[str]) -> list[list[int]]:
    """Source ids end with EOS so the encoder sees where the sentence stops."""
    return [ids + [EOS_ID] for ids in sp_src.encode(sentences)]
