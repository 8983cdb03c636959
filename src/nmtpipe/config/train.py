"""The train stage's sections of params.yaml: the network (`model`) and its training (`train`)."""

from __future__ import annotations

from dataclasses import dataclass

from nmtpipe.errors import ConfigError
from nmtpipe.typedconfig import param, to_dict

# train.freeze: the parts a network can freeze. Their layers are the network's own fact
# (`freeze_layers` of each class in nmtpipe.model).
FREEZE_PARTS = ("embeddings", "encoder", "decoder")
PRETRAINED_VECTORS = ("src_embeddings", "tgt_embeddings")  # model.* keys read by training only
LR_SCHEDULES = ("constant", "warmup_inverse_sqrt", "warmup_cosine", "plateau")
DISTRIBUTE = ("auto", "none", "mirrored", "multi_worker")  # tf.distribute strategies
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")  # auto or a Keras policy


@dataclass(frozen=True)
class ModelConfig:
    """The train stage: the encoder-decoder network (and pretrained vectors to start from)."""

    arch: str = param(
        "rnn",
        "network: rnn (recurrent encoder-decoder, keys cell to luong_score and residual) | "
        "transformer (pre-norm self-attention, keys heads to attention_dropout; its width is "
        "embedding_dim)",
        choices=("rnn", "transformer"),
    )
    cell: str = param("lstm", "recurrent cell of encoder and decoder", choices=("lstm", "gru"))
    embedding_dim: int = param(
        128, "size of the subword embeddings (arch=transformer: the model width)", min=1
    )
    units: int = param(256, "decoder state size (the encoder matches it)", min=2)
    bidirectional: bool = param(True, "bidirectional encoder (units/2 per direction)")
    attention: str = param(
        "bahdanau", "attention over encoder outputs", choices=("none", "bahdanau", "luong")
    )
    luong_score: str = param(
        "general", "attention=luong: score function", choices=("dot", "general")
    )
    dropout: float = param(
        0.2,
        "dropout on embeddings, between stacked recurrent layers and on the attentional state",
        min=0.0,
        max=0.9,
    )
    encoder_layers: int = param(
        1,
        "stacked encoder layers; with bidirectional every layer is bidirectional "
        "(units/2 per direction)",
        min=1,
    )
    decoder_layers: int = param(
        1,
        "stacked decoder layers; layer i starts from encoder layer i's final state when "
        "encoder_layers is the same, else every layer from the top encoder layer's",
        min=1,
    )
    residual: bool = param(
        True, "stacked layers 2..N add their input to their output (residual connections)"
    )
    heads: int = param(4, "arch=transformer: attention heads (divide embedding_dim)", min=1)
    ff_dim: int = param(1024, "arch=transformer: width of the feed-forward sublayers", min=1)
    attention_dropout: float = param(
        0.1, "arch=transformer: dropout on the attention weights", min=0.0, max=0.9
    )
    ff_dropout: float = param(
        0.0,
        "arch=transformer: dropout between the two layers of each feed-forward sublayer "
        "(0 = none, as in the reference Transformer)",
        min=0.0,
        max=0.9,
    )
    tie_embeddings: bool = param(
        False,
        "the output softmax uses the target embedding matrix (transposed, own bias); when "
        "units differs from embedding_dim a linear units -> embedding_dim projection comes first",
    )
    share_embeddings: bool = param(False, "one embedding matrix for both sides (tokenizer.shared)")
    src_embeddings: str = param(
        "",
        "word2vec text file (.gz ok) of vectors for source pieces: the rows of the pieces it "
        "lists start from them, after train.init_from ('' = none; training only, DVC tracks "
        "the path, config.json records the file's sha256)",
    )
    tgt_embeddings: str = param(
        "", "word2vec text file (.gz ok) of vectors for target pieces, like src_embeddings"
    )

    def __post_init__(self):
        if self.arch == "transformer" and self.embedding_dim % self.heads:
            raise ConfigError(
                f"model.embedding_dim ({self.embedding_dim}) must be a multiple of model.heads "
                f"({self.heads}) with model.arch transformer"
            )
        if self.bidirectional and self.units % 2:
            raise ConfigError(
                f"model.units must be even with model.bidirectional, got {self.units}"
            )
        if self.share_embeddings and self.tgt_embeddings:
            raise ConfigError("model.tgt_embeddings must be empty with model.share_embeddings")

    def network(self) -> dict:
        """The keys that shape the network (not the files its training starts from)."""
        return {k: v for k, v in to_dict(self).items() if k not in PRETRAINED_VECTORS}


@dataclass(frozen=True)
class TrainConfig:
    """The train stage: optimisation, stopping, length limits, transfer."""

    epochs: int = param(40, "maximum number of epochs", min=1)
    batch_size: int = param(
        32, "sentence pairs per batch (with max_tokens: at most this many pairs)", min=1
    )
    max_tokens: int = param(
        0,
        "token-budget batches: padded source + target tokens per training batch, at most "
        "(each length bucket gets as many pairs as fit, up to batch_size); 0 = batch_size "
        "pairs per batch whatever their length",
        min=0,
    )
    learning_rate: float = param(0.002, "Adam learning rate (the peak of a schedule)", min=0.0)
    adam_beta2: float = param(
        0.999, "Adam's decay of the squared-gradient average (Transformer recipes: 0.98)", min=0.0
    )
    adam_epsilon: float = param(
        1e-7, "Adam's epsilon (Keras' default 1e-7; Transformer recipes: 1e-9)", min=0.0
    )
    lr_schedule: str = param(
        "constant",
        "learning-rate schedule: constant | warmup_inverse_sqrt (linear warm-up over "
        "warmup_steps, then * sqrt(warmup_steps / step)) | warmup_cosine (warm-up, then cosine "
        "decay to 0 at epochs x batches per epoch) | plateau (times plateau_factor when dev "
        "loss has not improved for plateau_patience epochs)",
        choices=LR_SCHEDULES,
    )
    warmup_steps: int = param(
        500, "lr_schedule warmup_*: updates of linear warm-up from 0 (ignored otherwise)", min=0
    )
    plateau_factor: float = param(
        0.5, "lr_schedule plateau: factor applied to the learning rate, in (0, 1)", min=0.0
    )
    plateau_patience: int = param(
        1,
        "lr_schedule plateau: epochs without dev-loss improvement before a reduction",
        min=0,
    )
    label_smoothing: float = param(
        0.0,
        "label smoothing of the training loss, in [0, 1) (the loss curves include it; "
        "the cross_entropy curves are the plain per-token cross-entropy)",
        min=0.0,
    )
    clipnorm: float = param(1.0, "gradient norm clipping (0 = off)", min=0.0)
    patience: int = param(5, "early stopping: epochs without dev-loss improvement", min=1)
    max_src_len: int = param(64, "training pairs with more source pieces are skipped", min=1)
    max_tgt_len: int = param(64, "training pairs with more target pieces are skipped", min=1)
    seed: int = param(42, "seed of initialisation, dropout and shuffling")
    dev_bleu_sentences: int = param(
        200,
        "dev BLEU curve: greedy-decode this many distinct dev sources, spread evenly over "
        "the dev split, per epoch (0 = off)",
        min=0,
    )
    init_from: str = param(
        "",
        "earlier model directory (data/model layout) to start from: same language pair and "
        "model params; pieces in both vocabularies keep their rows ('' = from scratch; not "
        "data/model itself, which DVC deletes first; DVC tracks the path, config.json "
        "records the files' sha256)",
    )
    average_last: int = param(
        0,
        "the saved model's weights are the mean of those at the end of the last N epochs up "
        "to the best one (early stopping's); 0 or 1 = the best epoch's alone",
        min=0,
    )
    precision: str = param(
        "auto",
        "auto (mixed_bfloat16 where the hardware computes it: a CPU with avx512_bf16 or "
        "amx_bf16, a GPU of compute capability 8.0 or more; float32 elsewhere) | float32 | "
        "mixed_bfloat16 | mixed_float16 (Keras mixed precision: float32 weights, softmax, "
        "logits and loss; float16 with loss scaling). A type the hardware lacks falls back "
        "to float32; config.json records the precision used; the model directory always "
        "computes in float32",
        choices=PRECISIONS,
    )
    distribute: str = param(
        "auto",
        "tf.distribute strategy: none (one device) | mirrored (every GPU of this machine, "
        "else its logical CPUs) | multi_worker (machines listed in TF_CONFIG) | auto "
        "(mirrored when more than one GPU is visible, else none)",
        choices=DISTRIBUTE,
    )
    freeze: tuple[str, ...] = param(
        (),
        "parts kept fixed: embeddings (source and target embeddings; with tie_embeddings the "
        "target one is also the output kernel), encoder (encoder RNNs), decoder (decoder RNNs, "
        "attention, output projection)",
        choices=FREEZE_PARTS,
    )

    def __post_init__(self):
        for num, part in enumerate(self.freeze):
            if part not in FREEZE_PARTS:
                raise ConfigError(
                    f"params key 'train.freeze' entries must be one of {list(FREEZE_PARTS)}, "
                    f"got {part!r}"
                )
            if part in self.freeze[:num]:
                raise ConfigError(f"train.freeze lists {part!r} twice")
        if set(self.freeze) == set(FREEZE_PARTS):
            raise ConfigError("train.freeze lists every part: nothing would be trained")
        self._check_schedule()

    def _check_schedule(self):
        """Ranges and cross-field checks of label smoothing and the learning-rate schedule."""
        if self.label_smoothing >= 1:
            raise ConfigError(f"train.label_smoothing must be below 1, got {self.label_smoothing}")
        if not 0 < self.plateau_factor < 1:
            raise ConfigError(
                f"train.plateau_factor must be between 0 and 1 (exclusive), "
                f"got {self.plateau_factor}"
            )
        if self.lr_schedule == "warmup_inverse_sqrt" and self.warmup_steps < 1:
            raise ConfigError("train.lr_schedule warmup_inverse_sqrt needs train.warmup_steps >= 1")
        longest = 2 * max(self.max_src_len, self.max_tgt_len + 1)
        if self.max_tokens and self.max_tokens < longest:
            raise ConfigError(
                f"train.max_tokens ({self.max_tokens}) must hold one pair of the longest "
                f"length allowed: at least 2 x max(max_src_len, max_tgt_len + 1) = {longest}"
            )
        if self.adam_beta2 >= 1:
            raise ConfigError(f"train.adam_beta2 must be below 1, got {self.adam_beta2}")
        if self.lr_schedule == "plateau" and self.plateau_patience >= self.patience:
            raise ConfigError(
                f"train.plateau_patience ({self.plateau_patience}) must be below train.patience "
                f"({self.patience}): early stopping would end training before any reduction"
            )
