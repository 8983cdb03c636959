"""What both encoder-decoders share: the model base class and the tied output layer."""

from __future__ import annotations

import keras
from keras import ops

from nmtpipe.config import ModelConfig, parse_section
from nmtpipe.errors import ModelError
from nmtpipe.model.losses import TokenRate, token_stats


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


def layer_names(layers) -> list[str]:
    """The names of `layers` in order, each once, leaving out None (a layer the config
    leaves out; a shared embedding listed under both sides)."""
    return list(dict.fromkeys(layer.name for layer in layers if layer is not None))


class EncoderDecoder(keras.Model):
    """Base of the encoder-decoders: `encode` once, then `decode` with carried states.

    Subclasses implement `encode(src) -> (enc_out, enc_mask, states)`,
    `attention_keys(enc_out)` and `decode(tgt_in, enc_out, enc_mask, states,
    training, enc_keys) -> (logits, states, attention weights or None)`; the searches
    (`nmtpipe.search`) and teacher forcing (`call`) use nothing else. Training uses the
    model's own loss (`compute_loss`): compile it with an optimizer and label smoothing.

    Each network also declares the facts other packages ask of it, so that none of
    them branches on `model.arch`: its freezable layers and vocabulary-sized weights
    (`freeze_layers`, `vocab_axes`: training.transfer), its matmul FLOPs and timed
    parts (`forward_flops`, `step_parts`, `run_step_parts`, `step_matmul_shape`,
    `architecture`: bench), what its attention weights are (`attention_caption`: the
    report). Adding an architecture touches only `nmtpipe.model` and the config.

    Args:
        src_vocab_size, tgt_vocab_size: sizes of the SentencePiece vocabularies.
        cfg: the network's hyperparameters (`config.ModelConfig`: each key's meaning
            is declared there, once).
    """

    # The layout of the saved weights: bumped when a change makes earlier model files
    # unloadable (config.json records it; modeldir refuses another in one line).
    WEIGHTS_LAYOUT = 1

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, cfg: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.src_vocab_size, self.tgt_vocab_size, self.cfg = src_vocab_size, tgt_vocab_size, cfg
        if cfg.share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ModelError(
                f"model.share_embeddings needs one vocabulary, got {src_vocab_size} source "
                f"and {tgt_vocab_size} target pieces (tokenizer.shared)"
            )
        self.label_smoothing = 0.0
        self.cross_entropy = TokenRate("nll", name="cross_entropy")
        self.accuracy = TokenRate("hits", name="masked_accuracy")

    def compile(self, optimizer, label_smoothing: float = 0.0, **kwargs):
        """Keras' compile with the model's own loss and metrics (compute_loss):
        masked token cross-entropy smoothed by `label_smoothing`, the plain
        cross_entropy and masked_accuracy; `loss` and `metrics` are not taken."""
        if {"loss", "metrics"} & set(kwargs):
            raise TypeError("EncoderDecoder.compile takes no loss or metrics: it has its own")
        self.label_smoothing = label_smoothing
        super().compile(optimizer=optimizer, **kwargs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The smoothed token loss of logits y_pred against target ids y; one softmax pass
        (losses.token_stats) also updates the cross_entropy and accuracy metrics."""
        stats = token_stats(y, y_pred, self.label_smoothing)
        self.cross_entropy.update_state(stats)
        self.accuracy.update_state(stats)
        return stats["loss"]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """The metrics' results: compute_loss has already updated them."""
        return self.get_metrics_result()

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

    # --- facts of the network, declared by each subclass --------------------------------

    def freeze_layers(self, part: str) -> list[str]:
        """Names of the layers of train.freeze part `part` (one of config.FREEZE_PARTS:
        embeddings, encoder, decoder) in this model as built, stacked layers included."""
        raise NotImplementedError

    @property
    def vocab_axes(self) -> dict[str, tuple[str, int]]:
        """The layers whose weights hold one slice per vocabulary piece, which
        train.init_from maps between vocabularies by piece string: layer name -> (side
        "src" or "tgt", the axis of each of its weights that indexes the pieces).

        Here the embeddings (one row per piece; with share_embeddings one layer,
        src_embedding) and the last axis of output_proj (kernel columns and bias of a
        Dense; the bias of a TiedOutput, whose kernel is tgt_embedding).
        """
        axes = {"src_embedding": ("src", 0)}
        if not self.cfg.share_embeddings:
            axes["tgt_embedding"] = ("tgt", 0)
        return {**axes, "output_proj": ("tgt", -1)}

    def forward_flops(self, batch: int, src_len: int, tgt_len: int) -> dict[str, int]:
        """Matmul FLOPs of the training forward pass per part, for one batch of `batch`
        sentences padded to src_len / tgt_len positions (a multiply-add is 2 FLOPs).
        The parts that `step_parts` times carry the same names."""
        raise NotImplementedError

    def step_parts(self) -> dict[str, tuple]:
        """The parts of the training forward pass (dropout on) that `nmtpipe bench` times
        one by one: name -> (function, its input signature as a list of
        tf.TensorSpec); `run_step_parts` calls them in order."""
        raise NotImplementedError

    def run_step_parts(self, run, src, tgt_in, tgt_out) -> None:
        """One forward pass through the parts of `step_parts`, each called as
        `run(name, *args)`, which returns the part's result (bench times each call)."""
        raise NotImplementedError

    @property
    def step_matmul_shape(self) -> tuple[int, int, int]:
        """(input width, units, gate blocks) of the matmul this network's step is made of,
        which bench times in a sequential loop beside the machine's roof: batch x input
        by input x gates*units plus batch x units by units x gates*units."""
        raise NotImplementedError

    @property
    def architecture(self) -> str:
        """A one-line description of the network for bench's figures."""
        raise NotImplementedError

    @classmethod
    def attention_caption(cls, cfg: ModelConfig) -> str:
        """What the attention weights `decode` returns are, for the report's heat maps
        (a class method: the report has the saved config, not the model)."""
        raise NotImplementedError

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
