"""The masked, label-smoothed loss and its token metrics, from one softmax pass."""

import numpy as np
import pytest

from nmtpipe.model.losses import masked_loss, token_stats


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
    assert float(masked_loss(y, logits)) == pytest.approx(plain, rel=1e-6)
    eps = 0.1
    target = [(1 - eps) * np.eye(5)[y[i, t]] + eps / 5 for i, t in real]
    smoothed = np.mean([-(q * log_p[i, t]).sum() for q, (i, t) in zip(target, real, strict=True)])
    assert float(masked_loss(y, logits, eps)) == pytest.approx(smoothed, rel=1e-6)
    assert smoothed > plain
    other_padding = logits.copy()
    other_padding[y == 0] += rng.normal(size=(3, 5)).astype("float32") * 50
    assert float(masked_loss(y, other_padding, eps)) == pytest.approx(smoothed, rel=1e-6)


def test_masked_loss_ignores_padding():
    logits = np.random.default_rng(0).normal(size=(1, 4, 10)).astype("float32")
    y = np.array([[5, 6, 0, 0]])
    y_other_pad_logits = logits.copy()
    y_other_pad_logits[0, 2:] += 100.0
    assert float(masked_loss(y, logits)) == pytest.approx(float(masked_loss(y, y_other_pad_logits)))
    y_full = np.array([[5, 6, 7, 8]])
    assert float(masked_loss(y, logits)) != pytest.approx(float(masked_loss(y_full, logits)))


def former_loss_and_metrics(y, logits, eps):
    """The loss and metrics as they were computed before token_stats, a pass each:
    Keras' sparse cross-entropy, a log-softmax for smoothing, argmax for accuracy."""
    import keras
    from keras import ops

    mask = ops.cast(ops.not_equal(y, 0), "float32")
    xent = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    uniform = -ops.mean(ops.log_softmax(logits, axis=-1), axis=-1)
    loss = ops.sum(((1 - eps) * xent + eps * uniform) * mask) / ops.sum(mask)
    hits = ops.cast(ops.equal(ops.cast(y, "int32"), ops.argmax(logits, axis=-1)), "float32")
    cross_entropy = ops.sum(xent * mask) / ops.sum(mask)
    return float(loss), float(cross_entropy), float(ops.sum(hits * mask) / ops.sum(mask))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_one_pass_stats_equal_the_former_loss_and_metrics(eps):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(4, 7, 50)).astype("float32") * 3
    y = rng.integers(1, 50, size=(4, 7))
    y[:, 5:] = 0
    y[0, :2] = logits[0, :2].argmax(-1)  # some hits
    stats = token_stats(y, logits, eps)
    loss, cross_entropy, accuracy = former_loss_and_metrics(y, logits, eps)
    tokens = float(stats["tokens"])
    assert tokens == 20
    assert float(stats["loss"]) == pytest.approx(loss, rel=1e-5)
    assert float(stats["nll"]) / tokens == pytest.approx(cross_entropy, rel=1e-5)
    assert float(stats["hits"]) / tokens == pytest.approx(accuracy)
    assert float(stats["hits"]) >= 2


def test_model_compute_loss_feeds_its_metrics():
    """Evaluate's loss and metrics are the former ones of its batch."""
    import keras

    from nmtpipe.config import ModelConfig
    from nmtpipe.model.build import build_model

    cfg = ModelConfig(arch="transformer", embedding_dim=16, heads=2, ff_dim=32)
    model = build_model(cfg, src_vocab_size=30, tgt_vocab_size=40)
    rng = np.random.default_rng(5)
    src = rng.integers(4, model.src_vocab_size, size=(3, 6))
    tgt_in = rng.integers(4, model.tgt_vocab_size, size=(3, 5))
    tgt_out = np.concatenate([tgt_in[:, 1:], np.zeros((3, 1), dtype=tgt_in.dtype)], axis=1)
    model.compile(keras.optimizers.SGD(0.0), label_smoothing=0.1)  # lr 0: weights unchanged
    logs = model.evaluate((src, tgt_in), tgt_out, batch_size=3, verbose=0, return_dict=True)
    loss, cross_entropy, accuracy = former_loss_and_metrics(tgt_out, model((src, tgt_in)), 0.1)
    assert logs["loss"] == pytest.approx(loss, rel=1e-5)
    assert logs["cross_entropy"] == pytest.approx(cross_entropy, rel=1e-5)
    assert logs["masked_accuracy"] == pytest.approx(accuracy)
    with pytest.raises(TypeError, match="no loss or metrics"):
        model.compile(keras.optimizers.SGD(0.0), loss="mse")
