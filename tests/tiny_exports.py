"""A tiny untrained Transformer as both engines read it: a model directory and its
CTranslate2 export (float32), shared by the translator and translate-command tests."""

from __future__ import annotations

from pathlib import Path

from nmtpipe.config import ModelConfig, TokenizerConfig, to_dict
from nmtpipe.fileio import write_lines
from tests.conftest import sample_pairs

VOCAB = 120
PAIRS = sample_pairs(300)


def transformer_dirs(root: Path) -> tuple[Path, Path]:
    """(model directory, CTranslate2 directory) of a random en->es Transformer under root;
    the CTranslate2 one is root/export/ctranslate2, as the export stage writes it."""
    import keras

    from nmtpipe.ids.tokenizer import train_tokenizers
    from nmtpipe.model.build import build_model
    from nmtpipe.modeldir import CT2_DIR, load_model_dir, save_model_dir
    from nmtpipe.serving.ctranslate2_export import export_ctranslate2

    (root / "split").mkdir(parents=True)
    write_lines(root / "split/train.src", [s for s, _ in PAIRS])
    write_lines(root / "split/train.tgt", [t for _, t in PAIRS])
    train_tokenizers(
        root / "split", TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB), root / "tok"
    )
    keras.utils.set_random_seed(1)
    cfg = ModelConfig(arch="transformer", embedding_dim=16, heads=2, ff_dim=32, dropout=0.0)
    model = build_model(cfg, VOCAB, VOCAB)
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": VOCAB}
    config |= {"tgt_vocab_size": VOCAB, "model": to_dict(cfg)}
    config |= {"weights_layout": model.WEIGHTS_LAYOUT}
    (root / "model").mkdir()
    save_model_dir(root / "model", model, config, root / "tok")
    ct2 = root / "export" / CT2_DIR
    export_ctranslate2(load_model_dir(root / "model"), root / "model", ct2, "float32", 2.0)
    return root / "model", ct2
