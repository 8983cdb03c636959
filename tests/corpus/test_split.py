import random
from collections import Counter

import pytest

from nmtpipe.config import SplitConfig
from nmtpipe.corpus.split import group_key, lowest_groups, split_corpus
from nmtpipe.errors import ConfigError
from tests.conftest import sample_pairs


def write_clean(clean, pairs):
    clean.mkdir(exist_ok=True)
    (clean / "src.txt").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (clean / "tgt.txt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")


def read_split(out, name):
    return (out / f"{name}.src").read_text(encoding="utf-8").splitlines()


def test_group_key_ignores_case_punctuation_and_spacing():
    assert group_key("Where is the station?") == group_key("where is  the station")
    assert (
        group_key("It's late.") == group_key("its late") or group_key("It's late.") == "it s late"
    )


def test_split_sizes_grouping_and_determinism(tmp_path):
    pairs = sample_pairs(600)
    variants = [
        ("Where is the station?", "¿Dónde está la estación?"),
        ("where is the station", "¿Dónde queda la estación?"),
        ("Where is the station!", "¿Dónde está la estación de tren?"),
    ]
    write_clean(tmp_path / "clean", pairs + variants)
    sizes = split_corpus(
        tmp_path / "clean", SplitConfig(dev_size=50, test_size=0.1), tmp_path / "a"
    )
    assert sum(sizes.values()) == 603
    assert 60 <= sizes["test"] <= 63 and 50 <= sizes["dev"] <= 53
    splits = {name: read_split(tmp_path / "a", name) for name in ("train", "dev", "test")}
    keys = {name: {group_key(s) for s in lines} for name, lines in splits.items()}
    assert not keys["train"] & keys["dev"] and not keys["train"] & keys["test"]
    assert not keys["dev"] & keys["test"]
    holding = [name for name in splits if group_key("Where is the station?") in keys[name]]
    assert len(holding) == 1
    split_corpus(tmp_path / "clean", SplitConfig(dev_size=50, test_size=0.1), tmp_path / "b")
    for name in ("train.src", "train.tgt", "dev.tgt", "test.src", "test.tgt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    split_corpus(
        tmp_path / "clean", SplitConfig(dev_size=50, test_size=0.1, seed=7), tmp_path / "c"
    )
    assert read_split(tmp_path / "c", "test") != splits["test"]


def test_split_larger_than_corpus_is_refused(tmp_path):
    write_clean(tmp_path / "clean", sample_pairs(20))
    with pytest.raises(ConfigError, match="leave no training data out of 20 pairs"):
        split_corpus(tmp_path / "clean", SplitConfig(dev_size=10, test_size=10), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lowest_groups_counts_equal_a_full_sort():
    """The bounded pass keeps exactly the k lowest ranks, with every occurrence counted,
    as sorting all ranks would (ranks repeat: one per pair of a group)."""
    rng = random.Random(3)
    ranks = [rng.randrange(500).to_bytes(2) for _ in range(5000)]
    expected = Counter(ranks)
    lowest = sorted(expected)[:40]
    assert lowest_groups(iter(ranks), 40) == {rank: expected[rank] for rank in lowest}


def test_split_streams_a_big_corpus_leakage_free_with_exact_counts(tmp_path):
    """12,000 pairs with repeated sources (up to 4 translations each): test and dev get
    whole groups, their sizes met (at most a group over), pairs keep corpus order."""
    sources = [f"{src} ({n})" for n in range(20) for src, _ in sample_pairs(600)]
    pairs = [(src, f"t{i} {src[::-1]}") for i, src in enumerate(sources)]
    pairs += [(src.upper(), f"u{i}") for i, src in enumerate(sources[::3])]
    write_clean(tmp_path / "clean", pairs)
    sizes = split_corpus(
        tmp_path / "clean", SplitConfig(dev_size=500, test_size=0.05), tmp_path / "a"
    )
    assert sum(sizes.values()) == len(pairs)
    assert len(pairs) * 0.05 <= sizes["test"] <= len(pairs) * 0.05 + 1
    assert 500 <= sizes["dev"] <= 501  # a group has at most 2 pairs
    keys = {
        n: {group_key(s) for s in read_split(tmp_path / "a", n)} for n in ("train", "dev", "test")
    }
    assert not keys["test"] & keys["train"] and not keys["dev"] & keys["train"]
    assert not keys["dev"] & keys["test"]
    order = {pair: i for i, pair in enumerate(pairs)}
    for name in ("train", "dev", "test"):
        tgt = (tmp_path / "a" / f"{name}.tgt").read_text(encoding="utf-8").splitlines()
        found = [order[pair] for pair in zip(read_split(tmp_path / "a", name), tgt, strict=True)]
        assert found == sorted(found)
    split_corpus(tmp_path / "clean", SplitConfig(dev_size=500, test_size=0.05), tmp_path / "b")
    for name in ("train", "dev", "test"):
        for side in ("src", "tgt"):
            path = f"{name}.{side}"
            assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
