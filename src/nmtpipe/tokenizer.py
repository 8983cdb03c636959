"""SentencePiece subword models: training (byte-reproducible) and loading."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import sentencepiece as spm

from nmtpipe.config import TokenizerConfig
from nmtpipe.errors import DataError, ModelError
from nmtpipe.fileio import atomic_dir, read_split
from nmtpipe.layout import SIDES, tokenizer_file, vocab_file
from nmtpipe.model.ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID

log = logging.getLogger(__name__)

# Thread count changes the unigram model: fixed, so every machine gets the same bytes.
NUM_THREADS = 1


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


def train_tokenizers(split_dir: Path, cfg: TokenizerConfig, out_dir: Path) -> dict[str, int]:
    """Train src.model and tgt.model on the training split; return their vocab sizes.

    With `cfg.shared` one model is trained on the source sentences followed by the
    target sentences, and written as both src.model and tgt.model.
    """
    sizes = {"src": cfg.src_vocab_size, "tgt": cfg.tgt_vocab_size}
    with atomic_dir(out_dir) as tmp:
        train = dict(zip(SIDES, read_split(split_dir, "train"), strict=True))
        if cfg.shared:
            models = dict.fromkeys(SIDES, _train("shared", train["src"] + train["tgt"], cfg))
        else:
            models = {side: _train(side, train[side], cfg) for side in SIDES}
        for side, model in models.items():
            _write(tmp, side, model)
    return sizes


def _train(name: str, sentences: list[str], cfg: TokenizerConfig) -> bytes:
    """Train the src, tgt or shared model; a DataError names the params key of its size."""
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
