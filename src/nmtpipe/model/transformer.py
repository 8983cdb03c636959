"""The Transformer encoder-decoder (Vaswani et al., 2017), pre-norm, for cached decoding.

Token embeddings (scaled by sqrt(width)) plus sinusoidal positions feed a stack of
pre-norm encoder layers (self-attention, feed-forward; each `x + dropout(f(norm(x)))`)
and a stack of pre-norm decoder layers (masked self-attention, cross-attention,
feed-forward), each stack ending in a layer norm. The width is `model.embedding_dim`.

Decoding one token at a time carries, per decoder layer, the projected self-attention
keys and values of the pieces so far (the flat state list [k_1, v_1, k_2, v_2, ...],
each batch x t x width): `decode` appends the new pieces' keys and values and attends
over all of them, so a step costs one position, not the whole prefix. The
cross-attention keys and values depend on the source only: `attention_keys` projects
them once for all decoder layers. Target padding needs no mask: it only follows the
last real piece, and causal attention never lets a real position see it. This
module does no I/O.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from nmtpipe.config import ModelConfig
from nmtpipe.model.ids import PAD_ID
from nmtpipe.model.layers import EncoderDecoder, TiedOutput, layer_names
from nmtpipe.model.losses import masked_loss


def positions(start, length, width: int):
    """Sinusoidal position encodings of positions start..start+length-1: length x width."""
    pos = ops.cast(ops.arange(length), "float32") + ops.cast(start, "float32")
    rates = ops.exp(ops.arange(0, width, 2, dtype="float32") * (-math.log(10000.0) / width))
    angles = pos[:, None] * rates[None, :]  # length x width/2
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


@keras.saving.register_keras_serializable(package="nmtpipe")
class HeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with fused projections.

    Self-attention projects queries, keys and values with one Dense (`qkv`, width ->
    3 width: one GEMM and one weight tensor instead of three); cross-attention projects
    the query (`query`) and, once per source, keys and values with one Dense (`kv`,
    width -> 2 width), so a decoder can keep them: the cache, or the encoder's.

    Args:
        width: model width (a multiple of heads).
        heads: attention heads.
        dropout: dropout on the attention weights.
        cross: attention over another sequence (query and kv projections) rather than
            self-attention (one qkv projection).
    """

    def __init__(self, width: int, heads: int, dropout: float = 0.0, cross=False, **kwargs):
        super().__init__(**kwargs)
        self.width, self.heads, self.dropout_rate, self.cross = width, heads, dropout, cross
        if cross:
            self.query = keras.layers.Dense(width, name="query")
            self.kv = keras.layers.Dense(2 * width, name="kv")
            self.projections = (self.query, self.kv)
        else:
            self.qkv = keras.layers.Dense(3 * width, name="qkv")
            self.projections = (self.qkv,)
        self.out = keras.layers.Dense(width, name="out")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")

    def build(self, query_shape, kv_shape=None, mask_shape=None):
        for dense in (*self.projections, self.out):
            dense.build(query_shape)

    def project_kv(self, x):
        """Cross-attention: x batch x len x width -> keys and values side by side,
        batch x len x 2 width (split them with `split_kv`)."""
        return self.kv(x)

    def project_qkv(self, x):
        """Self-attention: x batch x len x width -> (queries, keys, values), each
        batch x len x width."""
        return tuple(ops.split(self.qkv(x), 3, axis=-1))

    def _split(self, x):
        """batch x len x width -> batch x heads x len x width/heads."""
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.heads, self.width // self.heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(self, query, kv, mask, training=False):
        """query: batch x q_len x width, the queries already projected (self-attention) or
        the input to project (cross); kv: (keys, values), batch x k_len x width each;
        mask: True where a query may attend, broadcastable to batch x q_len x k_len.

        Returns the output (batch x q_len x width) and the weights averaged over heads
        (batch x q_len x k_len).
        """
        if self.cross:
            query = self.query(query)
        q, k, v = (self._split(x) for x in (query, *kv))
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.width // self.heads)
        scores = ops.cast(scores, "float32")  # softmax in float32 under mixed precision
        scores = ops.where(ops.expand_dims(mask, 1), scores, ops.full_like(scores, -1e9))
        weights = ops.softmax(scores, axis=-1)  # batch x heads x q_len x k_len
        context = ops.matmul(ops.cast(self.dropout(weights, training=training), v.dtype), v)
        context = ops.transpose(context, (0, 2, 1, 3))  # batch x q_len x heads x width/heads
        batch, length = ops.shape(context)[0], ops.shape(context)[1]
        out = self.out(ops.reshape(context, (batch, length, self.width)))
        return out, ops.mean(weights, axis=1)

    def get_config(self):
        config = {
            "width": self.width,
            "heads": self.heads,
            "dropout": self.dropout_rate,
            "cross": self.cross,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="nmtpipe")
class TransformerLayer(keras.layers.Layer):
    """One pre-norm layer: self-attention, cross-attention (decoder only), feed-forward.

    Args:
        width, heads, ff_dim: model width, attention heads, feed-forward width.
        dropout: on each sublayer's output before the residual sum.
        attention_dropout: on the attention weights.
        cross: a decoder layer (with cross-attention over the encoder output).
        ff_dropout: between the feed-forward sublayer's two Dense layers (0: none, as in
            the reference Transformer).
    """

    def __init__(
        self, width, heads, ff_dim, dropout, attention_dropout, cross, ff_dropout=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        self.width, self.heads, self.ff_dim, self.cross = width, heads, ff_dim, cross
        self.dropout_rate, self.attention_dropout = dropout, attention_dropout
        self.ff_dropout_rate = ff_dropout
        self.self_attention = HeadAttention(width, heads, attention_dropout, name="self_attention")
        self.self_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="self_norm")
        self.cross_attention = self.cross_norm = None
        if cross:
            self.cross_attention = HeadAttention(
                width, heads, attention_dropout, cross=True, name="cross_attention"
            )
            self.cross_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="cross_norm")
        self.ff_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ff_norm")
        self.ff_in = keras.layers.Dense(ff_dim, activation="relu", name="ff_in")
        self.ff_out = keras.layers.Dense(width, name="ff_out")
        self.dropout = keras.layers.Dropout(dropout, name="dropout")
        self.ff_dropout = (
            keras.layers.Dropout(ff_dropout, name="ff_dropout") if ff_dropout else None
        )

    def build(self, x_shape, *args, **kwargs):
        """Build every sublayer here, in this layer's name scope (project_kv may be called
        before the attention layer itself)."""
        attentions = [self.self_attention] + ([self.cross_attention] if self.cross else [])
        for layer in attentions + [self.self_norm, self.ff_norm, self.ff_in]:
            layer.build(x_shape)
        if self.cross:
            self.cross_norm.build(x_shape)
        self.ff_out.build((*x_shape[:-1], self.ff_dim))

    def call(self, x, self_mask, cache=None, cross_kv=None, cross_mask=None, training=False):
        """x: batch x len x width. cache: (keys, values) of earlier positions (decoder) or
        None; cross_kv: the encoder output's projected (keys, values) (decoder).

        Returns x, this layer's self-attention (keys, values) including x's positions,
        and the cross-attention weights (None in the encoder).
        """
        q, k, v = self.self_attention.project_qkv(self.self_norm(x))
        if cache is not None:
            k, v = ops.concatenate([cache[0], k], axis=1), ops.concatenate([cache[1], v], axis=1)
        out, _ = self.self_attention(q, (k, v), self_mask, training=training)
        x = x + self.dropout(out, training=training)
        weights = None
        if self.cross:
            out, weights = self.cross_attention(
                self.cross_norm(x), cross_kv, cross_mask, training=training
            )
            x = x + self.dropout(out, training=training)
        hidden = self.ff_in(self.ff_norm(x))
        if self.ff_dropout is not None:
            hidden = self.ff_dropout(hidden, training=training)
        out = self.ff_out(hidden)
        return x + self.dropout(out, training=training), (k, v), weights

    def get_config(self):
        return {
            **super().get_config(),
            "width": self.width,
            "heads": self.heads,
            "ff_dim": self.ff_dim,
            "dropout": self.dropout_rate,
            "attention_dropout": self.attention_dropout,
            "cross": self.cross,
            "ff_dropout": self.ff_dropout_rate,
        }


@keras.saving.register_keras_serializable(package="nmtpipe")
class Transformer(EncoderDecoder):
    """Pre-norm Transformer encoder-decoder over subword ids (pad id 0); see the module
    docstring. Layer names: encoder, encoder_2, ... and decoder, decoder_2, ...; the
    stacks end in encoder_norm and decoder_norm."""

    WEIGHTS_LAYOUT = 2  # 2: fused qkv / kv attention projections

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: ModelConfig, **kwargs):
        super().__init__(src_vocab_size, tgt_vocab_size, cfg, **kwargs)
        width = cfg.embedding_dim
        self.n_states = 2 * cfg.decoder_layers  # keys and values per decoder layer
        self.src_embedding, self.tgt_embedding = self._embeddings(width)
        self.encoder_stack = [self._layer("encoder", i, False) for i in range(cfg.encoder_layers)]
        self.decoder_stack = [self._layer("decoder", i, True) for i in range(cfg.decoder_layers)]
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
        self.dropout = keras.layers.Dropout(cfg.dropout, name="dropout")
        self.output_proj = (  # logits in float32 under mixed precision too
            TiedOutput(tgt_vocab_size, name="output_proj", dtype="float32")
            if cfg.tie_embeddings
            else keras.layers.Dense(tgt_vocab_size, name="output_proj", dtype="float32")
        )

    def build(self, input_shape=None):
        """Create every weight from the shapes alone, each in its layer's name scope."""
        if self.built:
            return
        width, ids, seq = self.cfg.embedding_dim, (None, None), (None, None, self.cfg.embedding_dim)
        self.src_embedding.build(ids)
        if not self.tgt_embedding.built:  # share_embeddings: the same layer
            self.tgt_embedding.build(ids)
        for layer in (*self.encoder_stack, *self.decoder_stack, self.encoder_norm):
            layer.build(seq)
        self.decoder_norm.build(seq)
        if self.cfg.tie_embeddings:
            self.output_proj.build(seq, (self.tgt_vocab_size, width))
        else:
            self.output_proj.build(seq)
        self.built = True

    def _layer(self, stack: str, i: int, cross: bool) -> TransformerLayer:
        cfg = self.cfg
        return TransformerLayer(
            cfg.embedding_dim,
            cfg.heads,
            cfg.ff_dim,
            cfg.dropout,
            cfg.attention_dropout,
            cross,
            cfg.ff_dropout,
            name=stack if i == 0 else f"{stack}_{i + 1}",
        )

    def _embed(self, embedding, ids, start, training):
        """ids (batch x len) at positions start.. -> batch x len x width, with dropout."""
        width = self.cfg.embedding_dim
        x = embedding(ids) * math.sqrt(width)
        x = x + ops.cast(positions(start, ops.shape(ids)[1], width), x.dtype)[None]
        return self.dropout(x, training=training)

    def encode(self, src, training=False):
        """src: batch x src_len ids -> (enc_out batch x src_len x width, mask, empty caches)."""
        mask = ops.not_equal(src, PAD_ID)  # batch x src_len
        x = self._embed(self.src_embedding, src, 0, training)
        for layer in self.encoder_stack:
            x, _, _ = layer(x, mask[:, None, :], training=training)
        empty = ops.zeros((ops.shape(src)[0], 0, self.cfg.embedding_dim), dtype=x.dtype)
        return self.encoder_norm(x), mask, [empty] * self.n_states

    def attention_keys(self, enc_out):
        """Every decoder layer's cross-attention keys and values of enc_out, side by side
        (keys 1, values 1, keys 2, ...): batch x src_len x (2 * decoder_layers * width)."""
        kv = [layer.cross_attention.project_kv(enc_out) for layer in self.decoder_stack]
        return ops.concatenate(kv, axis=-1)

    def decode(self, tgt_in, enc_out, enc_mask, states, training=False, enc_keys=None):
        """Run the decoder over tgt_in (batch x tgt_len) after the cached pieces in `states`.

        Returns logits (batch x tgt_len x vocab), the states with tgt_in's keys and values
        appended, and the last layer's cross-attention weights averaged over heads
        (batch x tgt_len x src_len).
        """
        start, length = ops.shape(states[0])[1], ops.shape(tgt_in)[1]
        if enc_keys is None:
            enc_keys = self.attention_keys(enc_out)
        cross_kv = ops.split(enc_keys, 2 * len(self.decoder_stack), axis=-1)
        query_pos = ops.arange(length) + start
        causal = ops.arange(start + length)[None, :] <= query_pos[:, None]  # len x (start+len)
        x, new_states, weights = self._embed(self.tgt_embedding, tgt_in, start, training), [], None
        for i, layer in enumerate(self.decoder_stack):
            x, kv, weights = layer(
                x,
                causal[None],
                cache=states[2 * i : 2 * i + 2],
                cross_kv=cross_kv[2 * i : 2 * i + 2],
                cross_mask=enc_mask[:, None, :],
                training=training,
            )
            new_states += kv
        x = self.decoder_norm(x)
        if self.cfg.tie_embeddings:
            return self.output_proj(x, self.tgt_embedding.embeddings), new_states, weights
        return self.output_proj(x), new_states, weights

    # --- facts of the network (see EncoderDecoder) ----------------------------------------

    def freeze_layers(self, part: str) -> list[str]:
        """Names of the layers of train.freeze part `part`: embeddings (src_embedding,
        tgt_embedding), encoder ("encoder[_i]", encoder_norm), decoder ("decoder[_i]",
        decoder_norm, output_proj)."""
        return layer_names(
            {
                "embeddings": [self.src_embedding, self.tgt_embedding],
                "encoder": [*self.encoder_stack, self.encoder_norm],
                "decoder": [*self.decoder_stack, self.decoder_norm, self.output_proj],
            }[part]
        )

    def forward_flops(self, batch: int, src_len: int, tgt_len: int) -> dict[str, int]:
        """Matmul FLOPs per part for B sentences padded to S source and T target positions,
        with width w, feed-forward f, target vocabulary V (fusing the q, k, v projections
        into one Dense changes no multiply-add):

            encoder layer  4 * 2B*S*w*w (q, k, v, out) + 2 * 2B*S*S*w (scores, context)
                           + 2 * 2B*S*w*f
            decoder layer  the same over T for self-attention and feed-forward, plus
                           cross-attention: 2 * 2B*T*w*w (q, out) + 2 * 2B*S*w*w (k, v)
                           + 2 * 2B*T*S*w
            output         2B*T * w * V (in "decoder", timed with the output and loss)
        """
        cfg, b, s, t = self.cfg, batch, src_len, tgt_len
        w, f = cfg.embedding_dim, cfg.ff_dim

        def self_and_ff(n: int) -> int:
            return 4 * 2 * b * n * w * w + 2 * 2 * b * n * n * w + 2 * 2 * b * n * w * f

        cross = 2 * 2 * b * t * w * w + 2 * 2 * b * s * w * w + 2 * 2 * b * t * s * w
        return {
            "encoder": cfg.encoder_layers * self_and_ff(s),
            "decoder": cfg.decoder_layers * (self_and_ff(t) + cross)
            + 2 * b * t * w * self.tgt_vocab_size,
        }

    def step_parts(self) -> dict[str, tuple]:
        """encoder (embeddings and the encoder stack), decoder (embeddings, the decoder
        stack, the output projection and the loss)."""
        ids, mask = tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool)
        seq = tf.TensorSpec([None, None, self.cfg.embedding_dim], self.compute_dtype)
        return {
            "encoder": (lambda src: self.encode(src, training=True), [ids]),
            "decoder": (self._decoder_loss, [ids, ids, seq, mask]),
        }

    def _decoder_loss(self, tgt_in, tgt_out, enc_out, enc_mask):
        """The training loss of the decoder over tgt_in (no cached pieces)."""
        width = self.cfg.embedding_dim
        empty = [ops.zeros((ops.shape(tgt_in)[0], 0, width), self.compute_dtype)] * self.n_states
        logits, _, _ = self.decode(tgt_in, enc_out, enc_mask, empty, training=True)
        return masked_loss(tgt_out, logits)

    def run_step_parts(self, run, src, tgt_in, tgt_out) -> None:
        enc_out, enc_mask, _ = run("encoder", src)
        run("decoder", tgt_in, tgt_out, enc_out, enc_mask)

    @property
    def step_matmul_shape(self) -> tuple[int, int, int]:
        """The feed-forward input's matmul at ff_dim = 4 width: batch x width by width x
        4 width, as two of width x 2 width."""
        return self.cfg.embedding_dim, self.cfg.embedding_dim, 2

    @property
    def architecture(self) -> str:
        cfg = self.cfg
        return (
            f"transformer, {cfg.encoder_layers} encoder / {cfg.decoder_layers} decoder layers, "
            f"width {cfg.embedding_dim}, {cfg.heads} heads, feed-forward {cfg.ff_dim}"
        )

    @classmethod
    def attention_caption(cls, cfg: ModelConfig) -> str:
        """What `decode` returns: the last decoder layer's cross-attention, mean over heads."""
        return "cross-attention (last decoder layer, mean over heads)"
