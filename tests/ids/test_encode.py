"""The encode stage: training pairs -> shuffled TFRecord shards that train streams."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from nmtpipe.config import TokenizerConfig, TrainConfig
from nmtpipe.fileio import write_lines
from nmtpipe.ids.batches import batches_per_epoch, make_train_dataset
from nmtpipe.ids.encode import encode_split
from nmtpipe.ids.records import write_shards
from nmtpipe.ids.tokenizer import load_tokenizer, train_tokenizers
from nmtpipe.model.ids import BOS_ID, EOS_ID
from tests.conftest import sample_pairs


def test_encode_writes_every_pair_once_within_the_limits(tmp_path):
    pairs = sample_pairs(600)
    split = tmp_path / "split"
    split.mkdir()
    write_lines(split / "train.src", [s for s, _ in pairs])
    write_lines(split / "train.tgt", [t for _, t in pairs])
    train_tokenizers(
        split, TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200), tmp_path / "tok"
    )
    cfg = TrainConfig(max_src_len=12, max_tgt_len=12, seed=5)
    stats = encode_split(split, tmp_path / "tok", cfg, tmp_path / "a")
    sp_src, sp_tgt = (load_tokenizer(tmp_path / f"tok/{side}.model") for side in ("src", "tgt"))
    expected = Counter(
        (tuple(sp_src.encode(s) + [EOS_ID]), tuple(sp_tgt.encode(t)))
        for s, t in pairs
        if len(sp_src.encode(s)) + 1 <= 12 and len(sp_tgt.encode(t)) + 1 <= 12
    )
    assert stats["pairs"] == sum(expected.values()) and stats["too_long"] == 600 - stats["pairs"]
    assert stats["too_long"] > 0
    assert stats == json.loads((tmp_path / "a/stats.json").read_text())
    assert stats["params"] == {"max_src_len": 12, "max_tgt_len": 12, "seed": 5}
    ds, steps = make_train_dataset(tmp_path / "a", 7, cfg.seed, range(1))
    found = Counter()
    for (src, tgt_in), tgt_out in ds:
        for s, t_in, t_out in zip(src.numpy(), tgt_in.numpy(), tgt_out.numpy(), strict=True):
            tgt = tuple(t_out[t_out > 0][:-1])
            assert t_in[0] == BOS_ID and tuple(t_in[1 : len(tgt) + 1]) == tgt
            found[(tuple(s[s > 0]), tgt)] += 1
    assert found == expected  # every kept pair exactly once per epoch
    assert steps == batches_per_epoch(dict(stats["lengths"]), 7)
    encode_split(split, tmp_path / "tok", cfg, tmp_path / "b")  # same inputs, same bytes
    for path in sorted((tmp_path / "a").iterdir()):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_shards_are_shuffled_samples_of_a_sorted_corpus(tmp_path):
    """A corpus sorted by length (like Tatoeba's file) leaves encode mixed: each shard
    holds every length, and an epoch's first batches are not the shortest pairs."""
    rng = np.random.default_rng(0)
    pairs = [
        (
            [int(x) for x in rng.integers(4, 50, n)] + [EOS_ID],
            [int(x) for x in rng.integers(4, 50, n)],
        )
        for n in rng.integers(1, 40, 3000)
    ]
    pairs.sort(key=lambda pair: len(pair[0]))
    stats = write_shards(iter(pairs), tmp_path, seed=1, total=len(pairs), shard_pairs=1000)
    assert stats["shards"] == 3 and stats["pairs"] == 3000
    ds, steps = make_train_dataset(tmp_path, 32, seed=1, epochs=range(2))
    first = [src.shape[1] for (src, _), _ in ds.take(10)]
    assert max(first) > 20  # the first batches of the epoch hold long pairs too
    batches = [tuple(out.numpy().ravel()) for _, out in ds]
    assert len(batches) == 2 * steps
    assert batches[:steps] != batches[steps:]  # each epoch its own order


def test_train_refuses_shards_encoded_with_other_params(tmp_path):
    """Shards of other train.seed / length limits (a stale data/encoded run by hand) are a
    one-line DataError naming the key, not a silent mix."""
    from nmtpipe.config import Params
    from nmtpipe.errors import DataError
    from nmtpipe.training.train import _datasets

    split = tmp_path / "split"
    split.mkdir()
    pairs = sample_pairs(300)
    for name in ("train", "dev"):
        write_lines(split / f"{name}.src", [s for s, _ in pairs])
        write_lines(split / f"{name}.tgt", [t for _, t in pairs])
    train_tokenizers(
        split, TokenizerConfig(src_vocab_size=150, tgt_vocab_size=150), tmp_path / "tok"
    )
    encode_split(split, tmp_path / "tok", TrainConfig(seed=5), tmp_path / "enc")
    _datasets(split, tmp_path / "enc", tmp_path / "tok", Params(train=TrainConfig(seed=5)))
    with pytest.raises(
        DataError, match=r"enc: encoded with train.seed 5, params say 6 \(run encode\)"
    ):
        _datasets(split, tmp_path / "enc", tmp_path / "tok", Params(train=TrainConfig(seed=6)))
