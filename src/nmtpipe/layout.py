"""File names inside each stage's output directory.

The directories themselves are paths in dvc.yaml, passed on the command line; the
names of the files inside them live here, once.
"""

from __future__ import annotations

from pathlib import Path

SIDES = ("src", "tgt")

# download's data/raw and clean's data/clean: one line-aligned text file per side
CORPUS_SRC, CORPUS_TGT = "src.txt", "tgt.txt"
MANIFEST = "manifest.json"  # download: source, sha256, line counts

# split's data/split: {train,dev,test}.{src,tgt}
SPLITS = ("train", "dev", "test")
SPLIT_SIZES = "sizes.json"

# encode's data/encoded: the training pairs as ids in shuffled, GZIP-compressed TFRecord
# shards, and their counts (pairs, length histogram) for the batch count of an epoch
ENCODED_STATS = "stats.json"

# the model directory (train's data/model)
MODEL_FILE, MODEL_CONFIG = "model.keras", "config.json"

# evaluate's reports/eval
HYPOTHESES, SENTENCE_SCORES = "hypotheses.txt", "scores.tsv"


def corpus_files(corpus_dir: Path) -> tuple[Path, Path]:
    """The source and target files of a raw or cleaned corpus directory."""
    return Path(corpus_dir) / CORPUS_SRC, Path(corpus_dir) / CORPUS_TGT


def split_files(split_dir: Path, split: str) -> tuple[Path, Path]:
    """The source and target files of one split (train, dev or test)."""
    return tuple(Path(split_dir) / f"{split}.{side}" for side in SIDES)


def shard_file(encoded_dir: Path, index: int, count: int) -> Path:
    """One of encode's `count` TFRecord shards of training ids."""
    return Path(encoded_dir) / f"train-{index:05d}-of-{count:05d}.tfrecord.gz"


def tokenizer_file(tok_dir: Path, side: str) -> Path:
    """The SentencePiece model of one side, in tokenize's directory or a model directory."""
    return Path(tok_dir) / f"{side}.model"


def vocab_file(tok_dir: Path, side: str) -> Path:
    """The human-readable vocabulary (piece, score) next to a SentencePiece model."""
    return Path(tok_dir) / f"{side}.vocab"
