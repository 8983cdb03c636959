"""params.yaml -> frozen, typed, validated config objects.

Every key is declared here once, with its meaning, allowed values and default.
Unknown keys, wrong types and out-of-range values are a ConfigError that names
the key (and suggests the nearest known key for a typo).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nmtpipe.errors import ConfigError
from nmtpipe.typedconfig import (  # noqa: F401  (to_dict, read_yaml: nmtpipe.config's API)
    is_hex,
    param,
    parse_section,
    read_yaml,
    to_dict,
    unknown_key,
)

# train.freeze: the layers of each part. Seq2Seq: the encoder is "encoder" when
# bidirectional, "encoder_rnn" otherwise; "attention" exists unless attention=none,
# "tie_projection" with tie_embeddings when units != embedding_dim. Transformer:
# "encoder"/"decoder" layers, then "encoder_norm"/"decoder_norm". Stacked layers 2..N
# carry a suffix: encoder_2, decoder_rnn_3 (FREEZE_STACKED).
FREEZE_LAYERS = {
    "embeddings": ("src_embedding", "tgt_embedding"),
    "encoder": ("encoder", "encoder_rnn", "encoder_norm"),
    "decoder": (
        *("decoder", "decoder_rnn", "decoder_norm", "attention", "attention_combine"),
        *("tie_projection", "output_proj"),
    ),
}
FREEZE_STACKED = ("encoder", "encoder_rnn", "decoder", "decoder_rnn")
FREEZE_PARTS = tuple(FREEZE_LAYERS)
PRETRAINED_VECTORS = ("src_embeddings", "tgt_embeddings")  # model.* keys read by training only
LR_SCHEDULES = ("constant", "warmup_inverse_sqrt", "warmup_cosine", "plateau")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies


@dataclass(frozen=True)
class DataConfig:
    """The download stage: where the parallel corpus comes from, and the language pair."""

    source: str = param("sample", "where the corpus comes from", choices=("sample", "url", "opus"))
    url: str = param(
        "",
        "source=url: http(s) URL or local path of a .zip (Anki/manythings), a TSV (.gz ok), "
        "or two line-aligned files written with a {lang} placeholder (corpus.{lang}.gz)",
    )
    sha256: str = param("", "expected sha256 of the downloaded file ('' = do not check)")
    columns: tuple[str, ...] = param(
        ("en", "es"),
        "language of each TSV column (a .zip is Anki/manythings: English, then the other)",
    )
    corpus: str = param("", "source=opus: OPUS corpus name, e.g. Tatoeba")
    release: str = param("latest", "source=opus: OPUS release")
    src_lang: str = param("en", "source language code (translate from)")
    tgt_lang: str = param("es", "target language code (translate into)")

    def __post_init__(self):
        if self.src_lang == self.tgt_lang:
            raise ConfigError(f"data.src_lang and data.tgt_lang are both {self.src_lang!r}")
        if self.source == "url" and not self.url:
            raise ConfigError("data.url is empty but data.source is 'url'")
        if self.source == "opus" and not self.corpus:
            raise ConfigError("data.corpus is empty but data.source is 'opus'")
        if self.sha256 and (len(self.sha256) != 64 or not is_hex(self.sha256)):
            raise ConfigError(f"data.sha256 must be 64 hex digits, got {self.sha256!r}")
        tsv = self.source == "url" and "{lang}" not in self.url and not self.url.endswith(".zip")
        if tsv and not {self.src_lang, self.tgt_lang} <= set(self.columns):
            raise ConfigError(
                f"data.columns {list(self.columns)} must name both data.src_lang "
                f"{self.src_lang!r} and data.tgt_lang {self.tgt_lang!r}"
            )


@dataclass(frozen=True)
class CleanConfig:
    """The clean stage: thresholds of the OpusFilter chain in pipeline/opusfilter.yaml."""

    min_words: int = param(1, "drop pairs with a side shorter than this many words", min=1)
    max_words: int = param(40, "drop pairs with a side longer than this many words", min=1)
    max_chars: int = param(300, "drop pairs with a side longer than this many characters", min=1)
    max_length_ratio: float = param(3.0, "drop pairs whose word-length ratio exceeds this", min=1.0)
    src_script: str = param("Latin", "Unicode script expected in the source (CharacterScoreFilter)")
    tgt_script: str = param("Latin", "Unicode script expected in the target")
    min_script_ratio: float = param(
        0.8, "minimum share of letters in the expected script", min=0.0, max=1.0
    )
    langid_threshold: float = param(
        0.0, "drop pairs whose language-ID confidence is not above this", min=0.0, max=1.0
    )
    langid_languages: tuple[str, ...] = param(
        (),
        "languages language ID may choose from ([] = the pair's two languages; every extra "
        "close language, e.g. pt or ca for es, costs real pairs on short sentences)",
    )
    langid_min_words: int = param(
        4, "sides shorter than this many words skip language ID (unreliable there)", min=1
    )
    n_jobs: int = param(1, "parallel OpusFilter processes", min=1)

    def __post_init__(self):
        if self.min_words > self.max_words:
            raise ConfigError(
                f"clean.min_words ({self.min_words}) is above clean.max_words ({self.max_words})"
            )


@dataclass(frozen=True)
class SplitConfig:
    """The split stage: a seeded train/dev/test split, grouped by source sentence."""

    dev_size: float = param(
        150, "dev pairs: a count (>= 1) or a fraction of the corpus (< 1)", min=0
    )
    test_size: float = param(
        200, "test pairs: a count (>= 1) or a fraction of the corpus (< 1)", min=0
    )
    seed: int = param(1234, "seed of the grouped random split")


@dataclass(frozen=True)
class TokenizerConfig:
    """The tokenize stage: SentencePiece models of both sides (<pad>=0 <unk>=1 <s>=2 </s>=3)."""

    model_type: str = param(
        "unigram", "SentencePiece algorithm", choices=("unigram", "bpe", "char", "word")
    )
    src_vocab_size: int = param(1000, "source vocabulary size (incl. 4 special pieces)", min=8)
    tgt_vocab_size: int = param(1000, "target vocabulary size (incl. 4 special pieces)", min=8)
    character_coverage: float = param(
        1.0, "share of characters covered by the vocabulary", min=0.9, max=1.0
    )
    shared: bool = param(False, "one SentencePiece model for both sides (equal vocab sizes)")

    def __post_init__(self):
        if self.shared and self.src_vocab_size != self.tgt_vocab_size:
            raise ConfigError(
                f"tokenizer.shared needs tokenizer.src_vocab_size ({self.src_vocab_size}) "
                f"= tokenizer.tgt_vocab_size ({self.tgt_vocab_size})"
            )


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
    batch_size: int = param(32, "sentence pairs per batch", min=1)
    learning_rate: float = param(0.002, "Adam learning rate (the peak of a schedule)", min=0.0)
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
        "float32",
        "float32 | mixed_bfloat16 | mixed_float16 (Keras mixed precision: float32 weights, "
        "softmax and loss; float16 with loss scaling). Falls back to float32 where the "
        "hardware lacks the type (bfloat16: a GPU or a CPU with avx512_bf16/amx_bf16; "
        "float16: a GPU); the model directory always computes in float32",
        choices=PRECISIONS,
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
        if self.lr_schedule == "plateau" and self.plateau_patience >= self.patience:
            raise ConfigError(
                f"train.plateau_patience ({self.plateau_patience}) must be below train.patience "
                f"({self.patience}): early stopping would end training before any reduction"
            )


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluate stage: decoding of the test split."""

    batch_size: int = param(64, "sentences decoded per batch", min=1)
    beam_size: int = param(5, "beam search width (1 = greedy search)", min=1)
    length_penalty: float = param(
        1.0, "beam search ranks by log-probability / length**length_penalty", min=0.0
    )
    max_len_ratio: float = param(
        2.0, "decode at most max_len_ratio * source pieces + 10 target pieces", min=0.1
    )


@dataclass(frozen=True)
class ExportConfig:
    """The export stage: the SavedModel for serving (greedy search inside the graph)."""

    max_len_ratio: float = param(
        2.0, "decode at most max_len_ratio * source pieces + 10 target pieces", min=0.1
    )


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self):
        if self.model.share_embeddings and not self.tokenizer.shared:
            raise ConfigError("model.share_embeddings needs tokenizer.shared: true")


def params_from_dict(raw: Any) -> Params:
    """Validate a whole params mapping (as read from params.yaml)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must be a mapping of sections")
    sections = {f.name: f for f in dataclasses.fields(Params)}
    hints = typing.get_type_hints(Params)
    parsed = {}
    for name, value in raw.items():
        if name not in sections:
            raise unknown_key(str(name), list(sections))
        parsed[name] = parse_section(hints[name], value, name)
    return Params(**parsed)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; a ConfigError names the file and the problem."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        return params_from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
