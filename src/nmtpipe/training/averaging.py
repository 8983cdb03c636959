"""train.average_last: the saved weights are the mean of the last N epochs' up to the best.

Averaging the weights of the last few epochs (as fairseq's average_checkpoints does)
smooths out the noise of the final updates. The window ends at the epoch early
stopping keeps (the best dev loss), so an averaged model never includes epochs
after it: with N = 3 and the best epoch 7, epochs 5, 6 and 7.
"""

from __future__ import annotations

import keras
import numpy as np


class WeightAverage(keras.callbacks.Callback):
    """Keeps the model weights at the end of the last `count` epochs, and the window that
    ended at early stopping's best epoch. Put it right after EarlyStopping (it reads the
    best epoch that callback has just updated); call `apply` after fit.

    Args:
        count: epochs to average (train.average_last, >= 2).
        early: the EarlyStopping callback.
    """

    def __init__(self, count: int, early: keras.callbacks.EarlyStopping):
        if count < 2:
            raise ValueError(f"averaging needs at least 2 epochs, got {count}")
        super().__init__()
        self.count, self.early = count, early
        self.window: list[tuple[int, list[np.ndarray]]] = []  # (epoch number, weights)
        self.best_window: list[tuple[int, list[np.ndarray]]] = []

    def on_epoch_end(self, epoch, logs=None):
        self.window = [*self.window, (epoch + 1, self.model.get_weights())][-self.count :]
        if self.early.best_epoch == epoch:
            self.best_window = list(self.window)

    def apply(self, model: keras.Model) -> list[int]:
        """Set the model's weights to the best window's mean; return the epochs averaged."""
        if not self.best_window:
            return []
        snapshots = [weights for _, weights in self.best_window]
        mean = [
            np.mean(np.stack(values), axis=0).astype(values[0].dtype)
            for values in zip(*snapshots, strict=True)
        ]
        model.set_weights(mean)
        return [epoch for epoch, _ in self.best_window]

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-able epoch lists, arrays by name): what a checkpoint keeps to resume."""
        snapshots = dict(self.window + self.best_window)
        arrays = {
            f"e{epoch:04d}_w{num:05d}": value
            for epoch, weights in snapshots.items()
            for num, value in enumerate(weights)
        }
        meta = {"window": [e for e, _ in self.window], "best": [e for e, _ in self.best_window]}
        return meta, arrays

    def set_state(self, meta: dict, arrays) -> None:
        """Restore what get_state returned (arrays: a mapping such as an open .npz)."""

        def weights(epoch: int) -> list[np.ndarray]:
            names = sorted(k for k in arrays if k.startswith(f"e{epoch:04d}_"))
            return [arrays[name] for name in names]

        self.window = [(e, weights(e)) for e in meta["window"]]
        self.best_window = [(e, weights(e)) for e in meta["best"]]
