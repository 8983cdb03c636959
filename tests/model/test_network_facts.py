"""The facts each network declares (freezable layers, vocabulary-sized weights, FLOPs,
timed parts, attention caption), and a toy network that bench and training.transfer
handle through those facts alone, with no change outside nmtpipe.model."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from nmtpipe.bench.flops import train_step_flops
from nmtpipe.bench.timing import part_figures, part_functions, time_steps
from nmtpipe.config import FREEZE_PARTS, ModelConfig
from nmtpipe.model.build import NETWORKS, build_model
from nmtpipe.model.ids import PAD_ID
from nmtpipe.model.layers import EncoderDecoder, layer_names
from nmtpipe.model.losses import masked_loss
from nmtpipe.training.transfer import copy_weights, freeze, part_layers

SRC_VOCAB, TGT_VOCAB, WIDTH = 30, 40, 8


@keras.saving.register_keras_serializable(package="tests")
class BagOfPieces(EncoderDecoder):
    """A toy network: a Dense over each source embedding, and a decoder that reads each
    target embedding plus the mean encoder output (no attention, no decoder states)."""

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: ModelConfig, **kwargs):
        super().__init__(src_vocab_size, tgt_vocab_size, cfg, **kwargs)
        width = cfg.embedding_dim
        self.n_states = 0
        self.src_embedding, self.tgt_embedding = self._embeddings(width)
        self.encoder = keras.layers.Dense(width, activation="tanh", name="encoder")
        self.decoder = keras.layers.Dense(width, activation="tanh", name="decoder")
        self.output_proj = keras.layers.Dense(tgt_vocab_size, name="output_proj")

    @property
    def attends(self) -> bool:
        return False

    def encode(self, src, training=False):
        return self.encoder(self.src_embedding(src)), ops.not_equal(src, PAD_ID), []

    def attention_keys(self, enc_out):
        return None

    def decode(self, tgt_in, enc_out, enc_mask, states, training=False, enc_keys=None):
        x = self.tgt_embedding(tgt_in) + ops.mean(enc_out, axis=1, keepdims=True)
        return self.output_proj(self.decoder(x)), states, None

    def freeze_layers(self, part: str) -> list[str]:
        return layer_names(
            {
                "embeddings": [self.src_embedding, self.tgt_embedding],
                "encoder": [self.encoder],
                "decoder": [self.decoder, self.output_proj],
            }[part]
        )

    def forward_flops(self, batch: int, src_len: int, tgt_len: int) -> dict[str, int]:
        """encoder 2B*S*w*w, decoder 2B*T*w*w + 2B*T*w*V."""
        w = self.cfg.embedding_dim
        return {
            "encoder": 2 * batch * src_len * w * w,
            "decoder": 2 * batch * tgt_len * w * (w + self.tgt_vocab_size),
        }

    def step_parts(self) -> dict[str, tuple]:
        ids = tf.TensorSpec([None, None], tf.int32)
        seq = tf.TensorSpec([None, None, self.cfg.embedding_dim], self.compute_dtype)
        return {
            "encoder": (lambda src: self.encode(src, training=True), [ids]),
            "decoder": (self._decoder_loss, [ids, ids, seq]),
        }

    def _decoder_loss(self, tgt_in, tgt_out, enc_out):
        return masked_loss(tgt_out, self.decode(tgt_in, enc_out, None, [], training=True)[0])

    def run_step_parts(self, run, src, tgt_in, tgt_out) -> None:
        enc_out, _, _ = run("encoder", src)
        run("decoder", tgt_in, tgt_out, enc_out)

    @property
    def step_matmul_shape(self) -> tuple[int, int, int]:
        return self.cfg.embedding_dim, self.cfg.embedding_dim, 1

    @property
    def architecture(self) -> str:
        return f"bag of pieces, width {self.cfg.embedding_dim}"

    @classmethod
    def attention_caption(cls, cfg: ModelConfig) -> str:
        return "no attention"


def toy(seed: int = 0) -> BagOfPieces:
    keras.utils.set_random_seed(seed)
    model = BagOfPieces(SRC_VOCAB, TGT_VOCAB, ModelConfig(embedding_dim=WIDTH), name="toy")
    model.build()
    return model


def batch(b: int = 3, s: int = 6, t: int = 5, seed: int = 0):
    """((src, tgt_in), tgt_out) of random ids, the first sentence padded."""
    rng = np.random.default_rng(seed)
    src = rng.integers(4, SRC_VOCAB, (b, s)).astype("int32")
    src[0, s - 2 :] = PAD_ID
    tgt = rng.integers(4, TGT_VOCAB, (b, t + 1)).astype("int32")
    return (tf.constant(src), tf.constant(tgt[:, :-1])), tf.constant(tgt[:, 1:])


def test_a_new_network_is_counted_and_timed_by_its_own_parts():
    model = toy()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    b, s, t, w, v = 3, 6, 5, WIDTH, TGT_VOCAB
    encoder, decoder = 2 * b * s * w * w, 2 * b * t * w * w + 2 * b * t * w * v
    assert train_step_flops(model, b, s, t) == 3 * (encoder + decoder)
    one = batch(b, s, t)
    seconds = time_steps(model, [one], [one], rounds=1)
    assert set(seconds) == {"step", "encoder", "decoder", "forward", "forward_backward"}
    figures = part_figures(model, [one], seconds)
    assert list(figures) == ["encoder", "decoder", "backward", "optimizer_and_overhead"]
    assert figures["encoder"]["gflop"] == float(f"{encoder / 1e9:.4g}")
    assert figures["decoder"]["gflop"] == float(f"{decoder / 1e9:.4g}")
    assert figures["backward"]["gflop"] == float(f"{2 * (encoder + decoder) / 1e9:.4g}")


def test_a_new_network_is_frozen_by_its_declared_layers():
    model = toy()
    assert {part: [x.name for x in part_layers(model, part)] for part in FREEZE_PARTS} == {
        "embeddings": ["src_embedding", "tgt_embedding"],
        "encoder": ["encoder"],
        "decoder": ["decoder", "output_proj"],
    }
    freeze(model, ("embeddings", "encoder"))
    assert [x.name for x in model.layers if not x.trainable] == [
        "src_embedding",
        "tgt_embedding",
        "encoder",
    ]
    assert {w.path for w in model.trainable_weights} == {
        "toy/decoder/kernel",
        "toy/decoder/bias",
        "toy/output_proj/kernel",
        "toy/output_proj/bias",
    }


def test_a_new_network_is_remapped_along_its_vocabulary_axes():
    old, model = toy(seed=1), toy(seed=2)
    fresh = {name: model.get_layer(name).get_weights() for name in ("src_embedding", "output_proj")}
    maps = {"src": (np.array([4, 5]), np.array([9, 4])), "tgt": (np.array([7]), np.array([3]))}
    copy_weights(model, old, maps, "test")
    src_new, src_old = model.src_embedding.get_weights()[0], old.src_embedding.get_weights()[0]
    np.testing.assert_array_equal(src_new[[4, 5]], src_old[[9, 4]])
    np.testing.assert_array_equal(src_new[:4], fresh["src_embedding"][0][:4])  # not shared
    kernel, bias = model.output_proj.get_weights()
    np.testing.assert_array_equal(kernel[:, 7], old.output_proj.get_weights()[0][:, 3])
    assert bias[7] == old.output_proj.get_weights()[1][3]
    np.testing.assert_array_equal(kernel[:, :7], fresh["output_proj"][0][:, :7])
    np.testing.assert_array_equal(model.encoder.get_weights()[0], old.encoder.get_weights()[0])


RNN = ModelConfig(embedding_dim=8, units=16, dropout=0.0)
STACKED = ModelConfig(
    embedding_dim=8, units=16, dropout=0.0, encoder_layers=2, decoder_layers=3, tie_embeddings=True
)
PLAIN_GRU = ModelConfig(cell="gru", bidirectional=False, attention="none", units=16, dropout=0.0)
TRANSFORMER = ModelConfig(
    arch="transformer", embedding_dim=8, heads=2, ff_dim=16, dropout=0.0, attention_dropout=0.0
)


@pytest.mark.parametrize(
    "cfg, names",
    [
        (STACKED, ["encoder", "decoder_rnn", "attention", "output"]),
        (PLAIN_GRU, ["encoder", "decoder_rnn", "output"]),
        (TRANSFORMER, ["encoder", "decoder"]),
    ],
    ids=["stacked-tied-lstm", "gru-no-attention", "transformer"],
)
def test_the_parts_chain_into_the_whole_forward_pass(cfg, names):
    """Run in the network's order, the timed parts end in the training loss (no dropout
    here: the same loss as the whole forward pass), and each has its FLOP count."""
    model = build_model(cfg, SRC_VOCAB, TGT_VOCAB)
    parts = part_functions(model)
    assert list(parts) == [*names, "forward", "forward_backward"]
    (src, tgt_in), tgt_out = batch()
    results = {}

    def run(name, *args):
        results[name] = parts[name](*args)
        return results[name]

    model.run_step_parts(run, src, tgt_in, tgt_out)
    assert list(results) == names
    whole = float(parts["forward"](src, tgt_in, tgt_out))
    assert float(results[names[-1]]) == pytest.approx(whole, rel=1e-5)
    flops = model.forward_flops(*src.shape, tgt_in.shape[1])
    assert all(flops[name] > 0 for name in names)


@pytest.mark.parametrize(
    "cfg",
    [RNN, STACKED, TRANSFORMER, ModelConfig(embedding_dim=8, units=16, share_embeddings=True)],
    ids=["rnn", "stacked-tied", "transformer", "shared"],
)
def test_vocab_axes_index_one_slice_per_piece(cfg):
    tgt_vocab = SRC_VOCAB if cfg.share_embeddings else TGT_VOCAB
    model = build_model(cfg, SRC_VOCAB, tgt_vocab)
    expected = ["src_embedding", "output_proj"]
    if not cfg.share_embeddings:
        expected.insert(1, "tgt_embedding")
    assert list(model.vocab_axes) == expected
    sizes = {"src": SRC_VOCAB, "tgt": tgt_vocab}
    for name, (side, axis) in model.vocab_axes.items():
        for weight in model.get_layer(name).weights:
            assert weight.shape[axis] == sizes[side], weight.path


@pytest.mark.parametrize(
    "cfg, caption",
    [
        (RNN, "bahdanau attention"),
        (ModelConfig(attention="luong", luong_score="dot"), "luong attention, dot score"),
        (ModelConfig(attention="none"), "no attention (model.attention: none)"),
        (TRANSFORMER, "cross-attention (last decoder layer, mean over heads)"),
    ],
)
def test_attention_caption_describes_the_network_not_the_rnn_key(cfg, caption):
    assert NETWORKS[cfg.arch].attention_caption(cfg) == caption


def test_step_matmul_shape_and_architecture():
    rnn, transformer = build_model(RNN, 30, 40), build_model(TRANSFORMER, 30, 40)
    assert rnn.step_matmul_shape == (8, 16, 4)  # LSTM: 4 gate blocks
    assert transformer.step_matmul_shape == (8, 8, 2)  # width x 4 width as 2 x (width x 2w)
    assert rnn.architecture == (
        "bidirectional lstm encoder, units 16, embeddings 8, attention bahdanau"
    )
    assert transformer.architecture == (
        "transformer, 1 encoder / 1 decoder layers, width 8, 2 heads, feed-forward 16"
    )
