"""nmtpipe's LSTM/GRU compute what Keras' layers compute, with the same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from nmtpipe.model import recurrent

PAIRS = [(keras.layers.LSTM, recurrent.LSTM), (keras.layers.GRU, recurrent.GRU)]
PAIR_IDS = ["lstm", "gru"]


def inputs():
    """A batch of 4 sequences of 7 steps; rows 1 and 2 end early (mask False)."""
    x = np.random.default_rng(0).standard_normal((4, 7, 16)).astype("float32")
    mask = np.ones((4, 7), bool)
    mask[1, 5:] = mask[2, 3:] = False
    return x, mask


def twin_layers(keras_cls, ours_cls, bidirectional, x, mask):
    """The Keras layer and ours, built on x, ours holding the Keras layer's weights."""

    def make(cls):
        rnn = cls(8, return_sequences=True, return_state=True)
        layer = keras.layers.Bidirectional(rnn) if bidirectional else rnn
        layer(x, mask=mask)
        return layer

    theirs, ours = make(keras_cls), make(ours_cls)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def outputs_and_grads(layer, x, **kwargs):
    """The layer's outputs (sequence, states) and the gradients of a loss of all of them."""
    with tf.GradientTape() as tape:
        outs = layer(x, **kwargs)
        loss = tf.reduce_sum(outs[0] ** 2) + sum(tf.reduce_sum(s * 1.5) for s in outs[1:])
    return [np.asarray(o) for o in outs], tape.gradient(loss, layer.trainable_variables)


def assert_close(a, b):
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("keras_cls, ours_cls", PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_masked_sequences_match_keras(keras_cls, ours_cls, bidirectional):
    x, mask = inputs()
    theirs, ours = twin_layers(keras_cls, ours_cls, bidirectional, x, mask)
    (their_out, their_grads), (our_out, our_grads) = (
        outputs_and_grads(layer, x, mask=mask) for layer in (theirs, ours)
    )
    assert_close(their_out, our_out)
    assert_close(their_grads, our_grads)
    # padding steps keep the state: row 2's final forward state is its step-3 output
    np.testing.assert_allclose(our_out[0][2, 2, :8], our_out[1][2], rtol=1e-6)


@pytest.mark.parametrize("keras_cls, ours_cls", PAIRS, ids=PAIR_IDS)
def test_one_step_with_a_start_state_matches_keras(keras_cls, ours_cls):
    """The decoding case: one time step, no mask, the state carried in."""
    x, mask = inputs()
    theirs, ours = twin_layers(keras_cls, ours_cls, False, x, mask)
    n_states = 2 if keras_cls is keras.layers.LSTM else 1
    start = [
        np.random.default_rng(i).standard_normal((4, 8)).astype("float32") for i in range(n_states)
    ]
    for steps in (1, 3):
        (their_out, their_grads), (our_out, our_grads) = (
            outputs_and_grads(layer, x[:, :steps], initial_state=start) for layer in (theirs, ours)
        )
        assert_close(their_out, our_out)
        assert_close(their_grads, our_grads)


def test_cell_dropout_runs_keras_own_loop():
    """Dropout inside the cell is Keras' own: the layer trains through Keras' loop."""
    x, _ = inputs()
    layer = recurrent.LSTM(8, dropout=0.5, seed=1)
    assert layer._keras_loop(training=True) and not layer._keras_loop(training=False)
    twin = keras.layers.LSTM(8, dropout=0.5, seed=1)
    twin(x)
    layer(x)
    layer.set_weights(twin.get_weights())
    keras.utils.set_random_seed(3)
    theirs = twin(x, training=True)
    keras.utils.set_random_seed(3)
    np.testing.assert_allclose(layer(x, training=True), theirs, rtol=1e-6)


def test_the_keras_internals_we_use_are_still_there():
    """Fails loudly when Keras changes the two internals recurrent.py relies on: the
    `RNN.inner_loop` method our layers override and `keras.src.backend.rnn`."""
    import inspect

    from keras.src.backend import rnn

    for cls in (keras.layers.LSTM, keras.layers.GRU):
        params = list(inspect.signature(cls.inner_loop).parameters)
        assert params == ["self", "sequences", "initial_state", "mask", "training"], params
    wanted = {"go_backwards", "mask", "unroll", "input_length", "zero_output_for_mask"}
    assert wanted | {"return_all_outputs"} <= set(inspect.signature(rnn).parameters)
    # the loop itself: a running sum; a masked step keeps the state and repeats the output
    layer = recurrent.LSTM(2, return_sequences=True)
    x = tf.constant(np.arange(1.0, 5.0, dtype="float32").reshape(1, 4, 1))
    mask = tf.constant([[True, True, True, False]])
    last, outputs, (total,) = recurrent.time_loop(
        lambda x_t, states: (states[0] + x_t, [states[0] + x_t]),
        x,
        [tf.zeros((1, 1))],
        layer,
        mask,
    )
    assert outputs.numpy()[0, :, 0].tolist() == [1.0, 3.0, 6.0, 6.0]
    assert float(total[0, 0]) == 6.0 and float(last[0, 0]) == 6.0
