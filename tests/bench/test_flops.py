"""Analytic matmul FLOPs of each network (its forward_flops), checked against hand counts."""

from __future__ import annotations

import pytest

from nmtpipe.bench.flops import train_step_flops
from nmtpipe.config import ModelConfig
from nmtpipe.model.build import build_model


@pytest.fixture(scope="module")
def model():
    cfg = ModelConfig(embedding_dim=8, units=16, bidirectional=True, attention="bahdanau")
    return build_model(cfg, 30, 40)


def test_forward_flops_by_hand(model):
    b, s, t = 2, 5, 3
    parts = model.forward_flops(b, s, t)
    assert parts["encoder"] == 2 * s * 2 * b * 4 * 8 * (8 + 8)  # two directions of 8 units
    assert parts["decoder_rnn"] == t * 2 * b * 4 * 16 * (8 + 16)
    query, keys = 2 * b * t * 16 * 16, 2 * b * s * 16 * 16
    scores = context = 2 * b * t * s * 16
    combine = 2 * b * t * 32 * 16
    assert parts["attention"] == query + keys + scores + context + combine
    assert parts["output"] == 2 * b * t * 16 * 40
    assert train_step_flops(model, b, s, t) == 3 * sum(parts.values())


def test_weights_match_the_counted_matmuls(model):
    """Each counted matmul multiplies by a weight matrix of the model with these shapes."""
    shapes = {w.path: tuple(w.shape) for w in model.weights}
    assert shapes["seq2seq/encoder/forward_encoder_rnn/lstm_cell/kernel"] == (8, 4 * 8)
    assert shapes["seq2seq/decoder_rnn/lstm_cell/recurrent_kernel"] == (16, 4 * 16)
    assert shapes["seq2seq/attention_combine/kernel"] == (32, 16)
    assert shapes["seq2seq/output_proj/kernel"] == (16, 40)


@pytest.mark.parametrize(
    "attention, luong_score, projections",
    [("none", "general", None), ("luong", "dot", 0), ("luong", "general", 2 * 2 * 5 * 16 * 16)],
)
def test_attention_kinds(attention, luong_score, projections):
    cfg = ModelConfig(embedding_dim=8, units=16, attention=attention, luong_score=luong_score)
    parts = build_model(cfg, 30, 40).forward_flops(2, 5, 3)
    if projections is None:
        assert parts["attention"] == 0
    else:
        scores_and_context = 2 * (2 * 2 * 3 * 5 * 16)
        assert parts["attention"] == projections + scores_and_context + 2 * 2 * 3 * 32 * 16


def test_gru_has_three_gate_blocks():
    cfg = ModelConfig(cell="gru", embedding_dim=8, units=16, bidirectional=False)
    parts = build_model(cfg, 30, 40).forward_flops(2, 5, 3)
    assert parts["encoder"] == 5 * 2 * 2 * 3 * 16 * (8 + 16)


def test_transformer_flops_by_hand():
    cfg = ModelConfig(arch="transformer", embedding_dim=8, heads=2, ff_dim=12, decoder_layers=2)
    model = build_model(cfg, 30, 40)
    b, s, t, w, f = 2, 5, 3, 8, 12
    parts = model.forward_flops(b, s, t)
    encoder_layer = 4 * 2 * b * s * w * w + 2 * (2 * b * s * s * w) + 2 * (2 * b * s * w * f)
    assert parts["encoder"] == encoder_layer  # one encoder layer (the default)
    self_and_ff = 4 * 2 * b * t * w * w + 2 * (2 * b * t * t * w) + 2 * (2 * b * t * w * f)
    cross = 2 * (2 * b * t * w * w) + 2 * (2 * b * s * w * w) + 2 * (2 * b * t * s * w)
    assert parts["decoder"] == 2 * (self_and_ff + cross) + 2 * b * t * w * 40
    shapes = {w.path: tuple(w.shape) for w in model.weights}
    assert shapes["transformer/encoder/self_attention/qkv/kernel"] == (8, 3 * 8)  # q, k, v
    assert shapes["transformer/decoder_2/cross_attention/query/kernel"] == (8, 8)
    assert shapes["transformer/decoder_2/cross_attention/kv/kernel"] == (8, 2 * 8)  # k, v
    assert shapes["transformer/encoder/ff_in/kernel"] == (8, 12)
    assert shapes["transformer/output_proj/kernel"] == (8, 40)


def test_stacked_layers_and_the_tied_projection_count():
    """Layers 2..N read the layer below (units wide); tie_projection maps units to the
    embedding size before the embedding matrix projects to the vocabulary."""
    cfg = ModelConfig(
        embedding_dim=8, units=16, encoder_layers=2, decoder_layers=3, tie_embeddings=True
    )
    model = build_model(cfg, 30, 40)
    b, s, t = 2, 5, 3
    parts = model.forward_flops(b, s, t)
    encoder_layer = [2 * s * 2 * b * 4 * 8 * (i + 8) for i in (8, 16)]  # 2 directions of 8
    assert parts["encoder"] == sum(encoder_layer)
    assert parts["decoder_rnn"] == sum(t * 2 * b * 4 * 16 * (i + 16) for i in (8, 16, 16))
    assert parts["output"] == 2 * b * t * 16 * 8 + 2 * b * t * 8 * 40
    shapes = {w.path: tuple(w.shape) for w in model.weights}
    assert shapes["seq2seq/encoder_2/forward_encoder_rnn_2/lstm_cell/kernel"] == (16, 4 * 8)
    assert shapes["seq2seq/tie_projection/kernel"] == (16, 8)
