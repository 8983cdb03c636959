"""FusedAdam: TensorFlow's one-kernel Adam, step for step Keras' Adam."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from nmtpipe.config import ModelConfig

TINY = ModelConfig(
    arch="transformer", embedding_dim=16, heads=2, ff_dim=32, encoder_layers=1,
    decoder_layers=1, dropout=0.0, attention_dropout=0.0, tie_embeddings=True,
)  # fmt: skip


def trained_weights(optimizer, cfg: ModelConfig, steps: int = 6) -> list[np.ndarray]:
    """The weights and optimizer variables after `steps` updates on fixed random batches."""
    from nmtpipe.model.build import build_model

    keras.utils.set_random_seed(7)
    model = build_model(cfg, 50, 50)
    model.compile(optimizer=optimizer, label_smoothing=0.1)
    rng = np.random.default_rng(0)
    for step in range(steps):
        length = 5 + step  # batches of several shapes, as bucketing gives
        src = rng.integers(4, 50, (8, length)).astype("int32")
        tgt = rng.integers(4, 50, (8, length + 1)).astype("int32")
        model.train_on_batch((src, tgt[:, :-1]), tgt[:, 1:])
    return [np.asarray(v) for v in [*model.weights, *model.optimizer.variables]]


@pytest.mark.parametrize("cfg", [TINY, dataclasses.replace(TINY, share_embeddings=True)])
def test_fused_adam_takes_keras_adams_steps(cfg):
    """Same weights and moments after six steps: clipping, a schedule, epsilon and beta_2
    passed through, sparse (embedding) gradients included."""
    from nmtpipe.training.optimizer import FusedAdam

    schedule = keras.optimizers.schedules.CosineDecay(3e-3, 10, warmup_target=None)
    # epsilon 1e-4, not the presets' 1e-9: the key bias' gradient is zero but for rounding
    # (softmax ignores it), and with a tiny epsilon Adam steps by ~lr on that noise, in
    # each optimizer differently
    options = {"beta_2": 0.98, "epsilon": 1e-4, "clipnorm": 1.0}
    want = trained_weights(keras.optimizers.Adam(schedule, **options), cfg)
    got = trained_weights(FusedAdam(schedule, **options), cfg)
    assert len(got) == len(want)
    start = trained_weights(keras.optimizers.Adam(schedule, **options), cfg, steps=0)
    moved = sum(not np.allclose(w, w0) for w, w0 in zip(want, start, strict=False))
    assert moved > len(start) // 2  # the steps changed most weights
    for fused, plain in zip(got, want, strict=True):
        np.testing.assert_allclose(fused, plain, rtol=2e-5, atol=2e-6)
