"""The masked, label-smoothed loss."""

import numpy as np
import pytest

from nmtpipe.model.losses import masked_loss, training_loss


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def test_label_smoothing_matches_a_hand_computation():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(2, 3, 5)).astype("float32")
    y = np.array([[4, 2, 0], [1, 0, 0]])  # 3 real positions, 3 padding
    log_p = log_softmax(logits.astype(np.float64))
    real = [(0, 0), (0, 1), (1, 0)]
    plain = np.mean([-log_p[i, t, y[i, t]] for i, t in real])
    assert training_loss(0.0) is masked_loss
    assert float(masked_loss(y, logits)) == pytest.approx(plain, rel=1e-6)
    eps = 0.1
    target = [(1 - eps) * np.eye(5)[y[i, t]] + eps / 5 for i, t in real]
    smoothed = np.mean([-(q * log_p[i, t]).sum() for q, (i, t) in zip(target, real, strict=True)])
    assert float(training_loss(eps)(y, logits)) == pytest.approx(smoothed, rel=1e-6)
    assert smoothed > plain
    other_padding = logits.copy()
    other_padding[y == 0] += rng.normal(size=(3, 5)).astype("float32") * 50
    assert float(training_loss(eps)(y, other_padding)) == pytest.approx(smoothed, rel=1e-6)


def test_masked_loss_ignores_padding():
    logits = np.random.default_rng(0).normal(size=(1, 4, 10)).astype("float32")
    y = np.array([[5, 6, 0, 0]])
    y_other_pad_logits = logits.copy()
    y_other_pad_logits[0, 2:] += 100.0
    assert float(masked_loss(y, logits)) == pytest.approx(float(masked_loss(y, y_other_pad_logits)))
    y_full = np.array([[5, 6, 7, 8]])
    assert float(masked_loss(y, logits)) != pytest.approx(float(masked_loss(y_full, logits)))
