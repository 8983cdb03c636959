"""The encoder-decoder: recurrent encoder, recurrent decoder, attention on top.

The decoder runs over the whole target prefix (teacher forcing) in training and
one token at a time in inference, with the same layers: `encode` once, then
`decode` with the carried recurrent state. Attention follows the Luong
architecture (scored against the decoder output, then combined with it), with
an additive (Bahdanau) or multiplicative (Luong) score. This module does no I/O.
"""

from __future__ import annotations

import keras
from keras import ops

from nmtpipe.config import ModelConfig
from nmtpipe.model.attention import Attention
from nmtpipe.tokenizer import PAD_ID

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


@keras.saving.register_keras_serializable(package="nmtpipe")
class Seq2Seq(keras.Model):
    """Attention encoder-decoder over subword ids (pad id 0).

    Args:
        src_vocab_size, tgt_vocab_size: sizes of the SentencePiece vocabularies.
        embedding_dim: embedding size of both sides.
        units: decoder state size; a bidirectional encoder uses units/2 per direction.
        cell: "lstm" or "gru".
        bidirectional: bidirectional encoder.
        attention: "none", "bahdanau" or "luong".
        luong_score: "dot" or "general".
        dropout: dropout rate on embeddings and on the attentional state.
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embedding_dim: int = 128,
        units: int = 256,
        cell: str = "lstm",
        bidirectional: bool = True,
        attention: str = "luong",
        luong_score: str = "general",
        dropout: float = 0.2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.src_vocab_size, self.tgt_vocab_size = src_vocab_size, tgt_vocab_size
        self.embedding_dim, self.units, self.cell = embedding_dim, units, cell
        self.bidirectional, self.attention_kind = bidirectional, attention
        self.luong_score, self.dropout_rate = luong_score, dropout
        self.n_states = 2 if cell == "lstm" else 1

        rnn = CELLS[cell]
        self.src_embedding = keras.layers.Embedding(
            src_vocab_size, embedding_dim, name="src_embedding"
        )
        self.tgt_embedding = keras.layers.Embedding(
            tgt_vocab_size, embedding_dim, name="tgt_embedding"
        )
        enc_units = units // 2 if bidirectional else units
        enc_rnn = rnn(enc_units, return_sequences=True, return_state=True, name="encoder_rnn")
        self.encoder_rnn = (
            keras.layers.Bidirectional(enc_rnn, name="encoder") if bidirectional else enc_rnn
        )
        self.decoder_rnn = rnn(units, return_sequences=True, return_state=True, name="decoder_rnn")
        self.attention = self.combine = None
        if attention != "none":
            self.attention = Attention(units, attention, luong_score, name="attention")
            self.combine = keras.layers.Dense(
                units, activation="tanh", use_bias=False, name="attention_combine"
            )
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.output_proj = keras.layers.Dense(tgt_vocab_size, name="output_proj")

    def encode(self, src, training=False):
        """src: batch x src_len ids -> (enc_out batch x src_len x units, mask, dec states)."""
        mask = ops.not_equal(src, PAD_ID)  # batch x src_len
        x = self.dropout(self.src_embedding(src), training=training)
        enc_out, *states = self.encoder_rnn(x, mask=mask, training=training)
        if self.bidirectional:  # [fw states..., bw states...] -> concatenated per state
            forward, backward = states[: self.n_states], states[self.n_states :]
            states = [
                ops.concatenate([f, b], axis=-1) for f, b in zip(forward, backward, strict=True)
            ]
        return enc_out, mask, list(states)

    def attention_keys(self, enc_out):
        """The attention's projection of enc_out, for `decode(enc_keys=...)`; None without
        attention. Inference computes it once per source instead of at every step."""
        return None if self.attention is None else self.attention.project_keys(enc_out)

    def decode(self, tgt_in, enc_out, enc_mask, states, training=False, enc_keys=None):
        """Run the decoder over tgt_in (batch x tgt_len) from `states`.

        enc_keys: `attention_keys(enc_out)` when already computed.
        Returns logits (batch x tgt_len x vocab), the new states, and the attention
        weights (batch x tgt_len x src_len, None without attention).
        """
        # No mask here: padding only follows the last real token, where neither the
        # loss nor inference reads the output, and masks would leak into the logits.
        x = self.dropout(self.tgt_embedding(tgt_in), training=training)
        dec_out, *states = self.decoder_rnn(x, initial_state=states, training=training)
        weights = None
        if self.attention is not None:
            context, weights = self.attention(dec_out, enc_out, enc_mask, enc_keys)
            dec_out = self.combine(ops.concatenate([dec_out, context], axis=-1))
        logits = self.output_proj(self.dropout(dec_out, training=training))
        return logits, list(states), weights

    def call(self, inputs, training=False):
        """Teacher forcing: inputs = (src, tgt_in) -> logits batch x tgt_len x vocab."""
        src, tgt_in = inputs
        enc_out, enc_mask, states = self.encode(src, training=training)
        logits, _, _ = self.decode(tgt_in, enc_out, enc_mask, states, training=training)
        return logits

    def build(self, input_shape=None):
        """Create every weight by running on a dummy batch (also used when loading)."""
        if self.built:
            return
        dummy = ops.ones((1, 2), dtype="int32")
        self.call((dummy, dummy))  # builds each sublayer through its own __call__
        self.built = True

    def get_config(self):
        return {
            "name": self.name,
            "src_vocab_size": self.src_vocab_size,
            "tgt_vocab_size": self.tgt_vocab_size,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "cell": self.cell,
            "bidirectional": self.bidirectional,
            "attention": self.attention_kind,
            "luong_score": self.luong_score,
            "dropout": self.dropout_rate,
        }


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> Seq2Seq:
    """The model described by `cfg`, with all weights created."""
    model = Seq2Seq(
        src_vocab_size=src_vocab_size,
        tgt_vocab_size=tgt_vocab_size,
        embedding_dim=cfg.embedding_dim,
        units=cfg.units,
        cell=cfg.cell,
        bidirectional=cfg.bidirectional,
        attention=cfg.attention,
        luong_score=cfg.luong_score,
        dropout=cfg.dropout,
        name="seq2seq",
    )
    model.build()
    return model


def masked_loss(y_true, logits):
    """Token-level cross-entropy averaged over non-padding target positions."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), logits.dtype)
    loss = keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


def masked_accuracy(y_true, logits):
    """Share of non-padding target positions predicted exactly."""
    mask = ops.cast(ops.not_equal(y_true, PAD_ID), "float32")
    hits = ops.cast(ops.equal(ops.cast(y_true, "int32"), ops.argmax(logits, axis=-1)), "float32")
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)
