import numpy as np
import pytest

from nmtpipe.ids.batches import batches_per_epoch, example_lengths, make_dataset
from tests.conftest import train_dataset


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batches_per_epoch_counts_what_make_dataset_yields(batch_size, tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, (200, 2))  # every bucket, boundaries included
    lengths[:4] = [[7, 7], [8, 6], [3, 11], [96, 1]]
    src = [list(rng.integers(4, 30, s)) for s, _ in lengths]
    tgt = [list(rng.integers(4, 30, t)) for _, t in lengths]
    expected = batches_per_epoch(example_lengths(src, tgt), batch_size)
    data = make_dataset(src, tgt, batch_size)
    assert sum(1 for _ in data) == expected == len(data)
    train, steps = train_dataset(src, tgt, batch_size, 1, range(2), tmp_path / "enc")
    assert steps == expected  # each epoch's own shuffle gives the same count
    assert sum(1 for _ in train) == 2 * expected == len(train)


@pytest.mark.parametrize("max_tokens", [200, 1000])
def test_token_batches_stay_within_max_tokens_and_cover_every_pair_once(max_tokens, tmp_path):
    """train.max_tokens: no batch holds more padded source + target tokens than the budget,
    every pair comes exactly once per epoch, and the count is batches_per_epoch's."""
    from collections import Counter

    from nmtpipe.config import TrainConfig
    from nmtpipe.ids.batches import bucket_batch_sizes, train_batch_sizes

    cfg = TrainConfig(batch_size=64, max_tokens=max_tokens, max_src_len=99, max_tgt_len=98)
    sizes = train_batch_sizes(cfg)
    assert sizes == bucket_batch_sizes(64, max_tokens, 99)
    assert max(sizes) <= 64 and min(sizes) >= 1 and len(set(sizes)) > 1
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 99, (400, 2))
    lengths[:3] = [[98, 98], [1, 1], [5, 97]]  # the longest allowed, the shortest
    src = [[int(x) for x in rng.integers(4, 30, s)] for s, _ in lengths]
    tgt = [[int(x) for x in rng.integers(4, 30, t)] for _, t in lengths]
    ds, steps = train_dataset(src, tgt, sizes, 3, range(1), tmp_path / "enc")
    seen, batches = Counter(), 0
    for (src_b, tgt_in), tgt_out in ds:
        batches += 1
        assert src_b.shape[0] * (src_b.shape[1] + tgt_in.shape[1]) <= max_tokens
        for s, t in zip(src_b.numpy(), tgt_out.numpy(), strict=True):
            seen[(tuple(s[s > 0]), tuple(t[t > 0][:-1]))] += 1
    assert seen == Counter((tuple(s), tuple(t)) for s, t in zip(src, tgt, strict=True))
    assert batches == steps == batches_per_epoch(example_lengths(src, tgt), sizes)


def test_without_max_tokens_every_bucket_batches_batch_size_pairs():
    from nmtpipe.ids.batches import BUCKET_BOUNDARIES, bucket_batch_sizes

    assert bucket_batch_sizes(32) == [32] * (len(BUCKET_BOUNDARIES) + 1)
    assert bucket_batch_sizes(256, 3072, 65)[:3] == [256, 256, 216]  # 3072 // (2 * 7) = 219
