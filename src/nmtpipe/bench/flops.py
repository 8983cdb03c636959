"""Matrix-multiply FLOPs of the encoder-decoder, counted analytically from its shapes.

For one batch of B sentences padded to S source and T target positions, with
embedding size E, decoder units U, target vocabulary V and g gate blocks per
recurrent cell (LSTM 4, GRU 3), a multiply-add counting 2 FLOPs:

    encoder        d * S * 2B * g*h * (E + h)      d=2, h=U/2 bidirectional; d=1, h=U not
    decoder RNN    T * 2B * g*U * (E + U)          input and recurrent matmul every step
    attention      bahdanau: 2B*T*U*U (query) + 2B*S*U*U (keys) + 2B*T*S*U (score vector)
                   luong general: 2B*S*U*U (keys) + 2B*T*S*U (scores);  dot: 2B*T*S*U
                   every kind: + 2B*T*S*U (context = weights @ encoder outputs)
    combine        2B*T * 2U * U                   tanh(W [output; context]), if attention
    output proj    2B*T * U * V                    logits over the target vocabulary

A training step costs 3x the forward pass: backpropagation runs two matmuls per
forward matmul (gradients of its input and of its weights). Padding positions
count, since the layers compute them. Not counted (no matmul, memory-bound):
embedding lookups, gate nonlinearities, softmax, loss, dropout, the optimizer.
"""

from __future__ import annotations

TRAIN_FACTOR = 3  # forward + backward (2 matmuls per forward matmul)
GATES = {"lstm": 4, "gru": 3}


def rnn_flops(batch: int, steps: int, in_dim: int, units: int, cell: str) -> int:
    """One recurrent layer (one direction): input and recurrent matmul at every step."""
    return steps * 2 * batch * GATES[cell] * units * (in_dim + units)


def transformer_flops(model, batch: int, src_len: int, tgt_len: int) -> dict[str, int]:
    """Forward-pass matmul FLOPs of a Transformer (width w, feed-forward f, L layers):

    encoder layer  4 * 2B*S*w*w (q, k, v, out) + 2 * 2B*S*S*w (scores, context) + 2 * 2B*S*w*f
    decoder layer  the same over T for self-attention and feed-forward, plus cross-attention:
                   2 * 2B*T*w*w (q, out) + 2 * 2B*S*w*w (k, v) + 2 * 2B*T*S*w
    output         2B*T * w * V (in "decoder", which bench times with the output and loss)
    """
    cfg, b, s, t = model.cfg, batch, src_len, tgt_len
    w, f = cfg.embedding_dim, cfg.ff_dim

    def self_and_ff(n: int) -> int:
        return 4 * 2 * b * n * w * w + 2 * 2 * b * n * n * w + 2 * 2 * b * n * w * f

    cross = 2 * 2 * b * t * w * w + 2 * 2 * b * s * w * w + 2 * 2 * b * t * s * w
    return {
        "encoder": cfg.encoder_layers * self_and_ff(s),
        "decoder": cfg.decoder_layers * (self_and_ff(t) + cross)
        + 2 * b * t * w * model.tgt_vocab_size,
    }


def forward_flops(model, batch: int, src_len: int, tgt_len: int) -> dict[str, int]:
    """Forward-pass matmul FLOPs per part of `model` for one padded batch."""
    if model.cfg.arch == "transformer":
        return transformer_flops(model, batch, src_len, tgt_len)
    emb, units, cell = model.cfg.embedding_dim, model.cfg.units, model.cfg.cell
    b, s, t = batch, src_len, tgt_len
    directions, enc_units = (2, units // 2) if model.cfg.bidirectional else (1, units)
    parts = {
        "encoder": directions * rnn_flops(b, s, emb, enc_units, cell),
        "decoder_rnn": rnn_flops(b, t, emb, units, cell),
        "attention": 0,
        "output": 2 * b * t * units * model.tgt_vocab_size,
    }
    if model.cfg.attention != "none":
        scores = 2 * b * t * s * units
        if model.cfg.attention == "bahdanau":
            projections = 2 * b * (t + s) * units * units
        else:
            projections = 2 * b * s * units * units if model.cfg.luong_score == "general" else 0
        parts["attention"] = projections + scores + 2 * b * t * s * units  # + context
        parts["attention"] += 2 * b * t * 2 * units * units  # combine
    return parts


def train_step_flops(model, batch: int, src_len: int, tgt_len: int) -> int:
    """Matmul FLOPs of one training step (forward + backward) on one padded batch."""
    return TRAIN_FACTOR * sum(forward_flops(model, batch, src_len, tgt_len).values())
