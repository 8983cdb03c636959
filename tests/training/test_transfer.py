"""Transfer learning on tiny real data: init_from, freezing, pretrained subword embeddings."""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import re

import keras
import numpy as np
import pytest

from nmtpipe.config import (
    FREEZE_PARTS,
    DataConfig,
    ModelConfig,
    Params,
    SplitConfig,
    TokenizerConfig,
    TrainConfig,
    params_from_dict,
    parse_section,
    to_dict,
)
from nmtpipe.corpus.split import split_corpus
from nmtpipe.errors import ConfigError, DataError, ModelError
from nmtpipe.fileio import sha256_file, write_lines
from nmtpipe.ids.tokenizer import load_tokenizer, train_tokenizers
from nmtpipe.model.build import build_model
from nmtpipe.modeldir import load_model_dir, save_model_dir
from nmtpipe.training.transfer import copy_weights, part_layers, pieces, prepare_model
from tests.conftest import sample_pairs

CFG = ModelConfig(embedding_dim=8, units=16, dropout=0.0)
VOCAB = 150
ROW = "▁a " + " ".join(["1"] * 8)  # a well-formed vector line for dimension 8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A split and tokenizers of 300 pairs, other tokenizers from other pairs, a base model."""
    root = tmp_path_factory.mktemp("transfer")
    pairs = sample_pairs(700)
    (root / "clean").mkdir()
    write_lines(root / "clean/src.txt", [s for s, _ in pairs[:300]])
    write_lines(root / "clean/tgt.txt", [t for _, t in pairs[:300]])
    split_corpus(root / "clean", SplitConfig(dev_size=30, test_size=30), root / "split")
    train_tokenizers(
        root / "split", TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB), root / "tok"
    )
    (root / "other").mkdir()  # a new corpus: different pieces, a smaller target vocabulary
    write_lines(root / "other/train.src", [s for s, _ in pairs[300:]])
    write_lines(root / "other/train.tgt", [t for _, t in pairs[300:]])
    train_tokenizers(
        root / "other",
        TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=120),
        root / "tok_other",
    )
    keras.utils.set_random_seed(1)
    (root / "base").mkdir()
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": VOCAB, "tgt_vocab_size": VOCAB}
    save_model_dir(root / "base", build_model(CFG, VOCAB, VOCAB), config, root / "tok")
    return root


def fresh(cfg=CFG, src_vocab=VOCAB, tgt_vocab=VOCAB):
    """A new model whose random weights differ from the base model's."""
    keras.utils.set_random_seed(2)
    return build_model(cfg, src_vocab, tgt_vocab)


def params(model=CFG, **train) -> Params:
    return Params(model=model, train=TrainConfig(**train))


def by_layer(model) -> dict[str, list[np.ndarray]]:
    return {layer.name: layer.get_weights() for layer in model.layers}


def test_init_from_same_tokenizers_copies_every_weight(data):
    base = load_model_dir(data / "base")
    model = fresh()
    assert not np.array_equal(model.get_weights()[0], base.model.get_weights()[0])
    record = prepare_model(model, params(init_from=str(data / "base")), data / "tok")
    new, old = by_layer(model), by_layer(base.model)
    assert new.keys() == old.keys() and sum(len(w) for w in new.values()) == 17
    for name in new:
        for a, b in zip(new[name], old[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    info = record["init_from"]
    assert info["pieces_carried_over"] == {"src": VOCAB, "tgt": VOCAB}
    assert info["sha256"]["model.keras"] == sha256_file(data / "base/model.keras")
    assert set(info["sha256"]) == {"model.keras", "config.json", "src.model", "tgt.model"}


def test_init_from_other_vocabulary_maps_rows_by_piece(data):
    base = load_model_dir(data / "base")
    sp_new = {side: load_tokenizer(data / f"tok_other/{side}.model") for side in ("src", "tgt")}
    model = fresh(tgt_vocab=120)
    before = by_layer(model)
    prepare_model(model, params(init_from=str(data / "base")), data / "tok_other")
    new, old = by_layer(model), by_layer(base.model)
    checks = [  # layer, weight index, side, vocabulary axis
        ("src_embedding", 0, "src", 0),
        ("tgt_embedding", 0, "tgt", 0),
        ("output_proj", 0, "tgt", 1),
        ("output_proj", 1, "tgt", 0),
    ]
    for name, index, side, axis in checks:
        old_ids = {p: i for i, p in enumerate(pieces(getattr(base, f"sp_{side}")))}
        rows = np.moveaxis(new[name][index], axis, 0)
        old_rows = np.moveaxis(old[name][index], axis, 0)
        fresh_rows = np.moveaxis(before[name][index], axis, 0)
        shared = 0
        for i, piece in enumerate(pieces(sp_new[side])):
            if piece in old_ids:
                np.testing.assert_array_equal(rows[i], old_rows[old_ids[piece]])
                shared += 1
            else:
                np.testing.assert_array_equal(rows[i], fresh_rows[i])
        assert 4 < shared < len(rows), (name, shared)  # some pieces shared, some new
    np.testing.assert_array_equal(new["decoder_rnn"][0], old["decoder_rnn"][0])


@pytest.mark.parametrize(
    "change, message",
    [
        (
            {"units": 32},
            "layer 'encoder' weight 'encoder/forward_encoder_rnn/lstm_cell/kernel' "
            "has shape (8, 32) there but (8, 64) here",
        ),
        ({"cell": "gru"}, "layer 'encoder' weight"),
        ({"embedding_dim": 12}, "layer 'src_embedding' weight 'src_embedding/embeddings' has sha"),
        ({"bidirectional": False}, "layers ['encoder', 'encoder_rnn'] are not in both models"),
        ({"attention": "luong"}, "layer 'attention' has 3 weights there but 1 here"),
    ],
)
def test_init_from_other_architecture_is_one_line_error(data, change, message):
    cfg = dataclasses.replace(CFG, **change)
    with pytest.raises(ModelError) as err:
        prepare_model(fresh(cfg), params(cfg, init_from=str(data / "base")), data / "tok")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"train.init_from {data / 'base'}: ")


def test_init_from_missing_or_other_pair_is_model_error(data):
    message = f"train.init_from {data / 'nothing'}: not a model directory (no model.keras)"
    with pytest.raises(ModelError, match=re.escape(message)):
        prepare_model(fresh(), params(init_from=str(data / "nothing")), data / "tok")
    es_en = Params(
        data=DataConfig(src_lang="es", tgt_lang="en"),
        model=CFG,
        train=TrainConfig(init_from=str(data / "base")),
    )
    message = f"train.init_from: {data / 'base'}: model translates en->es, not es->en"
    with pytest.raises(ModelError, match=re.escape(message)):
        prepare_model(fresh(), es_en, data / "tok")


@pytest.mark.slow
def test_freeze_keeps_frozen_weights_through_training(data, caplog):
    from nmtpipe.ids.encode import encode_split
    from nmtpipe.training.train import train_model

    caplog.set_level(logging.INFO, logger="nmtpipe.training.transfer")
    run = params(
        epochs=1, batch_size=16, init_from=str(data / "base"), freeze=("encoder", "embeddings")
    )
    encode_split(data / "split", data / "tok", run.train, data / "enc")
    train_model(
        data / "split",
        data / "enc",
        data / "tok",
        run,
        data / "tuned",
        data / "live",
        data / "t.json",
    )
    tuned, base = load_model_dir(data / "tuned"), load_model_dir(data / "base")
    new, old = by_layer(tuned.model), by_layer(base.model)
    for name in ("src_embedding", "tgt_embedding", "encoder"):
        for a, b in zip(new[name], old[name], strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    for name in ("decoder_rnn", "attention", "attention_combine", "output_proj"):
        for a, b in zip(new[name], old[name], strict=True):
            assert not np.allclose(a, b), name
    config = json.loads((data / "tuned/config.json").read_text())
    assert config["train"]["freeze"] == ["encoder", "embeddings"]
    sha = config["transfer"]["init_from"]["sha256"]["model.keras"]
    assert sha == sha256_file(data / "base/model.keras")
    trainable = [r.message for r in caplog.records if r.message.startswith("trainable")]
    assert trainable and "frozen: encoder, embeddings" in trainable[0]
    assert not [
        r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("nmtpipe")
    ]


def test_freeze_without_init_from_warns_about_random_weights(data, caplog):
    caplog.set_level(logging.INFO, logger="nmtpipe.training.transfer")
    model = fresh()
    prepare_model(model, params(freeze=("decoder",)), data / "tok")
    assert not model.get_layer("decoder_rnn").trainable and model.get_layer("encoder").trainable
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert f"trainable parameters: {trainable:,} of {model.count_params():,}" in caplog.text
    assert "decoder_rnn stays random (no train.init_from)" in caplog.text
    assert "150 of 150 rows of output_proj stay random" in caplog.text


def write_vectors(path, lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)


@pytest.mark.parametrize("side, suffix", [("src", ".txt"), ("tgt", ".txt.gz")])
def test_word2vec_rows_override_init_from(data, tmp_path, side, suffix):
    sp = load_tokenizer(data / f"tok/{side}.model")
    listed = {sp.id_to_piece(i): i for i in (3, 10, 57)}
    vectors = {p: np.arange(8, dtype=np.float32) * (n + 1) - 3.5 for n, p in enumerate(listed)}
    lines = [f"{piece} " + " ".join(f"{v:g}" for v in vec) for piece, vec in vectors.items()]
    path = tmp_path / f"vectors{suffix}"
    write_vectors(path, ["4 8", *lines, "not-a-piece " + " ".join(["0.5"] * 8)])
    model = fresh()
    cfg = dataclasses.replace(CFG, **{f"{side}_embeddings": str(path)})
    record = prepare_model(model, params(cfg, init_from=str(data / "base")), data / "tok")
    table = model.get_layer(f"{side}_embedding").get_weights()[0]
    base = load_model_dir(data / "base").model.get_layer(f"{side}_embedding").get_weights()[0]
    for piece, vec in vectors.items():
        np.testing.assert_array_equal(table[listed[piece]], vec)
    others = [i for i in range(VOCAB) if i not in listed.values()]
    np.testing.assert_array_equal(table[others], base[others])  # init_from everywhere else
    assert record[f"{side}_embeddings"] == {
        "path": str(path),
        "sha256": sha256_file(path),
        "pieces": 3,
    }


@pytest.mark.parametrize(
    "lines, error, message",
    [
        (["1 9", ROW + " 1"], ConfigError, "9-dimensional vectors but model.embedding_dim is 8"),
        (["2 8", ROW, "▁b 1 2"], DataError, ":3: expected a piece and 8 numbers, found 3 fields"),
        (["1 8", "▁a 1 2 3 x 5 6 7 8"], DataError, ":2: not a number"),
        (["1 8", "▁a 1 2 3 nan 5 6 7 8"], DataError, ":2: the vector of '▁a' is not finite"),
        (["vectors"], DataError, ":1: expected the word2vec header 'count dimension'"),
        (["3 8", ROW], DataError, "header announces 3 vectors, the file has 1"),
        (["2 8", ROW, ROW], DataError, ":3: '▁a' repeats line 2"),
    ],
)
def test_word2vec_bad_files_are_one_line_errors(data, tmp_path, lines, error, message):
    path = tmp_path / "vectors.txt"
    write_vectors(path, lines)
    cfg = dataclasses.replace(CFG, src_embeddings=str(path))
    with pytest.raises(error) as err:
        prepare_model(fresh(), params(cfg), data / "tok")
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_word2vec_unreadable_files(data, tmp_path):
    packed = gzip.compress(("300 8\n" + "".join(f"{i}{ROW}\n" for i in range(300))).encode())
    cases = {
        "missing.txt": (None, "model.tgt_embeddings file not found"),
        "latin1.txt": ("1 8\ncafé ".encode("latin-1") + b"1 " * 8, ":2: not valid UTF-8"),
        "truncated.txt.gz": (packed[: len(packed) // 2], "cannot read .*end-of-stream"),
        "plain.txt.gz": (b"1 8\n", "cannot read .*Not a gzipped file"),
    }
    for name, (content, message) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        cfg = dataclasses.replace(CFG, tgt_embeddings=str(tmp_path / name))
        with pytest.raises(DataError, match=message):
            prepare_model(fresh(), params(cfg), data / "tok")


@pytest.mark.parametrize(
    "freeze, message",
    [
        (
            ["encoder", "encdoer"],
            "'train.freeze' entries must be one of ['embeddings', 'encoder', 'decoder'], "
            "got 'encdoer'",
        ),
        (["decoder", "decoder"], "train.freeze lists 'decoder' twice"),
        (["decoder", "encoder", "embeddings"], "nothing would be trained"),
        ("encoder", "'train.freeze' must be a list of strings"),
    ],
)
def test_freeze_values_are_checked(freeze, message):
    with pytest.raises(ConfigError) as err:
        params_from_dict({"train": {"freeze": freeze}})
    assert message in str(err.value)


def test_transfer_params_round_trip_and_stay_out_of_the_keras_config():
    raw = {
        "model": {"embedding_dim": 8, "units": 16, "src_embeddings": "vec/src.txt.gz"},
        "train": {"init_from": "models/base", "freeze": ["embeddings", "encoder"]},
    }
    loaded = params_from_dict(raw)
    assert loaded.train.freeze == ("embeddings", "encoder")
    for name, cls in (("model", ModelConfig), ("train", TrainConfig)):
        saved = json.loads(json.dumps(to_dict(getattr(loaded, name))))  # as in config.json
        assert parse_section(cls, saved, name) == getattr(loaded, name)
    plain = dataclasses.replace(loaded.model, src_embeddings="")
    keras_config = build_model(loaded.model, 30, 40).get_config()
    assert keras_config == build_model(plain, 30, 40).get_config()
    assert not {"src_embeddings", "tgt_embeddings", "init_from", "freeze"} & set(keras_config)


DEEP = dataclasses.replace(CFG, encoder_layers=2, decoder_layers=3, tie_embeddings=True)


def test_freeze_parts_cover_stacked_and_tied_layers():
    names = {
        part: [layer.name for layer in part_layers(fresh(DEEP), part)] for part in FREEZE_PARTS
    }
    assert names == {
        "embeddings": ["src_embedding", "tgt_embedding"],
        "encoder": ["encoder", "encoder_2"],
        "decoder": [
            "decoder_rnn",
            "decoder_rnn_2",
            "decoder_rnn_3",
            "attention",
            "attention_combine",
            "tie_projection",
            "output_proj",
        ],
    }


def test_freeze_parts_cover_every_transformer_layer():
    cfg = ModelConfig(arch="transformer", embedding_dim=8, heads=2, ff_dim=16, encoder_layers=2)
    model = fresh(cfg)
    names = {part: [layer.name for layer in part_layers(model, part)] for part in FREEZE_PARTS}
    assert names == {
        "embeddings": ["src_embedding", "tgt_embedding"],
        "encoder": ["encoder", "encoder_2", "encoder_norm"],
        "decoder": ["decoder", "decoder_norm", "output_proj"],
    }
    frozen = {layer.name for part in FREEZE_PARTS for layer in part_layers(model, part)}
    assert frozen == {layer.name for layer in model.layers if layer.weights}


def test_copy_weights_of_stacked_and_tied_models():
    identity = {side: (np.arange(VOCAB), np.arange(VOCAB)) for side in ("src", "tgt")}
    keras.utils.set_random_seed(1)
    old = build_model(DEEP, VOCAB, VOCAB)
    model = fresh(DEEP)
    copy_weights(model, old, identity, "test")
    for a, b in zip(model.get_weights(), old.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match=re.escape("layers ['decoder_rnn_3'] are not in both")):
        copy_weights(fresh(dataclasses.replace(DEEP, decoder_layers=2)), old, identity, "test")
    untied = fresh(dataclasses.replace(DEEP, tie_embeddings=False))
    with pytest.raises(ModelError, match=re.escape("layers ['tie_projection'] are not in both")):
        copy_weights(untied, old, identity, "test")


SHARED = dataclasses.replace(CFG, share_embeddings=True)


@pytest.fixture(scope="module")
def shared_base(data):
    """Shared tokenizers of the split, and a model with one embedding matrix saved with them."""
    cfg = TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, shared=True)
    train_tokenizers(data / "split", cfg, data / "tok_shared")
    keras.utils.set_random_seed(1)
    (data / "shared_base").mkdir()
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": VOCAB, "tgt_vocab_size": VOCAB}
    save_model_dir(
        data / "shared_base", build_model(SHARED, VOCAB, VOCAB), config, data / "tok_shared"
    )
    return data / "shared_base"


def shared_params(model=SHARED, **train) -> Params:
    tokenizer = TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, shared=True)
    return Params(tokenizer=tokenizer, model=model, train=TrainConfig(**train))


def test_init_from_and_freeze_with_one_shared_matrix(data, shared_base):
    model, base = fresh(SHARED), load_model_dir(shared_base).model
    assert not np.array_equal(model.get_weights()[0], base.get_weights()[0])
    run = shared_params(init_from=str(shared_base), freeze=("embeddings",))
    record = prepare_model(model, run, data / "tok_shared")
    assert record["init_from"]["pieces_carried_over"] == {"src": VOCAB, "tgt": VOCAB}
    for a, b in zip(model.get_weights(), base.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [layer.name for layer in part_layers(model, "embeddings")] == ["src_embedding"]
    assert not model.tgt_embedding.trainable
    assert not [w for w in model.trainable_weights if "embedding" in w.path]


def test_init_from_between_shared_and_separate_embeddings_is_one_line_error(data, shared_base):
    cases = [  # the model, its params, its tokenizers, the earlier model
        (fresh(SHARED), shared_params, "tok_shared", data / "base"),
        (fresh(CFG), params, "tok", shared_base),
    ]
    for model, make_params, tok, earlier in cases:
        with pytest.raises(ModelError) as err:
            prepare_model(model, make_params(model.cfg, init_from=str(earlier)), data / tok)
        assert "layers ['tgt_embedding'] are not in both models" in str(err.value)
        assert "share_embeddings must match" in str(err.value) and "\n" not in str(err.value)
