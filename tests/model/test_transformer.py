"""The Transformer: cached one-step decoding equals the full forward pass, saving, masks."""

import dataclasses

import keras
import numpy as np
import pytest

from nmtpipe.config import ModelConfig
from nmtpipe.model.build import build_model
from nmtpipe.search.decoders import BeamSearchDecoder, GreedyDecoder, SearchSettings
from tests.tiny_models import batch

CFG = ModelConfig(
    arch="transformer", embedding_dim=16, heads=4, ff_dim=32, dropout=0.0, attention_dropout=0.0
)


def tiny(**options):
    return build_model(dataclasses.replace(CFG, **options), src_vocab_size=30, tgt_vocab_size=40)


@pytest.mark.parametrize("layers", [(1, 1), (3, 2)])
@pytest.mark.parametrize("tie", [False, True])
def test_cached_step_by_step_decoding_equals_the_full_forward_pass(layers, tie):
    model = tiny(encoder_layers=layers[0], decoder_layers=layers[1], tie_embeddings=tie)
    src, tgt_in = batch()
    full = np.asarray(model((src, tgt_in)))  # teacher forcing: batch x 5 x 40
    enc_out, enc_mask, states = model.encode(src)
    enc_keys = model.attention_keys(enc_out)
    steps = []
    for t in range(tgt_in.shape[1]):
        logits, states, weights = model.decode(
            tgt_in[:, t : t + 1], enc_out, enc_mask, states, enc_keys=enc_keys
        )
        steps.append(np.asarray(logits)[:, 0])
    np.testing.assert_allclose(np.stack(steps, axis=1), full, rtol=1e-4, atol=1e-5)
    assert [tuple(s.shape) for s in states] == [(3, 5, 16)] * (2 * layers[1])
    weights = np.asarray(weights)  # the last step's cross-attention, averaged over heads
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    assert np.all(weights[0, :, 4:] < 1e-6)  # no weight on the first source's padding


def test_source_padding_does_not_change_the_output():
    model = tiny(encoder_layers=2, decoder_layers=2)
    src, tgt_in = batch()
    padded = np.concatenate([src, np.zeros((3, 4), "int32")], axis=1)
    np.testing.assert_allclose(
        np.asarray(model((padded, tgt_in))), np.asarray(model((src, tgt_in))), atol=1e-5
    )


def test_save_and_load_round_trip(tmp_path):
    model = tiny(encoder_layers=2, tie_embeddings=True)
    src, tgt_in = batch()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False, safe_mode=True)
    assert type(loaded).__name__ == "Transformer" and loaded.cfg == model.cfg
    np.testing.assert_array_equal(
        np.asarray(loaded((src, tgt_in))), np.asarray(model((src, tgt_in)))
    )
    assert [w.path for w in loaded.weights] == [w.path for w in model.weights]
    assert len({w.path for w in model.weights}) == len(model.weights)  # each in its own scope


@pytest.mark.slow  # traces a greedy and a beam search graph of a Transformer: ~20 s
def test_beam_of_one_is_greedy_and_greedy_follows_the_argmax():
    model = tiny(encoder_layers=2, decoder_layers=2)
    src_ids = [list(s[s > 0]) for s in batch(3)[0]] + [[5, 6, 7, 3]]
    greedy = GreedyDecoder(model, SearchSettings(max_len_ratio=1.0)).decode_batch(src_ids)
    beam = BeamSearchDecoder(model, SearchSettings(1, max_len_ratio=1.0)).decode_batch(src_ids)
    assert beam == greedy
    prefix = [2]  # teacher-force the greedy output: each piece is the argmax after its prefix
    src = np.array([src_ids[3]], "int32")
    for piece in greedy[3]:
        logits = np.asarray(model((src, np.array([prefix], "int32"))))[0, -1]
        assert int(np.argmax(logits)) == piece
        prefix.append(piece)


def unfused_attention(x, kv_in, w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o, heads):
    """Multi-head attention from three separate projections (numpy, no mask)."""

    def split(t):  # batch x len x width -> batch x heads x len x width/heads
        b, n, w = t.shape
        return t.reshape(b, n, heads, w // heads).transpose(0, 2, 1, 3)

    q, k, v = split(x @ w_q + b_q), split(kv_in @ w_k + b_k), split(kv_in @ w_v + b_v)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    context = (weights @ v).transpose(0, 2, 1, 3).reshape(x.shape)
    return context @ w_o + b_o


@pytest.mark.parametrize("cross", [False, True])
def test_fused_projections_equal_three_separate_ones(cross):
    """qkv (self) and query + kv (cross) give what separate q, k, v Dense layers give
    with the same weights: the fused kernel is their kernels side by side."""
    from nmtpipe.model.transformer import HeadAttention

    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    memory = rng.normal(size=(2, 7, 16)).astype("float32") if cross else x
    layer = HeadAttention(16, heads=4, cross=cross)
    layer.build(x.shape)
    for weight in layer.weights:  # random biases too, not Keras' zeros
        weight.assign(rng.normal(size=weight.shape).astype("float32") * 0.3)
    mask = np.ones((2, 5, memory.shape[1]), dtype=bool)
    if cross:
        kv = np.split(np.asarray(layer.project_kv(memory)), 2, axis=-1)
        out, _ = layer(x, kv, mask)
        w_q, b_q = (np.asarray(w) for w in layer.query.weights)
        w_kv, b_kv = (np.asarray(w) for w in layer.kv.weights)
        (w_k, w_v), (b_k, b_v) = np.split(w_kv, 2, axis=-1), np.split(b_kv, 2)
    else:
        q, k, v = layer.project_qkv(x)
        out, _ = layer(q, (k, v), mask)
        w_qkv, b_qkv = (np.asarray(w) for w in layer.qkv.weights)
        (w_q, w_k, w_v), (b_q, b_k, b_v) = np.split(w_qkv, 3, axis=-1), np.split(b_qkv, 3)
    w_o, b_o = (np.asarray(w) for w in layer.out.weights)
    expected = unfused_attention(x, memory, w_q, w_k, w_v, b_q, b_k, b_v, w_o, b_o, heads=4)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-4)


def test_feed_forward_dropout_only_when_asked():
    plain = tiny(dropout=0.0)
    assert plain.get_layer("encoder").ff_dropout is None
    with_ff = tiny(ff_dropout=0.5)
    src, tgt_in = batch()
    a, b = (np.asarray(with_ff((src, tgt_in), training=True)) for _ in range(2))
    assert not np.allclose(a, b)  # the only dropout left is the feed-forward one
    np.testing.assert_allclose(
        np.asarray(with_ff((src, tgt_in))), np.asarray(with_ff((src, tgt_in))), rtol=1e-6
    )
