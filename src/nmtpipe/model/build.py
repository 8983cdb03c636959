"""config -> network: the one place where `model.arch` picks the encoder-decoder."""

from __future__ import annotations

from nmtpipe.config import ModelConfig
from nmtpipe.model.layers import EncoderDecoder
from nmtpipe.model.seq2seq import Seq2Seq
from nmtpipe.model.transformer import Transformer

NETWORKS = {"rnn": Seq2Seq, "transformer": Transformer}


def build_model(cfg: ModelConfig, src_vocab_size: int, tgt_vocab_size: int) -> EncoderDecoder:
    """The network described by `cfg`, with all weights created."""
    name = "seq2seq" if cfg.arch == "rnn" else "transformer"
    model = NETWORKS[cfg.arch](src_vocab_size, tgt_vocab_size, cfg, name=name)
    model.build()
    return model
