import numpy as np
import pytest

from nmtpipe.dataset import batches_per_epoch, example_lengths, make_dataset
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
