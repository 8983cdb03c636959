"""The Transformer as a CTranslate2 model: a Converter from the Keras weights.

`KerasTransformerConverter._load` fills a `ctranslate2.specs.TransformerSpec` from a
trained `nmtpipe.model.transformer.Transformer`; `Converter.convert` then validates,
quantizes and writes it. What the spec is told, and why:

- pre-norm layers with ReLU feed-forward, each stack ending in a layer norm
  (encoder_norm, decoder_norm): `TransformerSpec.from_config(pre_norm=True)`.
- layer-norm epsilon: the model's (Keras' LayerNormalization here, 1e-6), not
  CTranslate2's default 1e-5.
- positions: the model's own sinusoidal table (`transformer.positions`: sin half,
  cos half, from position 0). CTranslate2's built-in table differs, so the spec gets
  ours, with `MIN_POSITIONS` rows or more; longer inputs are a CTranslate2 error.
- token embeddings times sqrt(width): CTranslate2's `scale_embeddings` (on).
- fused projections: self-attention `qkv` (columns q|k|v) is CTranslate2's fused
  linear_0 as it is; cross-attention `query` is linear_0 and `kv` (k|v) linear_1.
  Keras kernels are [in, out], a spec's linear weights [out, in].
- tied embeddings: the projection weight is the target embedding matrix, with
  `TiedOutput`'s bias (CTranslate2 stores the duplicate once, as an alias).
- sources end with EOS (`ids.tokenizer.encode_source`): `add_source_eos`, so a caller passes
  SentencePiece pieces only; the decoder starts from `<s>`.

The output directory is self-contained: CTranslate2's model.bin, config.json and
vocabularies, the SentencePiece models (src.model, tgt.model) and `modeldir.CT2_INFO`
(the language pair, quantization, decoding limits), read by
`search.ctranslate2_engine`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import ctranslate2
import numpy as np
from ctranslate2.specs import common_spec, transformer_spec

from nmtpipe.errors import ModelError
from nmtpipe.fileio import write_json
from nmtpipe.layout import SIDES, tokenizer_file
from nmtpipe.model.transformer import positions
from nmtpipe.modeldir import CT2_INFO
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import MAX_INPUT_PIECES

log = logging.getLogger(__name__)
QUANTIZATIONS = ("int8", "int8_float32", "int16", "float32")  # CTranslate2's CPU types
MIN_POSITIONS = 1024  # CTranslate2 truncates sources to max_input_length=1024 by default


def _array(variable) -> np.ndarray:
    """A Keras variable as a C-ordered float32 array."""
    return np.ascontiguousarray(np.asarray(variable.numpy(), dtype=np.float32))


def _set_linear(spec: common_spec.LinearSpec, dense) -> None:
    spec.weight = np.ascontiguousarray(_array(dense.kernel).T)  # Keras [in, out] -> [out, in]
    spec.bias = _array(dense.bias)


def _set_norm(spec: common_spec.LayerNormSpec, norm) -> None:
    spec.gamma, spec.beta = _array(norm.gamma), _array(norm.beta)


def _set_layer(spec, layer) -> None:
    """One TransformerLayer (encoder or decoder) onto its layer spec."""
    _set_norm(spec.self_attention.layer_norm, layer.self_norm)
    _set_linear(spec.self_attention.linear[0], layer.self_attention.qkv)
    _set_linear(spec.self_attention.linear[1], layer.self_attention.out)
    if layer.cross:
        _set_norm(spec.attention.layer_norm, layer.cross_norm)
        for linear, dense in zip(spec.attention.linear, ("query", "kv", "out"), strict=True):
            _set_linear(linear, getattr(layer.cross_attention, dense))
    _set_norm(spec.ffn.layer_norm, layer.ff_norm)
    _set_linear(spec.ffn.linear_0, layer.ff_in)
    _set_linear(spec.ffn.linear_1, layer.ff_out)


def _vocabulary(sp, size: int, side: str) -> list[str]:
    """The pieces of a SentencePiece model by id; its size must be the embedding's."""
    if sp.get_piece_size() != size:
        raise ModelError(
            f"{side}.model has {sp.get_piece_size()} pieces but the model's {side} "
            f"embedding has {size} rows"
        )
    return [sp.id_to_piece(i) for i in range(size)]


class KerasTransformerConverter(ctranslate2.converters.Converter):
    """Converts an nmtpipe Transformer (Keras) to a CTranslate2 TransformerSpec.

    Args:
        model: a built `nmtpipe.model.transformer.Transformer`.
        sp_src, sp_tgt: its SentencePiece processors (the vocabularies).
        max_positions: rows of the position table: the longest source or target.
    """

    def __init__(self, model, sp_src, sp_tgt, max_positions: int = MIN_POSITIONS):
        self.model, self.sp_src, self.sp_tgt = model, sp_src, sp_tgt
        self.max_positions = max_positions

    def _load(self) -> transformer_spec.TransformerSpec:
        model, cfg = self.model, self.model.cfg
        spec = transformer_spec.TransformerSpec.from_config(
            (cfg.encoder_layers, cfg.decoder_layers),
            cfg.heads,
            pre_norm=True,
            activation=common_spec.Activation.RELU,
            alignment_heads=cfg.heads,  # return_attention: the mean over the last layer's heads
        )
        spec.config.layer_norm_epsilon = float(model.encoder_norm.epsilon)
        spec.config.add_source_eos = True
        spec.config.decoder_start_token = "<s>"
        table = np.asarray(positions(0, self.max_positions, cfg.embedding_dim), np.float32)
        self._set_encoder(spec.encoder, table)
        self._set_decoder(spec.decoder, table)
        spec.register_source_vocabulary(_vocabulary(self.sp_src, model.src_vocab_size, "src"))
        spec.register_target_vocabulary(_vocabulary(self.sp_tgt, model.tgt_vocab_size, "tgt"))
        return spec

    def _set_encoder(self, spec, table: np.ndarray) -> None:
        spec.embeddings[0].weight = _array(self.model.src_embedding.embeddings)
        spec.position_encodings.encodings = table
        for layer_spec, layer in zip(spec.layer, self.model.encoder_stack, strict=True):
            _set_layer(layer_spec, layer)
        _set_norm(spec.layer_norm, self.model.encoder_norm)

    def _set_decoder(self, spec, table: np.ndarray) -> None:
        model = self.model
        spec.embeddings.weight = _array(model.tgt_embedding.embeddings)
        spec.position_encodings.encodings = table
        for layer_spec, layer in zip(spec.layer, model.decoder_stack, strict=True):
            _set_layer(layer_spec, layer)
        _set_norm(spec.layer_norm, model.decoder_norm)
        if model.cfg.tie_embeddings:  # logits = x E^T + b: E is already [out, in]
            spec.projection.weight = spec.embeddings.weight
            spec.projection.bias = _array(model.output_proj.bias)
        else:
            _set_linear(spec.projection, model.output_proj)


def max_positions(max_len_ratio: float) -> int:
    """Rows of the position table: CTranslate2's default source limit, or more when
    nmtpipe's decoding limit for the longest input (MAX_INPUT_PIECES) is longer."""
    longest = SearchSettings(max_len_ratio=max_len_ratio).max_target_len(MAX_INPUT_PIECES)
    return max(MIN_POSITIONS, longest)


def export_ctranslate2(
    trained, model_dir: Path, out_dir: Path, quantization: str, max_len_ratio: float
) -> None:
    """Write the CTranslate2 model of a trained Transformer into out_dir (replaced).

    Args:
        trained: a `modeldir.TrainedModel` of a Transformer.
        model_dir: its directory (the SentencePiece models are copied from there).
        out_dir: the CTranslate2 directory to write.
        quantization: one of QUANTIZATIONS.
        max_len_ratio: nmtpipe's decoding limit, recorded in CT2_INFO.
    """
    rows = max_positions(max_len_ratio)
    converter = KerasTransformerConverter(trained.model, trained.sp_src, trained.sp_tgt, rows)
    converter.convert(str(out_dir), quantization=quantization, force=True)
    for side in SIDES:
        shutil.copyfile(tokenizer_file(model_dir, side), tokenizer_file(out_dir, side))
    info = {
        "src_lang": trained.config.get("src_lang"),
        "tgt_lang": trained.config.get("tgt_lang"),
        "quantization": quantization,
        "max_positions": rows,  # longest source or target the position table covers
        "max_len_ratio": max_len_ratio,
        "max_input_pieces": MAX_INPUT_PIECES,
    }
    write_json(Path(out_dir) / CT2_INFO, info)
    log.info("wrote the CTranslate2 model (%s) to %s", quantization, out_dir)
