import re

import pytest

from nmtpipe.config import TokenizerConfig
from nmtpipe.errors import ConfigError, DataError, ModelError
from nmtpipe.ids.tokenizer import (
    load_tokenizer,
    sample_lines,
    train_sentencepiece,
    train_tokenizers,
)
from nmtpipe.model.ids import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from tests.conftest import sample_pairs


@pytest.fixture
def split_dir(tmp_path):
    split = tmp_path / "split"
    split.mkdir()
    pairs = sample_pairs(800)
    (split / "train.src").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (split / "train.tgt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
    return split


def test_special_ids_and_round_trip(split_dir, tmp_path):
    train_tokenizers(
        split_dir, TokenizerConfig(src_vocab_size=300, tgt_vocab_size=350), tmp_path / "tok"
    )
    sp_src, sp_tgt = (
        load_tokenizer(tmp_path / "tok/src.model"),
        load_tokenizer(tmp_path / "tok/tgt.model"),
    )
    assert (sp_src.get_piece_size(), sp_tgt.get_piece_size()) == (300, 350)
    assert (sp_tgt.pad_id(), sp_tgt.unk_id(), sp_tgt.bos_id(), sp_tgt.eos_id()) == (
        PAD_ID,
        UNK_ID,
        BOS_ID,
        EOS_ID,
    )
    text = "¿Dónde está la estación?"
    ids = sp_tgt.encode(text)
    assert PAD_ID not in ids and sp_tgt.decode(ids) == text
    assert (tmp_path / "tok/src.vocab").read_text().splitlines()[0] == "<pad>\t0.0"


def test_byte_identical_when_trained_twice_elsewhere(split_dir, tmp_path):
    cfg = TokenizerConfig(src_vocab_size=300, tgt_vocab_size=300)
    train_tokenizers(split_dir, cfg, tmp_path / "a")
    moved = tmp_path / "elsewhere" / "split"
    moved.parent.mkdir()
    split_dir.rename(moved)
    train_tokenizers(moved, cfg, tmp_path / "b")
    for name in ("src.model", "tgt.model", "src.vocab", "tgt.vocab"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_vocab_too_large_for_the_corpus(split_dir, tmp_path):
    with pytest.raises(DataError, match="tokenizer.src_vocab_size=50000: .*[Vv]ocabulary size"):
        train_tokenizers(split_dir, TokenizerConfig(src_vocab_size=50000), tmp_path / "tok")
    assert not (tmp_path / "tok").exists()


def test_corrupt_model_file(tmp_path):
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a valid SentencePiece model"):
        load_tokenizer(tmp_path / "bad.model")


def test_shared_model_is_trained_on_both_sides_and_written_twice(split_dir, tmp_path):
    cfg = TokenizerConfig(src_vocab_size=400, tgt_vocab_size=400, shared=True)
    assert train_tokenizers(split_dir, cfg, tmp_path / "tok") == {"src": 400, "tgt": 400}
    for kind in ("model", "vocab"):
        src, tgt = ((tmp_path / f"tok/{side}.{kind}").read_bytes() for side in ("src", "tgt"))
        assert src == tgt
    src_lines, tgt_lines = (
        (split_dir / f"train.{side}").read_text(encoding="utf-8").splitlines()
        for side in ("src", "tgt")
    )
    model = (tmp_path / "tok/src.model").read_bytes()
    assert model == train_sentencepiece(src_lines + tgt_lines, 400, cfg)  # source first
    sp = load_tokenizer(tmp_path / "tok/src.model")
    assert sp.get_piece_size() == 400
    vocab = {sp.id_to_piece(i) for i in range(400)}
    assert {"▁the", "▁is", "▁el", "▁está"} <= vocab  # English and Spanish pieces
    for text in ("Where is your brother?", "¿Dónde está tu hermano?"):
        assert UNK_ID not in sp.encode(text) and sp.decode(sp.encode(text)) == text


def test_shared_vocabulary_errors(split_dir, tmp_path):
    message = (
        "tokenizer.shared needs tokenizer.src_vocab_size (300) = tokenizer.tgt_vocab_size (350)"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        TokenizerConfig(src_vocab_size=300, tgt_vocab_size=350, shared=True)
    cfg = TokenizerConfig(src_vocab_size=50000, tgt_vocab_size=50000, shared=True)
    with pytest.raises(DataError, match="tokenizer.src_vocab_size=tgt_vocab_size=50000: "):
        train_tokenizers(split_dir, cfg, tmp_path / "tok")
    assert not (tmp_path / "tok").exists()


def test_sample_lines_is_seeded_bounded_and_in_stream_order():
    lines = [f"line {i}" for i in range(1000)]
    sample = sample_lines(iter(lines), 100)
    assert len(sample) == 100 and len(set(sample)) == 100
    assert sample == sorted(sample, key=lines.index)  # stream order
    assert sample == sample_lines(iter(lines), 100)
    assert sample != sample_lines(iter(lines), 100, seed=1)
    assert sample_lines(iter(lines[:50]), 100) == lines[:50]  # fewer: every line


def test_max_sentences_trains_on_a_reproducible_sample(split_dir, tmp_path):
    cfg = TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200, max_sentences=300)
    train_tokenizers(split_dir, cfg, tmp_path / "a")
    train_tokenizers(split_dir, cfg, tmp_path / "b")
    full = TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200)
    train_tokenizers(split_dir, full, tmp_path / "full")
    for name in ("src.model", "tgt.model"):
        sampled = (tmp_path / "a" / name).read_bytes()
        assert sampled == (tmp_path / "b" / name).read_bytes()
        assert sampled != (tmp_path / "full" / name).read_bytes()  # 300 of 800 sentences
