"""Attention of decoder states over encoder outputs: Bahdanau (additive) or Luong."""

from __future__ import annotations

import keras
from keras import ops

KINDS = ("bahdanau", "luong")
LUONG_SCORES = ("dot", "general")


@keras.saving.register_keras_serializable(package="nmtpipe")
class Attention(keras.layers.Layer):
    """Scores every encoder output against every decoder state; returns (context, weights).

    - ``bahdanau``: additive score ``v^T tanh(W_q q + W_k k)`` with its own query and
      key projections (Bahdanau et al., 2015).
    - ``luong``: multiplicative score, ``dot`` (``q^T k``) or ``general`` (``q^T W k``)
      (Luong et al., 2015).

    Args:
        units: size of the additive projections (bahdanau) or of the query (luong general).
        kind: "bahdanau" or "luong".
        luong_score: "dot" or "general" (used when kind is "luong").
    """

    def __init__(self, units: int, kind: str = "luong", luong_score: str = "general", **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"attention kind must be one of {KINDS}, got {kind!r}")
        if luong_score not in LUONG_SCORES:
            raise ValueError(f"luong_score must be one of {LUONG_SCORES}, got {luong_score!r}")
        self.units, self.kind, self.luong_score = units, kind, luong_score
        self.query_proj = self.key_proj = self.score_proj = None
        if kind == "bahdanau":
            self.query_proj = keras.layers.Dense(units, use_bias=False, name="query_proj")
            self.key_proj = keras.layers.Dense(units, use_bias=False, name="key_proj")
            self.score_proj = keras.layers.Dense(1, use_bias=False, name="score_proj")
        elif luong_score == "general":
            self.key_proj = keras.layers.Dense(units, use_bias=False, name="key_proj")

    def build(self, query_shape, keys_shape, mask_shape=None):
        if self.kind == "bahdanau":
            self.query_proj.build(query_shape)
            self.key_proj.build(keys_shape)
            self.score_proj.build((*keys_shape[:-1], self.units))
        elif self.key_proj is not None:
            self.key_proj.build(keys_shape)

    def project_keys(self, keys):
        """Keys as the score reads them (batch x src_len x units or k_dim): they depend on
        the source only, so a decoder can project them once and reuse them every step."""
        return keys if self.key_proj is None else self.key_proj(keys)

    def scores(self, query, projected_keys):
        """Unnormalised scores: batch x tgt_len x src_len."""
        if self.kind == "bahdanau":
            q = ops.expand_dims(self.query_proj(query), 2)  # batch x tgt_len x 1 x units
            k = ops.expand_dims(projected_keys, 1)  # batch x 1 x src_len x units
            return ops.squeeze(self.score_proj(ops.tanh(q + k)), -1)
        return ops.matmul(query, ops.transpose(projected_keys, (0, 2, 1)))

    def call(self, query, keys, mask, projected_keys=None):
        """Attend with query (batch x tgt_len x q_dim) over keys (batch x src_len x k_dim).

        mask: batch x src_len, True for real source positions (padding gets no weight).
        projected_keys: `project_keys(keys)` when already computed.
        Returns context (batch x tgt_len x k_dim) and weights (batch x tgt_len x src_len).
        """
        if projected_keys is None:
            projected_keys = self.project_keys(keys)
        scores = self.scores(query, projected_keys)
        scores = ops.cast(scores, "float32")  # softmax in float32 under mixed precision
        scores = ops.where(ops.expand_dims(mask, 1), scores, ops.full_like(scores, -1e9))
        weights = ops.cast(ops.softmax(scores, axis=-1), keys.dtype)
        context = ops.matmul(weights, keys)
        return context, weights

    def compute_mask(self, *args, **kwargs):
        return None  # padding is handled through the explicit `mask` argument

    def compute_output_spec(self, query, keys, mask, projected_keys=None):
        batch, tgt_len, _ = query.shape
        src_len, k_dim = keys.shape[1], keys.shape[2]
        return (
            keras.KerasTensor((batch, tgt_len, k_dim), dtype=self.compute_dtype),
            keras.KerasTensor((batch, tgt_len, src_len), dtype=self.compute_dtype),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kind": self.kind,
            "luong_score": self.luong_score,
        }
