"""Resumable training: a killed `nmtpipe train` (or `dvc repro`) resumes from its last
epoch's checkpoint and ends with the same model as an uninterrupted run."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from nmtpipe.config import ModelConfig, SplitConfig, TokenizerConfig, load_params
from nmtpipe.corpus.split import split_corpus
from nmtpipe.fileio import write_lines
from nmtpipe.ids.encode import encode_split
from nmtpipe.ids.tokenizer import train_tokenizers
from nmtpipe.model.build import build_model
from nmtpipe.training.checkpoint import TrainingState
from tests.conftest import sample_pairs, train_dataset

PARAMS = {  # a tiny Transformer (the RNN's state is checked in process below), averaging
    # its last 2 epochs; no dev BLEU (tracing its decoder costs more than 3 epochs)
    "model": {
        **{"arch": "transformer", "embedding_dim": 8, "heads": 2, "ff_dim": 16},
        **{"encoder_layers": 1, "decoder_layers": 1},
    },
    "train": {"epochs": 3, "dev_bleu_sentences": 0, "average_last": 2},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A split and tokenizers of 300 pairs, and params for a tiny 3-epoch model."""
    root = tmp_path_factory.mktemp("resume")
    pairs = sample_pairs(300)
    (root / "clean").mkdir()
    write_lines(root / "clean/src.txt", [s for s, _ in pairs])
    write_lines(root / "clean/tgt.txt", [t for _, t in pairs])
    split_corpus(root / "clean", SplitConfig(dev_size=30, test_size=30), root / "split")
    train_tokenizers(
        root / "split", TokenizerConfig(src_vocab_size=150, tgt_vocab_size=150), root / "tok"
    )
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    encode_split(
        root / "split", root / "tok", load_params(root / "params.yaml").train, root / "enc"
    )
    return root


def start(project: Path, run: str, params: str = "params.yaml") -> subprocess.Popen:
    """`nmtpipe train` writing model-{run}, live-{run}, timing-{run}.json and checkpoints
    under ckpt-{run}."""
    args = ["--split", "split", "--encoded", "enc", "--tokenizers", "tok", "--params", params]
    args += ["--out", f"model-{run}", "--live", f"live-{run}", "--timing", f"timing-{run}.json"]
    args += ["--checkpoints", f"ckpt-{run}"]
    return subprocess.Popen(
        [sys.executable, "-m", "nmtpipe", "train", *args],
        cwd=project,
        env={**os.environ, "NMTPIPE_PROGRESS": "0"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def train(project: Path, run: str, params: str = "params.yaml") -> str:
    """Run `nmtpipe train` to the end; its log."""
    proc = start(project, run, params)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return err


def kill_after_checkpoint(proc: subprocess.Popen, checkpoints: Path, timeout: float = 300):
    """SIGKILL proc as soon as its first epoch's checkpoint is in place (in the run's
    own directory under `checkpoints`)."""
    deadline = time.monotonic() + timeout
    while not list(checkpoints.glob("*/epoch-*")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()


@pytest.fixture(scope="module")
def killed(project) -> Path:
    """The checkpoint directory of a 3-epoch run killed after its first checkpoint."""
    kill_after_checkpoint(start(project, "killed"), project / "ckpt-killed")
    assert not (project / "model-killed").exists()
    return project / "ckpt-killed"


def weights(model_dir: Path) -> list[np.ndarray]:
    import nmtpipe.model.build  # noqa: F401  (registers the model classes)

    return keras.saving.load_model(model_dir / "model.keras", compile=False).get_weights()


def curves(live: Path) -> dict[str, list[list[str]]]:
    """dvclive's curves, each a list of rows."""
    return {
        str(tsv.relative_to(live)): [line.split("\t") for line in tsv.read_text().splitlines()]
        for tsv in sorted((live / "plots/metrics").rglob("*.tsv"))
    }


def test_train_dataset_order_is_a_function_of_seed_and_epoch(tmp_path):
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 50, rng.integers(1, 30))) for _ in range(200)]
    tgt = [list(rng.integers(4, 50, rng.integers(1, 30))) for _ in range(200)]

    def batches(epochs: range) -> list[np.ndarray]:
        ds, steps = train_dataset(src, tgt, 16, seed=7, epochs=epochs, encoded=tmp_path / "enc")
        found = [out.numpy() for _, out in ds]
        assert len(found) == steps * len(epochs)
        return found

    straight, resumed = batches(range(3)), batches(range(1, 3))
    steps = len(straight) // 3
    assert len(resumed) == 2 * steps
    for a, b in zip(straight[steps:], resumed, strict=True):  # epochs 1 and 2, either way
        np.testing.assert_array_equal(a, b)
    assert any(  # ... and each epoch has its own order
        a.shape != b.shape or (a != b).any()
        for a, b in zip(straight[:steps], straight[steps : 2 * steps], strict=True)
    )


def tiny_model(seed: int):
    keras.utils.set_random_seed(seed)
    model = build_model(ModelConfig(embedding_dim=8, units=16), 40, 40)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    model.optimizer.build(model.trainable_variables)
    return model


def test_checkpoint_round_trip_restores_model_optimizer_and_early_stopping(tmp_path, caplog):
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping(restore_best_weights=True)
    early.wait, early.best, early.best_epoch, early.stopped_epoch = 1, 1.25, 0, 0
    early.best_weights = [w + 1 for w in model.get_weights()]
    model.optimizer.iterations.assign(17)
    model.variables[-1].assign(model.variables[-1] + 3)  # a dropout seed-generator state
    saved = TrainingState(tmp_path / "ckpt", "run-a", early)
    saved.set_model(model)
    saved.on_epoch_end(0, {"loss": 2.5, "val_loss": 1.25})
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["epoch-0001"]

    other = tiny_model(2)
    restored_early = keras.callbacks.EarlyStopping(restore_best_weights=True)
    restored = TrainingState(tmp_path / "ckpt", "run-a", restored_early)
    with caplog.at_level(logging.INFO, logger="nmtpipe.training.checkpoint"):
        assert restored.resume(other, epochs=4) == 1
    assert f"resuming from epoch 2 of 4 (checkpoint {tmp_path / 'ckpt'})" in caplog.text
    for a, b in zip(
        [*model.variables, *model.optimizer.variables],
        [*other.variables, *other.optimizer.variables],
        strict=True,
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    restored_early.on_train_begin()  # resets it; TrainingState comes after it
    restored.set_model(other)
    restored.on_train_begin()
    assert (restored_early.wait, restored_early.best, restored_early.best_epoch) == (1, 1.25, 0)
    for a, b in zip(early.best_weights, restored_early.best_weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert restored.history == {"loss": [2.5], "val_loss": [1.25]}

    stranger = TrainingState(tmp_path / "ckpt", "run-b", early)
    with caplog.at_level(logging.INFO, logger="nmtpipe.training.checkpoint"):
        assert stranger.resume(tiny_model(3), epochs=4) == 0
    assert "checkpoint is for other params/data: starting over" in caplog.text
    assert list((tmp_path / "ckpt").iterdir()) == []


def test_a_checkpoint_of_another_precision_is_not_resumed_and_says_so(tmp_path, caplog):
    """train.precision auto resolves per machine: a run checkpointed in bfloat16 and
    resumed where the CPU has none would silently continue in float32."""
    early = keras.callbacks.EarlyStopping()
    early.on_train_begin()
    saved = TrainingState(tmp_path, "run", early, precision="mixed_bfloat16")
    saved.set_model(tiny_model(1))
    saved.on_epoch_end(0, {"loss": 2.5, "val_loss": 1.25})
    elsewhere = TrainingState(tmp_path, "run", early, precision="float32")
    with caplog.at_level(logging.INFO, logger="nmtpipe.training.checkpoint"):
        assert elsewhere.resume(tiny_model(2), epochs=4) == 0
    assert "epoch-0001 trained in mixed_bfloat16, this machine trains in float32" in caplog.text
    same = TrainingState(tmp_path, "run", early, precision="float32")
    same.set_model(tiny_model(1))
    same.on_epoch_end(0, {"loss": 2.5, "val_loss": 1.25})
    assert (
        TrainingState(tmp_path, "run", early, precision="float32").resume(tiny_model(2), epochs=4)
        == 1
    )


def test_checkpoint_restores_reduce_lr_on_plateau_counters(tmp_path):
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping()
    early.on_train_begin()
    plateau = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2)
    plateau.set_model(model)
    plateau.on_train_begin()
    for epoch, loss in enumerate([2.0, 2.1]):  # one improvement, then one epoch without
        plateau.on_epoch_end(epoch, {"val_loss": loss})
    saved = TrainingState(tmp_path, "run", early, plateau)
    saved.set_model(model)
    saved.on_epoch_end(1, {"loss": 2.5, "val_loss": 2.1})

    restored_plateau = keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=2)
    restored = TrainingState(tmp_path, "run", keras.callbacks.EarlyStopping(), restored_plateau)
    other = tiny_model(2)
    assert restored.resume(other, epochs=5) == 2
    restored_plateau.set_model(other)
    restored_plateau.on_train_begin()  # resets it; TrainingState comes after it
    restored.set_model(other)
    restored.on_train_begin()
    assert (restored_plateau.wait, restored_plateau.best) == (1, 2.0)
    assert restored_plateau.cooldown_counter == plateau.cooldown_counter


def test_checkpoint_of_an_ended_run_trains_no_more_epochs(tmp_path, caplog):
    """Killed after early stopping's last checkpoint, before the model was saved."""
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping(restore_best_weights=True)
    early.on_train_begin()
    saved = TrainingState(tmp_path, "run", early)
    saved.set_model(model)
    model.stop_training = True  # as EarlyStopping sets it in the same on_epoch_end
    saved.on_epoch_end(3, {"loss": 2.0, "val_loss": 1.5})
    with caplog.at_level(logging.INFO, logger="nmtpipe.training.checkpoint"):
        assert TrainingState(tmp_path, "run", early).resume(tiny_model(2), epochs=10) == 10
    assert "resuming after epoch 4 of 10, where training had ended" in caplog.text


@pytest.mark.slow
def test_killed_training_resumes_to_the_same_model_and_curves(project, killed):
    straight = train(project, "straight")
    assert "resuming" not in straight  # a fresh start says nothing special
    shutil.copytree(killed, project / "ckpt-resumed")
    log = train(project, "resumed")
    assert re.search(r"resuming from epoch [23] of 3 \(checkpoint ckpt-resumed/\w{16}\)", log)
    for a, b in zip(
        weights(project / "model-straight"), weights(project / "model-resumed"), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert curves(project / "live-resumed") == curves(project / "live-straight")
    assert len(curves(project / "live-resumed")["plots/metrics/train/loss.tsv"]) == 4  # + header
    assert not any("_per_s" in name for name in curves(project / "live-resumed"))  # no timings
    timing = json.loads((project / "timing-resumed.json").read_text())
    assert len(timing["epoch_time_s"]) == 3 and timing["train_time_s"] > 0  # resumed ones too
    metrics = [
        json.loads((project / f"live-{run}/metrics.json").read_text())
        for run in ("straight", "resumed")
    ]
    for key in ("best_val_loss", "best_epoch", "epochs_run", "step", "averaged_epochs"):
        assert metrics[0][key] == metrics[1][key], key
    assert metrics[0]["averaged_epochs"] == min(2, metrics[0]["best_epoch"])
    assert list((project / "ckpt-resumed").iterdir()) == []  # a complete run deletes its own
    assert list((project / "ckpt-straight").iterdir()) == []


@pytest.mark.slow
def test_checkpoint_of_other_params_is_discarded(project, killed, caplog):
    """A real run's checkpoint, offered to a run with another learning rate: deleted, not
    resumed (the fingerprint covers every param, the data, the tokenizers and the code)."""
    from nmtpipe.config import params_from_dict
    from nmtpipe.training.checkpoint import fingerprint

    lr = {**PARAMS, "train": {**PARAMS["train"], "learning_rate": 0.01}}
    split, tok = project / "split", project / "tok"
    ours, other = (fingerprint(params_from_dict(p), split, tok, {}) for p in (PARAMS, lr))
    assert ours != other
    shutil.copytree(killed, project / "ckpt-lr")
    [run_dir] = (project / "ckpt-lr").iterdir()
    assert run_dir.name == ours[:16]  # train_model keys each run's directory by its inputs
    [checkpoint] = run_dir.glob("epoch-*")
    assert json.loads((checkpoint / "state.json").read_text())["fingerprint"] == ours
    early = keras.callbacks.EarlyStopping()
    with caplog.at_level(logging.INFO, logger="nmtpipe.training.checkpoint"):
        assert TrainingState(run_dir, other, early).resume(tiny_model(1), 3) == 0
    assert "checkpoint is for other params/data: starting over" in caplog.text
    assert list(run_dir.iterdir()) == []


def test_damaged_checkpoint_starts_over(tmp_path, caplog):
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping(restore_best_weights=True)
    early.on_train_begin()
    saved = TrainingState(tmp_path, "run", early)
    saved.set_model(model)
    saved.on_epoch_end(0, {"loss": 2.0, "val_loss": 1.5})
    (tmp_path / "epoch-0001/variables.npz").write_bytes(b"not a zip")
    other = tiny_model(2)
    before = [v.numpy() for v in other.variables]
    with caplog.at_level(logging.INFO, logger="nmtpipe.training.checkpoint"):
        assert TrainingState(tmp_path, "run", early).resume(other, epochs=3) == 0
    assert "unreadable checkpoint" in caplog.text and "starting over" in caplog.text
    for a, b in zip(before, other.variables, strict=True):  # left as initialised
        np.testing.assert_array_equal(a, b.numpy())
    assert list(tmp_path.iterdir()) == []
