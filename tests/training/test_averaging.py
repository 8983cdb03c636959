"""train.average_last: the saved weights are the mean of the window ending at the best epoch."""

import keras
import numpy as np

from nmtpipe.training.averaging import WeightAverage
from nmtpipe.training.checkpoint import TrainingState
from tests.training.test_checkpoint import tiny_model


def run_epochs(model, early, average, val_losses):
    """Epoch ends as fit calls them: the weights become (epoch + 1) * the initial ones."""
    initial = model.get_weights()
    early.set_model(model)
    early.on_train_begin()
    for epoch, loss in enumerate(val_losses):
        model.set_weights([w * (epoch + 1) for w in initial])
        early.on_epoch_end(epoch, {"val_loss": loss})
        average.on_epoch_end(epoch, {"val_loss": loss})
    return initial


def test_the_window_ends_at_the_best_epoch():
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
    average = WeightAverage(3, early)
    average.set_model(model)
    initial = run_epochs(model, early, average, [3.0, 2.0, 1.5, 1.0, 1.2, 1.3])
    assert average.apply(model) == [2, 3, 4]  # best: epoch 4 (1-based), not the last two
    for got, w in zip(model.get_weights(), initial, strict=True):
        np.testing.assert_allclose(got, w * (2 + 3 + 4) / 3, rtol=1e-6)


def test_a_best_first_epoch_averages_nothing_before_it():
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping(patience=5)
    average = WeightAverage(4, early)
    average.set_model(model)
    initial = run_epochs(model, early, average, [1.0, 2.0])
    assert average.apply(model) == [1]
    for got, w in zip(model.get_weights(), initial, strict=True):
        np.testing.assert_array_equal(got, w)


def test_the_kept_weights_survive_a_checkpoint(tmp_path):
    model = tiny_model(1)
    early = keras.callbacks.EarlyStopping(patience=5)
    average = WeightAverage(2, early)
    average.set_model(model)
    run_epochs(model, early, average, [3.0, 1.0, 2.0])  # window: 2, 3; best window: 1, 2
    saved = TrainingState(tmp_path, "run", early, average=average)
    saved.set_model(model)
    saved.on_epoch_end(2, {"val_loss": 2.0})

    other, restored_early = tiny_model(2), keras.callbacks.EarlyStopping(patience=5)
    restored_average = WeightAverage(2, restored_early)
    restored = TrainingState(tmp_path, "run", restored_early, average=restored_average)
    assert restored.resume(other, epochs=5) == 3
    restored.set_model(other)
    restored.on_train_begin()
    for kept, back in [
        (average.window, restored_average.window),
        (average.best_window, restored_average.best_window),
    ]:
        assert [e for e, _ in back] == [e for e, _ in kept]
        for (_, a), (_, b) in zip(kept, back, strict=True):
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)
