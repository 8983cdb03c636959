"""The export stage: a SavedModel that translates strings in a process without nmtpipe."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nmtpipe.config import ExportConfig, ModelConfig, TokenizerConfig
from nmtpipe.fileio import write_lines
from nmtpipe.ids.tokenizer import train_tokenizers
from tests.conftest import run_nmtpipe, sample_pairs, train_dataset

SENTENCES = [
    "Where is the station?",
    "",
    "I would like a coffee, please.",
    "   \t",
    "\u3000\xa0",  # blank for Python's str.strip(), not for ASCII-only \s
    "\u200b",  # not blank for Python: translated like any sentence
    "日本語のテキスト 😀",
    "The cat sleeps on my bed every night.",
]
# Runs with nmtpipe made unimportable: only tensorflow and tensorflow_text.
CLIENT = textwrap.dedent(
    """
    import json, sys
    sys.modules["nmtpipe"] = None
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

    requests = json.loads(sys.stdin.read())
    models = [tf.saved_model.load(path) for path in sys.argv[1:]]
    out = [
        [
            [t.decode("utf-8") for t in m.signatures["serving_default"](
                tf.constant(batch, tf.string))["translation"].numpy()]
            for batch in requests
        ]
        for m in models
    ]
    print(json.dumps(out))
    """
)


RNN = ModelConfig(embedding_dim=16, units=32, dropout=0.0)
TRANSFORMER = ModelConfig(
    arch="transformer", embedding_dim=16, heads=2, ff_dim=32, dropout=0.0, attention_dropout=0.0
)


def make_model_dir(root: Path, tok_dir: Path, seed: int, epochs: int, cfg=RNN) -> Path:
    """A tiny model directory, trained for `epochs` on the tokenizers' 300 pairs."""
    import keras

    from nmtpipe.ids.encode import encode_pairs
    from nmtpipe.ids.tokenizer import load_tokenizer
    from nmtpipe.model.build import build_model
    from nmtpipe.modeldir import save_model_dir

    keras.utils.set_random_seed(seed)
    model = build_model(cfg, 200, 200)
    if epochs:
        sp_src, sp_tgt = (load_tokenizer(tok_dir / name) for name in ("src.model", "tgt.model"))
        en, es = [s for s, _ in sample_pairs(300)], [t for _, t in sample_pairs(300)]
        src, tgt, _ = encode_pairs(sp_src, sp_tgt, en, es, max_src_len=64, max_tgt_len=64)
        model.compile(optimizer=keras.optimizers.Adam(0.005))
        data, steps = train_dataset(src, tgt, 32, seed, range(epochs), root / f"encoded{seed}")
        model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0)
    out = root / f"model{seed}"
    out.mkdir()
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": 200, "tgt_vocab_size": 200}
    save_model_dir(out, model, config, tok_dir)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """An RNN trained until its translations end at various lengths (some at the length
    limit), and an untrained Transformer whose tokenizers have swapped roles."""
    root = tmp_path_factory.mktemp("export")
    pairs = sample_pairs(300)
    (root / "split").mkdir()
    write_lines(root / "split/train.src", [s for s, _ in pairs])
    write_lines(root / "split/train.tgt", [t for _, t in pairs])
    cfg = TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200)
    train_tokenizers(root / "split", cfg, root / "tok")
    (root / "swapped").mkdir()
    for name, other in (("src.model", "tgt.model"), ("tgt.model", "src.model")):
        (root / "swapped" / name).write_bytes((root / "tok" / other).read_bytes())
    return make_model_dir(root, root / "tok", 1, epochs=12), make_model_dir(
        root, root / "swapped", 2, epochs=0, cfg=TRANSFORMER
    )


def serve(exports: list[Path], requests: list[list[str]]) -> list[list[list[str]]]:
    """Answers of each SavedModel to each request, from a fresh process without nmtpipe."""
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, *map(str, exports)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.slow
def test_export_translates_like_greedy_search_without_nmtpipe(models, tmp_path):
    """A request's translations are translate_sentences', whatever the batching."""
    from nmtpipe.modeldir import load_model_dir
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.tensorflow_engine import TensorFlowEngine
    from nmtpipe.search.translator import translate_sentences
    from nmtpipe.serving.export import export_model

    (tmp_path / "params.yaml").write_text("export:\n  max_len_ratio: 1.5\n")
    result = run_nmtpipe("export", "--model", str(models[0]), "--out", "out/a", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    export_model(models[1], tmp_path / "out/b", ExportConfig(max_len_ratio=1.5))
    config = json.loads((tmp_path / "out/a/config.json").read_text())
    assert config["src_lang"] == "en" and config["export"]["max_len_ratio"] == 1.5

    long = "word " * 300  # over MAX_INPUT_PIECES
    requests = [SENTENCES, [long], ["", " "], [], [SENTENCES[2]], [SENTENCES[2], "word " * 40]]
    served = serve([tmp_path / "out/a", tmp_path / "out/b"], requests)
    sentences = [sentence for request in requests for sentence in request]
    for model_dir, answers in zip(models, served, strict=True):
        engine = TensorFlowEngine(load_model_dir(model_dir))
        # The length limit is each sentence's own: any batching translates alike.
        for batch_size in (1, 3, 64):
            expected = translate_sentences(
                engine, sentences, SearchSettings(max_len_ratio=1.5), batch_size
            )
            assert [hyp for answer in answers for hyp in answer] == expected
        assert len(engine.decoders) == 1  # made once, reused by the later calls
    hyps = served[0][0]
    assert len(hyps) == len(SENTENCES) and hyps[1] == hyps[3] == hyps[4] == ""
    assert len({len(h) for h in hyps}) >= 4  # translations end at various lengths
    assert served[0][1][0] and served[0][2] == ["", ""] and served[0][3] == []
    assert served[0][4][0] == served[0][5][0] == hyps[2]  # cut at its own limit, not the long one's
    assert served[0][0] != served[1][0]


@pytest.mark.slow
def test_export_without_a_model(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    result = run_nmtpipe("export", "--model", "nomodel", "--out", "data/export", cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.decode().splitlines() if ": error: " in line]
    assert lines == [
        "nmtpipe export: error: nomodel/model.keras: trained model not found (run `dvc repro`)"
    ]
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_blank_means_what_python_strip_means():
    import tensorflow as tf

    from nmtpipe.serving.export import blank_pattern

    chars = [chr(c) for c in range(0x3100)] + ["\u3000 \u2029", "a ", " \u00a0b", "\u200b"]
    blank = tf.strings.regex_full_match(tf.constant(chars), blank_pattern()).numpy().tolist()
    assert blank == [not c.strip() for c in chars]
    assert sum(blank) > 20
