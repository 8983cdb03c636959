import pytest

from nmtpipe.config import SplitConfig
from nmtpipe.corpus.split import group_key, split_corpus
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
