"""Bahdanau and Luong attention: distributions over real source positions."""

import numpy as np
import pytest

from nmtpipe.model.attention import Attention


@pytest.mark.parametrize(
    "kind, score", [("luong", "general"), ("luong", "dot"), ("bahdanau", "general")]
)
def test_attention_weights_are_distributions_that_ignore_padding(kind, score):
    layer = Attention(4, kind, score)
    rng = np.random.default_rng(1)
    query = rng.normal(size=(2, 3, 4)).astype("float32")
    keys = rng.normal(size=(2, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    context, weights = layer(query, keys, mask)
    assert context.shape == (2, 3, 4) and weights.shape == (2, 3, 5)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-5)
    assert np.all(np.asarray(weights)[0, :, 3:] < 1e-6)
    expected = np.einsum("bts,bsk->btk", np.asarray(weights), keys)
    np.testing.assert_allclose(context, expected, rtol=1e-4, atol=1e-6)
