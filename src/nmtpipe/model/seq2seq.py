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
import tensorflow as tf
from keras import ops

from nmtpipe.config import ModelConfig
from nmtpipe.model.attention import Attention
from nmtpipe.model.ids import PAD_ID
from nmtpipe.model.layers import EncoderDecoder, TiedOutput, layer_names
from nmtpipe.model.losses import masked_loss
from nmtpipe.model.recurrent import GRU, LSTM

CELLS = {"lstm": LSTM, "gru": GRU}  # keras' layers with a faster CPU loop
GATES = {"lstm": 4, "gru": 3}  # gate blocks per cell: the width of its matmuls, in units


def _nth(name: str, i: int) -> str:
    """Layer name of stack layer i (from 1): the first keeps the plain name."""
    return name if i == 1 else f"{name}_{i}"


def rnn_flops(batch: int, steps: int, in_dim: int, units: int, cell: str) -> int:
    """One recurrent layer (one direction): input and recurrent matmul at every step."""
    return steps * 2 * batch * GATES[cell] * units * (in_dim + units)


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
        x, new_states = self._decoder_rnns(tgt_in, states, training)
        weights = None
        if self.attention is not None:
            x, weights = self._attend(x, enc_out, enc_mask, enc_keys)
        return self._logits(x, training), new_states, weights

    def _decoder_rnns(self, tgt_in, states, training):
        """The decoder stack over tgt_in from `states`: its output (batch x tgt_len x
        units) and the new states (flat)."""
        # No mask here: padding only follows the last real token, where neither the
        # loss nor inference reads the output, and masks would leak into the logits.
        x = self.dropout(self.tgt_embedding(tgt_in), training=training)
        k, new_states = self.layer_states, []
        for i, rnn in enumerate([self.decoder_rnn, *self.decoder_stack]):
            x, layer_states = self._stacked(
                i, rnn, x, training, initial_state=list(states[i * k : (i + 1) * k])
            )
            new_states += layer_states
        return x, new_states

    def _attend(self, x, enc_out, enc_mask, enc_keys=None):
        """Attention over enc_out, combined with x: the attentional state (batch x tgt_len
        x units) and the weights (batch x tgt_len x src_len)."""
        context, weights = self.attention(x, enc_out, enc_mask, enc_keys)
        return self.combine(ops.concatenate([x, context], axis=-1)), weights

    def _logits(self, x, training):
        """Attentional state batch x tgt_len x units -> logits batch x tgt_len x vocab."""
        x = self.dropout(x, training=training)
        if not self.cfg.tie_embeddings:
            return self.output_proj(x)
        if self.tie_projection is not None:
            x = self.tie_projection(x)  # batch x tgt_len x embedding_dim
        return self.output_proj(x, self.tgt_embedding.embeddings)

    # --- facts of the network (see EncoderDecoder) ----------------------------------------

    def freeze_layers(self, part: str) -> list[str]:
        """Names of the layers of train.freeze part `part`: embeddings (src_embedding,
        tgt_embedding), encoder ("encoder[_i]" bidirectional, else "encoder_rnn[_i]"),
        decoder ("decoder_rnn[_i]", attention and attention_combine unless
        attention=none, tie_projection if any, output_proj)."""
        decoder = [self.decoder_rnn, *self.decoder_stack, self.attention, self.combine]
        return layer_names(
            {
                "embeddings": [self.src_embedding, self.tgt_embedding],
                "encoder": [self.encoder_rnn, *self.encoder_stack],
                "decoder": [*decoder, self.tie_projection, self.output_proj],
            }[part]
        )

    def forward_flops(self, batch: int, src_len: int, tgt_len: int) -> dict[str, int]:
        """Matmul FLOPs per part for B sentences padded to S source and T target positions,
        with embedding size E, decoder units U, target vocabulary V and g gate blocks per
        cell (LSTM 4, GRU 3); i is a layer's input width, E for layer 1, U above:

            encoder      d * S * 2B * g*h * (i + h) per layer  d=2, h=U/2 bidirectional;
                                                               d=1, h=U not
            decoder_rnn  T * 2B * g*U * (i + U) per layer       input and recurrent matmul
            attention    bahdanau: 2B*T*U*U (query) + 2B*S*U*U (keys) + 2B*T*S*U (scores)
                         luong general: 2B*S*U*U (keys) + 2B*T*S*U;  dot: 2B*T*S*U
                         every kind: + 2B*T*S*U (context) + 2B*T * 2U * U (combine)
            output       2B*T * U * V  (tie_projection first: 2B*T*U*E + 2B*T*E*V)
        """
        cfg, b, s, t = self.cfg, batch, src_len, tgt_len
        emb, units = cfg.embedding_dim, cfg.units
        directions, enc_units = (2, units // 2) if cfg.bidirectional else (1, units)
        encoder = sum(
            directions * rnn_flops(b, s, emb if i == 0 else units, enc_units, cfg.cell)
            for i in range(cfg.encoder_layers)
        )
        decoder = sum(
            rnn_flops(b, t, emb if i == 0 else units, units, cfg.cell)
            for i in range(cfg.decoder_layers)
        )
        output = 2 * b * t * units * self.tgt_vocab_size
        if self.tie_projection is not None:
            output = 2 * b * t * emb * (units + self.tgt_vocab_size)
        return {
            "encoder": encoder,
            "decoder_rnn": decoder,
            "attention": self._attention_flops(b, s, t),
            "output": output,
        }

    def _attention_flops(self, b: int, s: int, t: int) -> int:
        """The attention part of forward_flops (0 without attention)."""
        cfg, units = self.cfg, self.cfg.units
        if cfg.attention == "none":
            return 0
        if cfg.attention == "bahdanau":
            projections = 2 * b * (t + s) * units * units
        else:
            projections = 2 * b * s * units * units if cfg.luong_score == "general" else 0
        scores_and_context = 2 * (2 * b * t * s * units)
        return projections + scores_and_context + 2 * b * t * 2 * units * units

    def step_parts(self) -> dict[str, tuple]:
        """encoder (the encoder stack), decoder_rnn (target embeddings and the decoder
        stack), attention (unless attention=none: scores, context and combine), output
        (the output projection and the loss)."""
        ids, mask = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool)
        seq = tf.TensorSpec([None, None, self.cfg.units], self.compute_dtype)
        states = [tf.TensorSpec([None, self.cfg.units], self.compute_dtype)] * self.n_states
        parts = {
            "encoder": (lambda src: self.encode(src, training=True), [ids]),
            "decoder_rnn": (
                lambda tgt_in, s: self._decoder_rnns(tgt_in, s, True)[0],
                [ids, states],
            ),
            "attention": (lambda x, enc, m: self._attend(x, enc, m)[0], [seq, seq, mask]),
            "output": (lambda x, tgt_out: masked_loss(tgt_out, self._logits(x, True)), [seq, ids]),
        }
        if self.attention is None:
            del parts["attention"]
        return parts

    def run_step_parts(self, run, src, tgt_in, tgt_out) -> None:
        enc_out, enc_mask, states = run("encoder", src)
        dec_out = run("decoder_rnn", tgt_in, states)
        if self.attention is not None:
            dec_out = run("attention", dec_out, enc_out, enc_mask)
        run("output", dec_out, tgt_out)

    @property
    def step_matmul_shape(self) -> tuple[int, int, int]:
        """The first decoder layer's per-step input and recurrent matmuls."""
        return self.cfg.embedding_dim, self.cfg.units, GATES[self.cfg.cell]

    @property
    def architecture(self) -> str:
        cfg = self.cfg
        score = f" ({cfg.luong_score})" if cfg.attention == "luong" else ""
        encoder = "bidirectional " if cfg.bidirectional else ""
        return (
            f"{encoder}{cfg.cell} encoder, units {cfg.units}, embeddings "
            f"{cfg.embedding_dim}, attention {cfg.attention}{score}"
        )

    @classmethod
    def attention_caption(cls, cfg: ModelConfig) -> str:
        """The attention's kind: "bahdanau attention", "luong attention, general score"..."""
        if cfg.attention == "none":
            return "no attention (model.attention: none)"
        if cfg.attention == "luong":
            return f"luong attention, {cfg.luong_score} score"
        return "bahdanau attention"
