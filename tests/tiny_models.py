"""Tiny Seq2Seq models and batches shared by the model and search tests."""

import numpy as np

from nmtpipe.config import ModelConfig
from nmtpipe.model.build import build_model

ATTENTIONS = [("luong", "general"), ("luong", "dot"), ("bahdanau", "general"), ("none", "dot")]
STACKS = [("lstm", (1, 1)), ("lstm", (2, 2)), ("gru", (2, 2)), ("gru", (3, 2))]  # cell, depths


def stack_ids(stacks):
    return [f"{cell}-{enc}x{dec}" for cell, (enc, dec) in stacks]


def tiny(attention="luong", luong_score="general", cell="lstm", bidirectional=True, **options):
    """A tiny model; options: other ModelConfig keys (layers, residual, tie_embeddings)."""
    cfg = ModelConfig(
        cell=cell,
        bidirectional=bidirectional,
        attention=attention,
        luong_score=luong_score,
        **{"embedding_dim": 8, "units": 16, "dropout": 0.0, **options},
    )
    return build_model(cfg, src_vocab_size=30, tgt_vocab_size=40)


def stacked(cell, layers, **kwargs):
    return tiny(cell=cell, encoder_layers=layers[0], decoder_layers=layers[1], **kwargs)


def batch(seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(4, 30, (3, 6)).astype("int32")
    src[0, 4:] = 0  # first sentence is shorter: padded
    tgt_in = rng.integers(4, 40, (3, 5)).astype("int32")
    return src, tgt_in
