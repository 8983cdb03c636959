"""Serving fixtures: tokenizers and a tiny trained Transformer, real and small."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nmtpipe.config import ModelConfig, TokenizerConfig
from nmtpipe.fileio import write_lines
from nmtpipe.ids.tokenizer import load_tokenizer, train_tokenizers
from tests.conftest import sample_pairs, train_dataset

TINY = ModelConfig(
    arch="transformer", embedding_dim=16, heads=4, ff_dim=32, dropout=0.0, attention_dropout=0.0
)
PAIRS = sample_pairs(400)


def tokenizer_pair(tok_dir: Path):
    return tuple(load_tokenizer(tok_dir / f"{side}.model") for side in ("src", "tgt"))


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict[bool, Path]:
    """shared -> a tokenizer directory trained on 400 sample pairs (200 pieces a side)."""
    root = tmp_path_factory.mktemp("ct2_tok")
    (root / "split").mkdir()
    write_lines(root / "split/train.src", [s for s, _ in PAIRS])
    write_lines(root / "split/train.tgt", [t for _, t in PAIRS])
    dirs = {}
    for shared in (False, True):
        cfg = TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200, shared=shared)
        dirs[shared] = root / f"tok{int(shared)}"
        train_tokenizers(root / "split", cfg, dirs[shared])
    return dirs


@pytest.fixture(scope="module")
def trained_dir(tokenizers, tmp_path_factory) -> Path:
    """A complete en->es model directory of a tiny tied Transformer trained a little, so
    its greedy translations differ and end at various lengths."""
    import keras

    from nmtpipe.ids.encode import encode_pairs
    from nmtpipe.model.build import build_model
    from nmtpipe.modeldir import save_model_dir

    root, tok_dir = tmp_path_factory.mktemp("ct2_trained"), tokenizers[False]
    keras.utils.set_random_seed(3)
    cfg = dataclasses.replace(
        TINY, embedding_dim=32, ff_dim=64, encoder_layers=2, decoder_layers=1, tie_embeddings=True
    )
    model = build_model(cfg, 200, 200)
    sp_src, sp_tgt = tokenizer_pair(tok_dir)
    src_s, tgt_s = [s for s, _ in PAIRS[:300]], [t for _, t in PAIRS[:300]]
    src, tgt, _ = encode_pairs(sp_src, sp_tgt, src_s, tgt_s, max_src_len=64, max_tgt_len=64)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    data, steps = train_dataset(src, tgt, 32, 3, range(15), root / "encoded")
    model.fit(data, epochs=15, steps_per_epoch=steps, verbose=0)
    (root / "model").mkdir()
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": 200, "tgt_vocab_size": 200}
    config |= {"model": {"arch": "transformer"}, "weights_layout": model.WEIGHTS_LAYOUT}
    save_model_dir(root / "model", model, config, tok_dir)
    return root / "model"
