"""train.distribute: the tf.distribute strategy the model is built and trained under.

With `mirrored` there is one process, the chief: it alone writes checkpoints, curves
and the model, as without a strategy. The loss divides by the token count of the
whole global batch (model/losses.py), so the summed replica gradients are the
single-device gradient.

Keras 3.15 clips gradients (train.clipnorm) in each replica, before it sums them
(`BaseOptimizer.apply`, then the SUM all-reduce of `_backend_update_step`): once
clipping acts, mirrored updates differ from single-device ones (a warning says so).

`multi_worker` is refused: Keras 3.15's `model.fit` under TensorFlow 2.21's
MultiWorkerMirroredStrategy stops before the first step. Its first batch goes
through `strategy.reduce("MEAN", ...)` to build the model (`_maybe_symbolic_build`),
which fails with "ValueError: Attempt to convert a value (PerReplica:{...}) with an
unsupported type (<class 'tensorflow.python.distribute.values.PerReplica'>) to a
Tensor." (two workers on localhost, a one-Dense-layer model; keras-team/keras#20585).
"""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

from nmtpipe.errors import ConfigError
from nmtpipe.ids.batches import train_batch_sizes

log = logging.getLogger(__name__)

MULTI_WORKER_REFUSAL = (
    "train.distribute multi_worker is not supported with Keras "
    "{keras} / TensorFlow {tf}: model.fit under MultiWorkerMirroredStrategy fails "
    "(keras-team/keras#20585); use mirrored (the GPUs of one machine)"
)


def strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of train.distribute `name` (auto | none | mirrored | multi_worker).

    none: the default strategy (one device). mirrored: MirroredStrategy over the
    visible logical GPUs, else over the logical CPUs (one, unless split with
    `tf.config.set_logical_device_configuration`). auto: mirrored when more than
    one GPU is visible, else none. multi_worker: a ConfigError (see the module).
    """
    if name == "multi_worker":
        raise ConfigError(MULTI_WORKER_REFUSAL.format(keras=keras.__version__, tf=tf.__version__))
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "none"
    if name == "none":
        return tf.distribute.get_strategy()
    devices = [device.name for device in gpus or tf.config.list_logical_devices("CPU")]
    log.info("mirrored over %s", ", ".join(devices))
    return tf.distribute.MirroredStrategy(devices)


def check_train(cfg, strategy: tf.distribute.Strategy) -> None:
    """Refuse a train.batch_size that does not split evenly over the replicas; warn
    that train.clipnorm clips each replica's gradients.

    Keras 3.15's fit and evaluate build the model from their first batch averaged over
    the replicas (`strategy.reduce("MEAN", ...)`), which fails when the replicas' parts
    differ in size. Later partial batches (a bucket's last) may split unevenly.
    """
    replicas = strategy.num_replicas_in_sync
    sizes = sorted(set(train_batch_sizes(cfg)))
    if cfg.max_tokens and any(size % replicas for size in sizes):
        raise ConfigError(
            f"train.max_tokens {cfg.max_tokens} gives batches of {sizes} pairs, not all "
            f"multiples of the "
            f"{replicas} replicas of train.distribute (raise train.max_tokens)"
        )
    if cfg.batch_size % replicas:
        raise ConfigError(
            f"train.batch_size {cfg.batch_size} must be a multiple of the {replicas} replicas "
            "of train.distribute (Keras' fit fails on a first batch that splits unevenly)"
        )
    if replicas > 1 and cfg.clipnorm:
        log.warning(
            "train.clipnorm %g: Keras clips each replica's gradients before summing them, "
            "so once clipping acts the updates differ from one-device training",
            cfg.clipnorm,
        )


def check_first_batches(buckets: dict[str, dict[int, int]], cfg, strategy) -> None:
    """Refuse data whose first batch could split unevenly over the replicas.

    buckets: each split's pairs per length bucket. _bucketed emits a bucket's batch
    when it is full, partial ones only at the end: a split with a bucket that fills its
    batch starts with a full batch, which splits evenly.
    """
    if strategy.num_replicas_in_sync == 1:
        return
    sizes = train_batch_sizes(cfg)
    for split, counts in buckets.items():
        largest = max(counts.values())
        if not any(count >= sizes[bucket] for bucket, count in counts.items()):
            raise ConfigError(
                f"the {split} has no length bucket of train.batch_size {cfg.batch_size} pairs "
                f"(at most {largest}): with train.distribute over several replicas Keras' fit "
                "needs a full first batch; lower train.batch_size or use a bigger split"
            )
