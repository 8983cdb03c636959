"""Learning-rate schedules (train.lr_schedule); the peak rate is train.learning_rate.

- ``constant``: train.learning_rate throughout.
- ``warmup_inverse_sqrt``: linear warm-up from 0 at update 0 to the peak at
  update warmup_steps, then peak * sqrt(warmup_steps / step) (Vaswani et al., 2017).
- ``warmup_cosine``: the same warm-up, then cosine decay to 0 at the planned last
  update, epochs x batches per epoch (keras CosineDecay; early stopping may end
  training sooner).
- ``plateau``: keras ReduceLROnPlateau on val_loss.

Steps count optimizer updates from 0 (the schedule is called with
``optimizer.iterations``). Schedules are registered Keras objects, so a model
compiled with one saves and its optimizer config deserializes.
"""

from __future__ import annotations

import keras
from keras import ops

from nmtpipe.config import TrainConfig
from nmtpipe.errors import ConfigError


@keras.saving.register_keras_serializable(package="nmtpipe")
class WarmupInverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """peak * min(step / warmup_steps, sqrt(warmup_steps / step)).

    Args:
        peak: the learning rate at step warmup_steps.
        warmup_steps: length of the linear warm-up (>= 1).
    """

    def __init__(self, peak: float, warmup_steps: int):
        super().__init__()
        self.peak, self.warmup_steps = peak, warmup_steps

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(self.warmup_steps)
        decay = ops.sqrt(warmup / ops.maximum(step, 1.0))
        return self.peak * ops.minimum(step / warmup, decay)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


def learning_rate(cfg: TrainConfig, steps_per_epoch: int):
    """The optimizer's learning_rate for cfg.lr_schedule: a float or a schedule of the step.

    A warm-up as long as the planned training (warmup_cosine) is a ConfigError.
    """
    peak, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.lr_schedule == "warmup_inverse_sqrt":
        return WarmupInverseSqrt(peak, warmup)
    if cfg.lr_schedule == "warmup_cosine":
        total = cfg.epochs * steps_per_epoch
        if warmup >= total:
            raise ConfigError(
                f"train.warmup_steps ({warmup}) must be below the planned updates, "
                f"train.epochs x {steps_per_epoch} batches per epoch = {total}"
            )
        if not warmup:
            return keras.optimizers.schedules.CosineDecay(peak, total)
        return keras.optimizers.schedules.CosineDecay(
            0.0, total - warmup, warmup_target=peak, warmup_steps=warmup
        )
    return peak  # constant; plateau lowers it through its callback


def schedule_callbacks(cfg: TrainConfig) -> list[keras.callbacks.Callback]:
    """Callbacks the schedule needs: ReduceLROnPlateau for plateau, none otherwise."""
    if cfg.lr_schedule != "plateau":
        return []
    return [
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    ]
