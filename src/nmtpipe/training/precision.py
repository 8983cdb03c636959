"""train.precision: Keras mixed precision where the hardware has the type, else float32.

`auto` (the default) trains in mixed_bfloat16 where the hardware computes bfloat16 (a
CPU with avx512_bf16 or amx_bf16, a GPU of compute capability 8.0 or more) and in
float32 elsewhere: CPUs without bfloat16 units emulate it, slower than float32.

Under a mixed policy the layers compute in bfloat16 or float16 and keep float32
weights; attention softmax, the loss and the metrics cast to float32 (model/), and
Keras wraps the optimizer in loss scaling for float16. The model directory is
loaded under the default float32 policy: translation computes in float32 from the
same float32 weights.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import keras
import tensorflow as tf

log = logging.getLogger(__name__)

BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags with bfloat16 arithmetic


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is not readable)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    return set(next(lines, ":").split(":", 1)[1].split())


def supported_precision(
    requested: str, flags: set[str], gpus: int, gpu_bfloat16: bool = False
) -> tuple[str, str]:
    """(policy to train with, why it differs from `requested`, or '').

    flags: the CPU's feature flags; gpus: visible GPUs; gpu_bfloat16: whether they all
    compute bfloat16 (compute capability 8.0 or more).
    """
    if requested == "auto":
        bfloat16 = gpu_bfloat16 if gpus else bool(flags & set(BFLOAT16_CPU_FLAGS))
        return ("mixed_bfloat16" if bfloat16 else "float32"), ""
    if requested == "float32" or gpus:
        return requested, ""
    if requested == "mixed_bfloat16" and flags & set(BFLOAT16_CPU_FLAGS):
        return requested, ""
    if requested == "mixed_bfloat16":
        why = f"this CPU has no bfloat16 arithmetic ({' or '.join(BFLOAT16_CPU_FLAGS)})"
    else:
        why = "float16 needs a GPU (CPUs emulate it, slower than float32)"
    return "float32", why


def choose_precision(requested: str) -> str:
    """The dtype policy to train with on this machine (a warning when it falls back)."""
    gpus = tf.config.list_physical_devices("GPU")
    policy, why = supported_precision(requested, cpu_flags(), len(gpus), _gpus_bfloat16(gpus))
    if why:
        log.warning("train.precision %s: %s; training in float32", requested, why)
    elif requested == "auto":
        log.info("train.precision auto: %s on this machine", policy)
    return policy


def _gpus_bfloat16(gpus: list) -> bool:
    """Whether every GPU computes bfloat16 natively (compute capability 8.0: Ampere on)."""
    capabilities = [
        tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        for gpu in gpus
    ]
    return bool(capabilities) and all(tuple(c) >= (8, 0) for c in capabilities)


@contextmanager
def dtype_policy(policy: str):
    """Models built inside compute under `policy`; afterwards Keras' default (float32)
    is back, so the models built later (evaluation, translation) compute in float32."""
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")
