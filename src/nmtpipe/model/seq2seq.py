"""The encoder-decoder: stacked recurrent encoder and decoder, attention on top.

The decoder runs over the whole target prefix (teacher forcing) in training and
one token at a time in inference, with the same layers: `encode` once, then
`decode` with the carried recurrent states. Attention follows the Luong
architecture (scored against the top decoder layer's output, then combined with
it), with an additive (Bahdanau) or multiplicative (Luong) score. This module
does no I/O.

Stacks: with `bidirectional` every encoder layer is bidirectional (units/2 per
direction), so every encoder and decoder layer outputs `units`. Layers 2..N of
either stack read the layer below through dropout and, with `residual`, add that
input to their output. Decoder layer i starts from encoder layer i's final state
when both stacks are equally deep; otherwise every decoder layer starts from the
top encoder layer's final state. The decoder state is one flat list, layer by
layer: `n_states` tensors of batch x units (h, c per layer for LSTM; h for GRU).
"""

from __future__ import annotations

import keras
from keras import ops

from nmtpipe.config import ModelConfig
from nmtpipe.model.attention import Attention
from nmtpipe.model.ids import PAD_ID
from nmtpipe.model.layers import EncoderDecoder, TiedOutput
from nmtpipe.model.recurrent import GRU, LSTM

CELLS = {"lstm": LSTM, "gru": GRU}  # keras' layers with a faster CPU loop


def _nth(name: str, i: int) -> str:
    """Layer name of stack layer i (from 1): the first keeps the plain name."""
    return name if i == 1 else f"{name}_{i}"


@keras.saving.register_keras_serializable(package="nmtpipe")
class Seq2Seq(EncoderDecoder):
    """Attention encoder-decoder over subword ids (pad id 0).

    Args:
        src_vocab_size, tgt_vocab_size: sizes of the SentencePiece vocabularies.
        cfg: the network's hyperparameters (`config.ModelConfig`: each key's meaning
            is declared there, once).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: ModelConfig, **kwargs):
        super().__init__(src_vocab_size, tgt_vocab_size, cfg, **kwargs)
        self.layer_states = 2 if cfg.cell == "lstm" else 1  # state tensors per decoder layer
        self.n_states = cfg.decoder_layers * self.layer_states  # the flat decoder state list

        self.src_embedding, self.tgt_embedding = self._embeddings(cfg.embedding_dim)
        encoders = [self._encoder_layer(i) for i in range(1, cfg.encoder_layers + 1)]
        self.encoder_rnn, self.encoder_stack = encoders[0], encoders[1:]
        decoders = [self._decoder_layer(i) for i in range(1, cfg.decoder_layers + 1)]
        self.decoder_rnn, self.decoder_stack = decoders[0], decoders[1:]
        self.attention = self.combine = None
        if cfg.attention != "none":
            self.attention = Attention(cfg.units, cfg.attention, cfg.luong_score, name="attention")
            self.combine = keras.layers.Dense(
                cfg.units, activation="tanh", use_bias=False, name="attention_combine"
            )
        self.dropout = keras.layers.Dropout(cfg.dropout, name="dropout")
        self.tie_projection, self.output_proj = self._output_layers()

    @property
    def attends(self) -> bool:
        return self.attention is not None

    def _encoder_layer(self, i: int):
        """Encoder layer i (from 1): "encoder[_i]" if bidirectional, else "encoder_rnn[_i]"."""
        rnn = CELLS[self.cfg.cell](
            self.cfg.units // 2 if self.cfg.bidirectional else self.cfg.units,
            return_sequences=True,
            return_state=True,
            name=_nth("encoder_rnn", i),
        )
        if not self.cfg.bidirectional:
            return rnn
        return keras.layers.Bidirectional(rnn, name=_nth("encoder", i))

    def _decoder_layer(self, i: int):
        """Decoder layer i (from 1): "decoder_rnn[_i]"."""
        return CELLS[self.cfg.cell](
            self.cfg.units, return_sequences=True, return_state=True, name=_nth("decoder_rnn", i)
        )

    def _output_layers(self):
        """(tie_projection or None, output_proj): a Dense, or TiedOutput with tie_embeddings."""
        if not self.cfg.tie_embeddings:
            return None, keras.layers.Dense(self.tgt_vocab_size, name="output_proj")
        projection = None
        if self.cfg.units != self.cfg.embedding_dim:
            projection = keras.layers.Dense(
                self.cfg.embedding_dim, use_bias=False, name="tie_projection"
            )
        return projection, TiedOutput(self.tgt_vocab_size, name="output_proj")

    def _stacked(self, i: int, rnn, x, training, **kwargs):
        """Run stack layer i (from 0) on x (batch x len x dim); dropout and residual above 0.

        Returns its output (batch x len x units) and its final states.
        """
        if i:
            x = self.dropout(x, training=training)
        out, *states = rnn(x, training=training, **kwargs)
        return (out + x if i and self.cfg.residual else out), states

    def _join_directions(self, states) -> list:
        """[fw states..., bw states...] -> one batch x units tensor per state."""
        if not self.cfg.bidirectional:
            return list(states)
        forward, backward = states[: self.layer_states], states[self.layer_states :]
        return [ops.concatenate([f, b], axis=-1) for f, b in zip(forward, backward, strict=True)]

    def _bridge(self, finals: list[list]) -> list:
        """Decoder initial states (flat) from each encoder layer's final states.

        Layer by layer when the stacks are equally deep, otherwise the top encoder
        layer's states for every decoder layer.
        """
        if len(finals) != self.cfg.decoder_layers:
            finals = [finals[-1]] * self.cfg.decoder_layers
        return [state for layer in finals for state in layer]

    def encode(self, src, training=False):
        """src: batch x src_len ids -> (enc_out batch x src_len x units, mask, dec states).

        The decoder states are a flat list of `n_states` tensors, batch x units each.
        """
        mask = ops.not_equal(src, PAD_ID)  # batch x src_len
        x = self.dropout(self.src_embedding(src), training=training)
        finals = []  # per encoder layer, its final states
        for i, rnn in enumerate([self.encoder_rnn, *self.encoder_stack]):
            x, states = self._stacked(i, rnn, x, training, mask=mask)
            finals.append(self._join_directions(states))
        return x, mask, self._bridge(finals)

    def attention_keys(self, enc_out):
        """The attention's projection of enc_out, for `decode(enc_keys=...)`; None without
        attention. Inference computes it once per source instead of at every step."""
        return None if self.attention is None else self.attention.project_keys(enc_out)

    def decode(self, tgt_in, enc_out, enc_mask, states, training=False, enc_keys=None):
        """Run the decoder over tgt_in (batch x tgt_len) from `states` (flat, n_states).

        enc_keys: `attention_keys(enc_out)` when already computed.
        Returns logits (batch x tgt_len x vocab), the new states (flat), and the
        attention weights (batch x tgt_len x src_len, None without attention).
        """
        # No mask here: padding only follows the last real token, where neither the
        # loss nor inference reads the output, and masks would leak into the logits.
        x = self.dropout(self.tgt_embedding(tgt_in), training=training)
        k, new_states = self.layer_states, []
        for i, rnn in enumerate([self.decoder_rnn, *self.decoder_stack]):
            x, layer_states = self._stacked(
                i, rnn, x, training, initial_state=list(states[i * k : (i + 1) * k])
            )
            new_states += layer_states
        weights = None
        if self.attention is not None:
            context, weights = self.attention(x, enc_out, enc_mask, enc_keys)
            x = self.combine(ops.concatenate([x, context], axis=-1))
        return self._logits(x, training), new_states, weights

    def _logits(self, x, training):
        """Attentional state batch x tgt_len x units -> logits batch x tgt_len x vocab."""
        x = self.dropout(x, training=training)
        if not self.cfg.tie_embeddings:
            return self.output_proj(x)
        if self.tie_projection is not None:
            x = self.tie_projection(x)  # batch x tgt_len x embedding_dim
        return self.output_proj(x, self.tgt_embedding.embeddings)
