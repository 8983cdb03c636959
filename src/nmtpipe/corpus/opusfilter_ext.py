"""OpusFilter extensions loaded from pipeline/opusfilter.yaml through its `module:` key."""

from __future__ import annotations

import unicodedata

from opusfilter import ConfigurationError, PreprocessorABC
from opusfilter.lid import LangidFilter

FORMS = ("NFC", "NFKC", "NFD", "NFKD")
INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u00ad"))  # BOM, zero-width space, soft hyphen


class UnicodeNormalizer(PreprocessorABC):
    """Unicode normalisation (NFC by default); control characters become spaces.

    OpusFilter has no Unicode normaliser of its own. Run WhitespaceNormalizer
    after this one to collapse the spaces it leaves.
    """

    def __init__(self, form="NFC", **kwargs):
        if form not in FORMS:
            raise ConfigurationError(
                f"UnicodeNormalizer: form must be one of {FORMS}, got {form!r}"
            )
        self.form = form
        super().__init__(**kwargs)

    def normalize(self, segment: str) -> str:
        segment = unicodedata.normalize(self.form, segment).translate(INVISIBLE)
        return "".join(" " if unicodedata.category(c) == "Cc" else c for c in segment)

    def process(self, pairs):
        for segments in pairs:
            yield [self.normalize(segment) for segment in segments]


class ShortSkipLangidFilter(LangidFilter):
    """LangidFilter that trusts sides shorter than `min_words` words.

    Language identification on two or three words is little better than a
    guess, and rejecting short pairs on it throws away good data.
    """

    def __init__(self, min_words=4, **kwargs):
        if not isinstance(min_words, int) or min_words < 1:
            raise ConfigurationError(f"ShortSkipLangidFilter: bad min_words {min_words!r}")
        self.min_words = min_words
        super().__init__(**kwargs)

    def confidence(self, sentence: str, lan: str) -> float:
        if len(sentence.split()) < self.min_words:
            return 1.0
        return super().confidence(sentence, lan)
