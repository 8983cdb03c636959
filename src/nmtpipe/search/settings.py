"""How to search, as one value (no TensorFlow import: a command can check it first)."""

from __future__ import annotations

from dataclasses import dataclass

EXTRA_PIECES = 10  # a target may be this many pieces longer than max_len_ratio * source


@dataclass(frozen=True)
class SearchSettings:
    """How to search, for either engine (`search.translator`); beam_size 1 is greedy search.

    The defaults here are the only ones: `nmtpipe translate` reads its option defaults
    from this class.

    Args:
        beam_size: hypotheses kept per sentence.
        length_penalty: beam search ranks by log-probability / length**length_penalty
            (the length counts the EOS).
        max_len_ratio: at most int(max_len_ratio * source pieces) + 10 target pieces, the
            source pieces counting its EOS (`max_target_len`).
    """

    beam_size: int = 1
    length_penalty: float = 1.0
    max_len_ratio: float = 2.0

    def max_target_len(self, src_len: int) -> int:
        """Most target pieces for a source of src_len pieces (EOS included); the rule
        `search.loop.max_target_len` computes in the graph."""
        return int(self.max_len_ratio * src_len) + EXTRA_PIECES
