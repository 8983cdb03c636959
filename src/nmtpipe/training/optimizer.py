"""Adam with one fused kernel per variable (TensorFlow's ApplyAdam).

Keras 3's Adam updates each variable with about ten elementwise ops (g - m, its
scaling, the assign, g², ..., sqrt(v) + epsilon, the division, the assign), each a
full pass over the variable with its own temporary: for a 6M-parameter model on a
2-core CPU that is tens of milliseconds a step, a fifth of a bfloat16 step
(`nmtpipe bench`'s optimizer part). `ResourceApplyAdam` does the same update in one
pass over variable, moments and gradient. Same formula as Keras' (no AMSGrad):

    m += (g - m)(1 - beta_1);  v += (g² - v)(1 - beta_2)
    variable -= lr * sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

Same variables too (iterations, the moments), so checkpoints of either resume in
the other. Gradient clipping and the learning-rate schedule stay Keras'. A sparse
gradient (a source embedding's rows) keeps Keras' own update: Keras moves only the
moments of the rows in the batch, which ApplyAdam (dense) would not.

Training's optimizer (`train.compile_model`); tests/training/test_distribute.py checks
it under MirroredStrategy too.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="nmtpipe")
class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam (its arguments), updating each variable with one kernel."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        return tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(m),
            v=_handle(v),
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
            use_locking=False,
        )


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (in a distribution's update,
    the local replica's)."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle
