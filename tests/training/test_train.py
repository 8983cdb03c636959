"""train.py helpers that the pipeline smoke test does not pin down."""

from __future__ import annotations

import pytest

from nmtpipe.training.train import evenly_spaced


@pytest.mark.parametrize("count, total", [(200, 866), (3, 10), (2, 2), (7, 8), (1, 5), (5, 5)])
def test_dev_bleu_sources_spread_over_the_whole_split(count, total):
    chosen = evenly_spaced(count, total)
    assert len(chosen) == min(count, total) and chosen == sorted(set(chosen))
    assert chosen[0] == 0 and (count == 1 or chosen[-1] == total - 1)
    gaps = {b - a for a, b in zip(chosen[:-1], chosen[1:], strict=True)}
    assert max(gaps, default=1) - min(gaps, default=1) <= 1  # even: gaps differ by one at most


def test_dev_bleu_takes_every_source_of_a_small_split():
    assert evenly_spaced(200, 150) == list(range(150))
    assert evenly_spaced(0, 150) == []
