"""How many cores a stage may use: all of this process's, or NMTPIPE_THREADS.

Parallel experiments (`dvc queue start -j N`) share one machine; NMTPIPE_THREADS=k
caps each job's TensorFlow thread pools and OpusFilter processes at k, so N jobs of
k threads fit N * k cores instead of each job using every core.
"""

from __future__ import annotations

import logging
import os

from nmtpipe.errors import ConfigError
from nmtpipe.logs import quiet_tensorflow

log = logging.getLogger(__name__)

THREADS_ENV = "NMTPIPE_THREADS"


def thread_cap() -> int | None:
    """NMTPIPE_THREADS as a positive int, or None when unset or empty."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{THREADS_ENV} must be a positive whole number, got {value!r}")
    return int(value)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at most NMTPIPE_THREADS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cap = thread_cap()
    return min(cores or 1, cap) if cap else cores or 1


def limit_tensorflow_threads() -> None:
    """Cap TensorFlow's intra- and inter-op thread pools at NMTPIPE_THREADS (if set).

    Call before TensorFlow runs its first op: the pools are fixed from then on.
    """
    cap = thread_cap()
    if cap is None:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cap)
        tf.config.threading.set_inter_op_parallelism_threads(cap)
    except RuntimeError:  # this process ran TensorFlow with other pools already
        log.warning("%s=%d comes too late: TensorFlow has started", THREADS_ENV, cap)
        return
    log.info("%s=%d: TensorFlow uses at most %d threads per pool", THREADS_ENV, cap, cap)


def start_tensorflow() -> None:
    """Import TensorFlow quietly (logs.quiet_tensorflow), its pools capped by NMTPIPE_THREADS."""
    quiet_tensorflow()
    limit_tensorflow_threads()
