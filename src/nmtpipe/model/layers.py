"""What both encoder-decoders share: the model base class and the tied output layer."""

from __future__ import annotations

import keras
from keras import ops

from nmtpipe.config import ModelConfig, parse_section
from nmtpipe.errors import ModelError


@keras.saving.register_keras_serializable(package="nmtpipe")
class TiedOutput(keras.layers.Layer):
    """Output projection whose kernel is the target embedding matrix: logits = x E^T + b.

    The layer owns only its bias; the embedding matrix is passed in at every call,
    so the variable is shared, not copied (Press & Wolf, 2017).

    Args:
        vocab_size: number of target pieces (rows of the embedding matrix).
    """

    def __init__(self, vocab_size: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size

    def build(self, x_shape, embeddings_shape=None):
        self.bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="bias")

    def call(self, x, embeddings):
        """x: batch x len x dim, embeddings: vocab x dim -> logits batch x len x vocab."""
        return ops.matmul(x, ops.transpose(embeddings)) + self.bias

    def compute_output_shape(self, x_shape, embeddings_shape=None):
        return (*x_shape[:-1], self.vocab_size)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size}


class EncoderDecoder(keras.Model):
    """Base of the encoder-decoders: `encode` once, then `decode` with carried states.

    Subclasses implement `encode(src) -> (enc_out, enc_mask, states)`,
    `attention_keys(enc_out)` and `decode(tgt_in, enc_out, enc_mask, states,
    training, enc_keys) -> (logits, states, attention weights or None)`; the searches
    (`nmtpipe.search`) and teacher forcing (`call`) use nothing else.

    Args:
        src_vocab_size, tgt_vocab_size: sizes of the SentencePiece vocabularies.
        cfg: the network's hyperparameters (`config.ModelConfig`: each key's meaning
            is declared there, once).
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.src_vocab_size, self.tgt_vocab_size, self.cfg = src_vocab_size, tgt_vocab_size, cfg
        if cfg.share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ModelError(
                f"model.share_embeddings needs one vocabulary, got {src_vocab_size} source "
                f"and {tgt_vocab_size} target pieces (tokenizer.shared)"
            )

    def _embeddings(self, dim: int) -> tuple:
        """(src_embedding, tgt_embedding): with `share_embeddings`, one layer (one matrix)
        under both names, saved once, as src_embedding (Press & Wolf, 2017)."""
        src = keras.layers.Embedding(self.src_vocab_size, dim, name="src_embedding")
        if self.cfg.share_embeddings:
            return src, src
        return src, keras.layers.Embedding(self.tgt_vocab_size, dim, name="tgt_embedding")

    @property
    def attends(self) -> bool:
        """Whether `decode` returns attention weights over the source."""
        return True

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
            "cfg": self.cfg.network(),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "cfg": parse_section(ModelConfig, config["cfg"], "model")})
