"""Keras LSTM and GRU layers with a faster CPU loop, and the same weights and results.

Keras' own loop (without cuDNN) multiplies each time step's input by the input
kernel inside the loop, and runs a one-step sequence through a loop too. These
layers project the whole input sequence with one matrix multiply before the loop
(in training, the backward pass then also gets one large multiply for the kernel's
gradient instead of one per step), and run a one-step sequence, as in decoding, as
one cell step without a loop. On the 2-core CPU a training step of the Tatoeba
model took about 10% less time (docs/results.md).

The weights, their names and the arithmetic are Keras' (a model saved with
`keras.layers.LSTM` loads into these). With a GPU, cell dropout or GRU
`reset_after=False`, the layers run Keras' own loop (cuDNN where it applies).

Two Keras internals are used, each in one place, and tests/model/test_recurrent.py
fails loudly when Keras changes them: `RNN.inner_loop` (the layer method the time
loop runs in, overridden here) and `keras.src.backend.rnn` (Keras' masked time loop,
which Keras 3 does not export; `time_loop` is its one caller).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


def time_loop(step, inputs, states, layer, mask):
    """Keras' masked time loop (`keras.src.backend.rnn`) with `layer`'s loop options.

    step(x_t, states) -> (output_t, new states); inputs: batch x len x dim. Returns
    (last output, outputs, final states), as `RNN.inner_loop` does.
    """
    from keras.src.backend import rnn  # private: no public equivalent in Keras 3

    return rnn(
        step,
        inputs,
        states,
        go_backwards=layer.go_backwards,
        mask=mask,
        unroll=layer.unroll,
        input_length=inputs.shape[1],
        zero_output_for_mask=layer.zero_output_for_mask,
        return_all_outputs=layer.return_sequences,
    )


class _HoistedInputLoop:
    """Mixin for a keras RNN layer: `inner_loop` with the input projection hoisted.

    Subclasses define `_input_projection(sequences)` and `_step(projected_x, states)`.
    """

    def _keras_loop(self, training) -> bool:
        """Whether to leave the loop to Keras (GPU/cuDNN, dropout inside the cell)."""
        cell = self.cell
        return bool(
            tf.config.list_logical_devices("GPU")
            or cell.recurrent_dropout
            or (training and cell.dropout)
            or not cell.use_bias
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self._keras_loop(training):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        states = list(initial_state)  # RNN.call passes a list
        projected = self._input_projection(sequences)  # batch x len x gates*units
        if mask is None and sequences.shape[1] == 1:  # one decoding step: no loop
            out, states = self._step(projected[:, 0], states)
            return out, out[:, None], states
        return time_loop(self._step, projected, states, self, mask)


@keras.saving.register_keras_serializable(package="nmtpipe")
class LSTM(_HoistedInputLoop, keras.layers.LSTM):
    """keras.layers.LSTM with the input projection outside the time loop."""

    def _input_projection(self, sequences):
        return ops.matmul(sequences, self.cell.kernel) + self.cell.bias

    def _step(self, projected_x, states):
        cell, (h, c) = self.cell, states
        z = projected_x + ops.matmul(h, cell.recurrent_kernel)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)  # Keras' gate order and arithmetic
        i, f = cell.recurrent_activation(z_i), cell.recurrent_activation(z_f)
        c = f * c + i * cell.activation(z_c)
        h = cell.recurrent_activation(z_o) * cell.activation(c)
        return h, [h, c]


@keras.saving.register_keras_serializable(package="nmtpipe")
class GRU(_HoistedInputLoop, keras.layers.GRU):
    """keras.layers.GRU (reset_after=True) with the input projection outside the loop."""

    def _keras_loop(self, training) -> bool:
        return super()._keras_loop(training) or not self.cell.reset_after

    def _input_projection(self, sequences):
        return ops.matmul(sequences, self.cell.kernel) + self.cell.bias[0]

    def _step(self, projected_x, states):
        cell, h = self.cell, states[0]
        inner = ops.matmul(h, cell.recurrent_kernel) + cell.bias[1]
        x_z, x_r, x_h = ops.split(projected_x, 3, axis=-1)
        h_z, h_r, h_h = ops.split(inner, 3, axis=-1)
        z = cell.recurrent_activation(x_z + h_z)
        r = cell.recurrent_activation(x_r + h_r)
        h = z * h + (1 - z) * cell.activation(x_h + r * h_h)
        return h, [h]
