import numpy as np
import pytest

from nmtpipe.dataset import batches_per_epoch, make_dataset


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batches_per_epoch_counts_what_make_dataset_yields(batch_size):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, (200, 2))  # every bucket, boundaries included
    lengths[:4] = [[7, 7], [8, 6], [3, 11], [96, 1]]
    src = [list(rng.integers(4, 30, s)) for s, _ in lengths]
    tgt = [list(rng.integers(4, 30, t)) for _, t in lengths]
    data = make_dataset(src, tgt, batch_size, shuffle_seed=1)
    counts = [sum(1 for _ in data) for _ in range(2)]  # reshuffled: the same count each epoch
    assert counts == [batches_per_epoch(src, tgt, batch_size)] * 2 == [len(data)] * 2
