"""Shared fixtures: tiny real data taken from the embedded sample corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmtpipe.corpus.download import sample_path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NMTPIPE_PROGRESS", "0")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def sample_pairs(n: int | None = None) -> list[tuple[str, str]]:
    """The first n pairs of the embedded corpus (English, Spanish)."""
    lines = sample_path().read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("\t")) for line in lines[:n]]


@pytest.fixture
def tiny_tsv(tmp_path) -> Path:
    """A 400-pair English<TAB>Spanish file."""
    path = tmp_path / "tiny.tsv"
    path.write_text("".join(f"{en}\t{es}\n" for en, es in sample_pairs(400)), encoding="utf-8")
    return path


def run_nmtpipe(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the `nmtpipe` command in a fresh process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "nmtpipe", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


# The longest test modules (each runs on one worker: `--dist loadfile`), longest first, so
# that pytest-xdist starts them first and the short ones fill in around them.
LONGEST_FIRST = (
    "test_experiments.py",
    "test_pipeline.py",
    "serving/test_export.py",
    "training/test_checkpoint.py",
    "test_robustness.py",
    "bench/test_cli.py",
)


def pytest_collection_modifyitems(items):
    """Run the longest modules first (a stable sort: the order within a module is kept)."""

    def rank(item) -> int:
        path = item.path.relative_to(ROOT / "tests").as_posix()
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)


def train_dataset(src_ids, tgt_ids, batch_size: int, seed: int, epochs: range, encoded: Path):
    """make_train_dataset on id pairs: encode's shards written to `encoded` first."""
    from nmtpipe.ids.batches import make_train_dataset
    from nmtpipe.ids.records import write_shards

    encoded.mkdir(parents=True, exist_ok=True)
    write_shards(zip(src_ids, tgt_ids, strict=True), encoded, seed, len(src_ids))
    return make_train_dataset(encoded, batch_size, seed, epochs)
