"""Learning-rate schedules, the learning-rate curve, and compiled models that still save."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from nmtpipe.config import ModelConfig, TrainConfig
from nmtpipe.errors import ConfigError
from nmtpipe.ids.batches import batches_per_epoch, example_lengths, make_dataset
from nmtpipe.model.build import build_model
from nmtpipe.training.callbacks import LearningRate
from nmtpipe.training.schedules import WarmupInverseSqrt, learning_rate, schedule_callbacks
from nmtpipe.training.train import compile_model

PEAK = 0.01


def at(schedule, steps: list[int]) -> list[float]:
    return [float(keras.ops.convert_to_numpy(schedule(step))) for step in steps]


def test_warmup_inverse_sqrt_rises_linearly_then_decays():
    schedule = learning_rate(
        TrainConfig(lr_schedule="warmup_inverse_sqrt", learning_rate=PEAK, warmup_steps=4), 10
    )
    assert isinstance(schedule, WarmupInverseSqrt)
    expected = [0.0, PEAK / 4, PEAK / 2, PEAK, PEAK / 2, PEAK / 4]  # steps 0, 1, 2, 4, 16, 64
    assert at(schedule, [0, 1, 2, 4, 16, 64]) == pytest.approx(expected, rel=1e-6)


def test_warmup_cosine_peaks_after_warmup_and_ends_at_zero():
    cfg = TrainConfig(lr_schedule="warmup_cosine", learning_rate=PEAK, warmup_steps=4, epochs=3)
    schedule = learning_rate(cfg, steps_per_epoch=4)  # 12 planned updates: 4 up, 8 down
    expected = [0.0, PEAK / 2, PEAK, PEAK * (1 + math.cos(math.pi / 4)) / 2, PEAK / 2, 0.0, 0.0]
    assert at(schedule, [0, 2, 4, 6, 8, 12, 20]) == pytest.approx(expected, rel=1e-5, abs=1e-9)
    no_warmup = learning_rate(TrainConfig(lr_schedule="warmup_cosine", warmup_steps=0), 5)
    assert at(no_warmup, [0, 100]) == pytest.approx([0.002, 0.001], rel=1e-5)  # 40 x 5 updates


def test_warmup_longer_than_training_is_a_config_error():
    cfg = TrainConfig(lr_schedule="warmup_cosine", warmup_steps=80, epochs=2)
    message = (
        "train.warmup_steps (80) must be below the planned updates, "
        "train.epochs x 40 batches per epoch = 80"
    )
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        learning_rate(cfg, 40)


def test_constant_and_plateau_keep_a_float_rate():
    assert learning_rate(TrainConfig(), 10) == 0.002 and schedule_callbacks(TrainConfig()) == []
    plateau = TrainConfig(lr_schedule="plateau", plateau_factor=0.25, plateau_patience=2)
    assert learning_rate(plateau, 10) == 0.002
    (callback,) = schedule_callbacks(plateau)
    assert isinstance(callback, keras.callbacks.ReduceLROnPlateau)
    assert (callback.monitor, callback.factor, callback.patience) == ("val_loss", 0.25, 2)


def tiny_data(pairs: int = 24, batch_size: int = 8):
    """Random pairs all in one length bucket: batches_per_epoch full batches."""
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 30, 5)) for _ in range(pairs)]
    tgt = [list(rng.integers(4, 40, 4)) for _ in range(pairs)]
    return make_dataset(src, tgt, batch_size), batches_per_epoch(example_lengths(src, tgt), 8)


def tiny_model():
    cfg = ModelConfig(cell="gru", embedding_dim=8, units=16, bidirectional=False)
    return build_model(cfg, 30, 40)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["warmup_inverse_sqrt", "warmup_cosine"])
def test_learning_rate_curve_follows_the_schedule_and_the_model_saves(tmp_path, schedule):
    data, steps = tiny_data()
    cfg = TrainConfig(
        lr_schedule=schedule, learning_rate=PEAK, warmup_steps=4, epochs=3, label_smoothing=0.1
    )
    model = tiny_model()
    compile_model(model, cfg, steps)
    history = model.fit(data, epochs=3, callbacks=[LearningRate()], verbose=0).history
    expected = at(learning_rate(cfg, steps), [3, 6, 9])  # optimizer.iterations at epoch ends
    assert steps == 3 and history["learning_rate"] == pytest.approx(expected, rel=1e-6)
    assert len(set(history["learning_rate"])) == 3 and "cross_entropy" in history
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False, safe_mode=True)
    batch = next(iter(data))[0]
    np.testing.assert_array_equal(model(batch), loaded(batch))


def test_plateau_halves_the_rate_and_the_curve_shows_it_from_the_next_epoch():
    model = tiny_model()
    cfg = TrainConfig(lr_schedule="plateau", plateau_factor=0.5, plateau_patience=1)
    compile_model(model, cfg, 3)
    plateau, curve = schedule_callbacks(cfg)[0], LearningRate()
    for callback in (curve, plateau):  # in train.py's order
        callback.set_model(model)
        callback.on_train_begin()
    logged = []
    for epoch, val_loss in enumerate([2.0, 1.5, 1.6, 1.7, 1.2]):
        logs = {"val_loss": val_loss}
        for callback in (curve, plateau):
            callback.on_epoch_end(epoch, logs)
        logged.append(logs["learning_rate"])
    assert logged == pytest.approx([0.002, 0.002, 0.002, 0.001, 0.0005])


def test_cross_entropy_metric_is_per_token_over_all_batches():
    rng = np.random.default_rng(3)
    src = [list(rng.integers(4, 30, n)) for n in (3, 4, 9, 12, 5)]  # several length buckets
    tgt = [list(rng.integers(4, 40, n)) for n in (2, 6, 3, 11, 4)]
    data = make_dataset(src, tgt, batch_size=2)
    model = tiny_model()
    compile_model(model, TrainConfig(label_smoothing=0.2), 3)
    result = model.evaluate(data, return_dict=True, verbose=0)
    total = tokens = 0.0
    for (src_batch, tgt_in), tgt_out in data:
        logits = np.asarray(model((src_batch, tgt_in)), dtype=np.float64)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        real = np.asarray(tgt_out) != 0
        total -= np.take_along_axis(log_p, np.asarray(tgt_out)[..., None], -1)[..., 0][real].sum()
        tokens += real.sum()
    assert tokens == sum(len(t) + 1 for t in tgt)
    assert result["cross_entropy"] == pytest.approx(total / tokens, rel=1e-5)
