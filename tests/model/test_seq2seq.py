"""The encoder-decoder: padding, stacks, one-step decoding, saving, tied embeddings."""

import numpy as np
import pytest
import tensorflow as tf

from nmtpipe.config import ModelConfig
from nmtpipe.model.build import build_model
from nmtpipe.model.losses import masked_loss
from tests.tiny_models import ATTENTIONS, STACKS, batch, stack_ids, stacked, tiny


@pytest.mark.parametrize("attention, score", ATTENTIONS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_does_not_change_the_output(attention, score, cell):
    model = tiny(attention, score, cell)
    src, tgt_in = batch()
    padded = np.concatenate([src, np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(model((src, tgt_in)), model((padded, tgt_in)), atol=1e-5)


@pytest.mark.parametrize("cell, layers", STACKS[1:], ids=stack_ids(STACKS[1:]))
@pytest.mark.parametrize("bidirectional", [True, False])
def test_stacked_models_ignore_padding(cell, layers, bidirectional):
    model = stacked(cell, layers, bidirectional=bidirectional)
    src, tgt_in = batch()
    padded = np.concatenate([src, np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(model((src, tgt_in)), model((padded, tgt_in)), atol=1e-5)


@pytest.mark.parametrize("attention, score", ATTENTIONS)
@pytest.mark.parametrize("cell, layers", STACKS, ids=stack_ids(STACKS))
def test_one_step_decoding_matches_teacher_forcing(attention, score, cell, layers):
    """The inference path (encode and project the attention keys once, decode a token
    at a time with carried state) computes exactly what the training graph computes."""
    model = stacked(
        cell, layers, attention=attention, luong_score=score, bidirectional=attention != "none"
    )
    src, tgt_in = batch()
    full = np.asarray(model((src, tgt_in)))
    enc_out, enc_mask, states = model.encode(src)
    assert len(states) == model.n_states == layers[1] * (2 if cell == "lstm" else 1)
    assert all(s.shape == (3, 16) for s in states)
    enc_keys = model.attention_keys(enc_out)
    assert (enc_keys is None) == (attention == "none")
    for t in range(tgt_in.shape[1]):
        logits, states, weights = model.decode(
            tgt_in[:, t : t + 1], enc_out, enc_mask, states, enc_keys=enc_keys
        )
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-5)
        if weights is not None:
            assert weights.shape == (3, 1, 6)


@pytest.mark.parametrize(
    "cell, options",
    [
        ("gru", {}),
        ("lstm", {"encoder_layers": 2, "decoder_layers": 2}),
        ("gru", {"encoder_layers": 3, "decoder_layers": 2, "residual": False}),
        ("lstm", {"tie_embeddings": True}),  # units 16 != embedding_dim 8: with a projection
        ("gru", {"tie_embeddings": True, "embedding_dim": 16, "decoder_layers": 2}),
    ],
)
def test_save_and_load_round_trip(tmp_path, cell, options):
    import keras

    model = tiny("bahdanau", cell=cell, **options)
    for var in model.weights:  # non-zero biases too, so that every weight must round-trip
        var.assign(np.random.default_rng(5).normal(size=var.shape).astype("float32") * 0.3)
    src, tgt_in = batch()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    np.testing.assert_array_equal(model((src, tgt_in)), loaded((src, tgt_in)))
    assert loaded.get_config() == model.get_config()
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    assert loaded.attention.kind == "bahdanau"


def test_decoder_layers_start_from_the_matching_encoder_layer():
    """Equal depths: layer by layer; other depths: every decoder layer from the top one."""
    same, fewer, more = (stacked("lstm", (2, n)) for n in (2, 1, 3))
    for other in (fewer, more):
        for name in ("src_embedding", "encoder", "encoder_2"):
            other.get_layer(name).set_weights(same.get_layer(name).get_weights())
    src, _ = batch()
    states = [np.asarray(s) for s in same.encode(src)[2]]  # h1, c1, h2, c2
    top = states[2:]
    for other, copies in ((fewer, 1), (more, 3)):
        got = [np.asarray(s) for s in other.encode(src)[2]]
        assert len(got) == 2 * copies
        for have, want in zip(got, top * copies, strict=True):
            np.testing.assert_allclose(have, want, atol=1e-6)
    assert not np.allclose(states[0], states[2])


def test_default_model_is_unchanged():
    """The defaults build the same single-layer, untied model as before these options."""
    model = build_model(ModelConfig(), 1000, 1000)
    assert model.count_params() == 1_432_808
    assert [layer.name for layer in model.layers] == [
        "src_embedding",
        "tgt_embedding",
        "encoder",
        "decoder_rnn",
        "attention",
        "attention_combine",
        "dropout",
        "output_proj",
    ]


@pytest.mark.parametrize("embedding_dim", [16, 8])  # units 16: tied directly / via projection
def test_tied_output_kernel_is_the_target_embedding(embedding_dim):
    tied = tiny(embedding_dim=embedding_dim, tie_embeddings=True)
    untied = tiny(embedding_dim=embedding_dim)
    vocab, units = 40, 16
    projection = 0 if embedding_dim == units else units * embedding_dim
    assert untied.count_params() - tied.count_params() == units * vocab - projection
    assert (tied.tie_projection is None) == (embedding_dim == units)
    assert [w.path for w in tied.output_proj.weights] == ["seq2seq/output_proj/bias"]
    src, tgt_in = batch()
    bias = np.random.default_rng(2).normal(size=vocab).astype("float32")
    tied.output_proj.bias.assign(bias)
    tied.tgt_embedding.embeddings.assign(np.zeros((vocab, embedding_dim), "float32"))
    np.testing.assert_allclose(tied((src, tgt_in)), np.broadcast_to(bias, (3, 5, vocab)))


@pytest.mark.parametrize("tie", [False, True])
def test_tied_output_trains_the_embedding_rows_of_every_piece(tie):
    """Rows of pieces not in the decoder input get gradient only through the softmax."""

    model = tiny(embedding_dim=16, tie_embeddings=tie)
    src, tgt_in = batch()
    with tf.GradientTape() as tape:
        loss = masked_loss(tgt_in, model((src, tgt_in)))
    grad = np.asarray(tf.convert_to_tensor(tape.gradient(loss, model.tgt_embedding.embeddings)))
    unseen = sorted(set(range(4, 40)) - set(tgt_in.ravel()))
    assert np.abs(grad[unseen]).sum(axis=-1).min() > 0 if tie else not grad[unseen].any()
