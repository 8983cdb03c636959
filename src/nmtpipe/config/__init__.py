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

from nmtpipe.config.train import (  # noqa: F401  (nmtpipe.config's API)
    FREEZE_PARTS,
    LR_SCHEDULES,
    PRECISIONS,
    PRETRAINED_VECTORS,
    ModelConfig,
    TrainConfig,
)
from nmtpipe.errors import ConfigError
from nmtpipe.typedconfig import (  # noqa: F401  (to_dict, read_yaml: nmtpipe.config's API)
    is_hex,
    param,
    parse_section,
    read_yaml,
    to_dict,
    unknown_key,
)


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
    n_jobs: int | str = param(
        "auto",
        "parallel OpusFilter processes, at most NMTPIPE_THREADS when set (auto = the cores "
        "this process may use)",
        choices=("auto",),
        min=1,
    )

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
    max_sentences: int = param(
        1_000_000,
        "SentencePiece trains on at most this many sentences per model, a seeded sample of "
        "the training split (all of them when it has fewer)",
        min=1,
    )

    def __post_init__(self):
        if self.shared and self.src_vocab_size != self.tgt_vocab_size:
            raise ConfigError(
                f"tokenizer.shared needs tokenizer.src_vocab_size ({self.src_vocab_size}) "
                f"= tokenizer.tgt_vocab_size ({self.tgt_vocab_size})"
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
    """The export stage: the SavedModel for serving and the Transformer's CTranslate2 model."""

    max_len_ratio: float = param(
        2.0, "decode at most max_len_ratio * source pieces + 10 target pieces", min=0.1
    )
    quantization: str = param(
        "int8",
        "weights of the CTranslate2 model (arch=transformer; CTranslate2 has no RNN)",
        choices=("int8", "int8_float32", "int16", "float32"),
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
