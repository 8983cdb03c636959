"""How to search, as one value (no TensorFlow import: a command can check it first)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SearchSettings:
    """How to search: beam_size 1 is greedy search.

    Args:
        beam_size: hypotheses kept per sentence.
        length_penalty: beam search ranks by log-probability / length**length_penalty.
        max_len_ratio: at most int(max_len_ratio * source pieces) + 10 target pieces.
    """

    beam_size: int = 1
    length_penalty: float = 1.0
    max_len_ratio: float = 2.0
