"""train.distribute: mirrored training on two logical CPUs equals one-device training.

The logical CPUs must be set before TensorFlow initialises, which a pytest worker may
have done already: the training runs in a fresh process (this module's __main__).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nmtpipe.config import ModelConfig, Params, TokenizerConfig, TrainConfig
from nmtpipe.errors import ConfigError
from nmtpipe.ids.tokenizer import train_tokenizers
from nmtpipe.layout import SIDES, split_files
from tests.conftest import ROOT, sample_pairs

PAIRS = 48  # spread over the sample corpus (ordered by length): 2 to 20 pieces
VOCAB = 64
STEPS = 8  # updates: full batches split 3 + 3 pairs, a bucket's last may split unevenly


def params(distribute: str, batch_size: int = 6) -> Params:
    """clipnorm 0: Keras clips each replica's gradients apart (training/distribute.py);
    float32: bfloat16 (precision auto on a CPU with AMX) rounds the halves differently."""
    return Params(
        tokenizer=TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB),
        model=ModelConfig(embedding_dim=8, units=16, dropout=0.0),
        train=TrainConfig(
            batch_size=batch_size,
            learning_rate=0.01,
            seed=3,
            clipnorm=0.0,
            distribute=distribute,
            precision="float32",
        ),
    )


def train_weights(tok_dir: Path, run: Params) -> list[np.ndarray]:
    """The weights after STEPS updates, trained as the train stage does (its _build)."""
    from nmtpipe.fileio import read_split
    from nmtpipe.ids.batches import batches_per_epoch, example_lengths, make_dataset
    from nmtpipe.ids.encode import encode_pairs
    from nmtpipe.ids.tokenizer import load_tokenizer
    from nmtpipe.layout import tokenizer_file
    from nmtpipe.training.train import _build, set_determinism

    set_determinism(run.train.seed)
    sp_src, sp_tgt = (load_tokenizer(tokenizer_file(tok_dir, side)) for side in SIDES)
    src, tgt, _ = encode_pairs(sp_src, sp_tgt, *read_split(tok_dir, "train"), 64, 64)
    stats = {
        "src_vocab_size": VOCAB,
        "tgt_vocab_size": VOCAB,
        "train_batches_per_epoch": batches_per_epoch(
            example_lengths(src, tgt), run.train.batch_size
        ),
    }
    model, _, _ = _build(run, tok_dir, stats)
    model.fit(make_dataset(src, tgt, run.train.batch_size), steps_per_epoch=STEPS, verbose=0)
    return model.get_weights()


def main(tok_dir: Path, out: Path) -> None:
    """Split the CPU in two, train once on one device and once mirrored, save both."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    for distribute in ("none", "mirrored"):
        np.savez(out / f"{distribute}.npz", *train_weights(tok_dir, params(distribute)))
    try:
        train_weights(tok_dir, params("mirrored", batch_size=5))
    except ConfigError as err:
        (out / "refused.txt").write_text(str(err), encoding="utf-8")


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    """Tokenizers trained on PAIRS real pairs, with those pairs as the train split."""
    pairs = sample_pairs()
    pairs = pairs[:: len(pairs) // PAIRS][:PAIRS]
    path = tmp_path_factory.mktemp("tok")
    for side, sentences in zip(split_files(path, "train"), zip(*pairs, strict=True), strict=True):
        side.write_text("".join(f"{s}\n" for s in sentences), encoding="utf-8")
    train_tokenizers(path, params("none").tokenizer, path / "out")
    for side in SIDES:
        (path / f"{side}.model").write_bytes((path / "out" / f"{side}.model").read_bytes())
    return path


@pytest.mark.slow  # trains twice in a fresh TensorFlow process: ~30 s of CPU
def test_mirrored_on_two_cpus_trains_the_single_device_weights(tok_dir, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tests.training.test_distribute", str(tok_dir), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MirroredStrategy, 2 replica(s)" in done.stderr
    single, mirrored = (np.load(tmp_path / f"{name}.npz") for name in ("none", "mirrored"))
    assert len(single.files) == len(mirrored.files) > 10
    for name in single.files:
        np.testing.assert_allclose(mirrored[name], single[name], rtol=1e-4, atol=1e-6)
    assert (tmp_path / "refused.txt").read_text(encoding="utf-8") == (
        "train.batch_size 5 must be a multiple of the 2 replicas of train.distribute "
        "(Keras' fit fails on a first batch that splits unevenly)"
    )


def test_multi_worker_is_refused_before_training():
    from nmtpipe.training.distribute import strategy

    with pytest.raises(ConfigError, match=r"^train.distribute multi_worker is not supported"):
        strategy("multi_worker")


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
