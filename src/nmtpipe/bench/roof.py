"""The machine's matrix-multiply roof, measured in this process, for `nmtpipe bench`.

Three figures: GFLOP/s of float32 `tf.linalg.matmul` on square n x n matrices (2n^3
FLOPs), the most this machine's matmul kernels deliver; the same in bfloat16 at
n = 1024 (fast only where the CPU has bfloat16 arithmetic: AMX, AVX-512 BF16); and
the ceiling of the shape a recurrent layer runs: one step's input and recurrent
matmuls, many steps in a sequential loop (each step waits for the last), as the
decoder runs them.

On a machine shared with other work one slow run says little, so `sample` is
called again and again while the benchmark runs (between training steps) and the
best time of each measurement counts.
"""

from __future__ import annotations

import itertools
import time

import tensorflow as tf

SIZES = (1024, 2048)
BF16, BF16_SIZE = "bfloat16", 1024  # the bfloat16 measurement and its matrix size
STEP_LOOP = 100  # sequential steps per run of the recurrent-step loop


def _seconds(function, *args) -> float:
    """Wall time of one call; eager and tf.function CPU calls return when done."""
    started = time.perf_counter()
    float(tf.reshape(function(*args), [-1])[0])
    return time.perf_counter() - started


class Roof:
    """Best-of-many matmul timings.

    Args:
        batch, in_dim, units, gates: the recurrent step's shape: batch x in_dim by
            in_dim x gates*units (input) plus batch x units by units x gates*units
            (recurrent), gates 4 for an LSTM, 3 for a GRU.
    """

    def __init__(self, batch: int, in_dim: int, units: int, gates: int):
        self.matrices = {n: (tf.random.normal([n, n]), tf.random.normal([n, n])) for n in SIZES}
        self.matrices[BF16] = tuple(tf.cast(m, tf.bfloat16) for m in self.matrices[BF16_SIZE])
        self.step_flops = STEP_LOOP * 2 * batch * gates * units * (in_dim + units)
        x = tf.random.normal([batch, in_dim])
        w_x = tf.random.normal([in_dim, gates * units], stddev=0.05)
        w_h = tf.random.normal([units, gates * units], stddev=0.05)

        @tf.function
        def loop(h):
            for _ in tf.range(STEP_LOOP):
                h = tf.tanh(tf.matmul(x, w_x) + tf.matmul(h, w_h))[:, :units]
            return h

        self.loop, self.h0 = loop, tf.zeros([batch, units])
        self.best: dict[str | int, float] = {}
        self.cycle = itertools.cycle([*self.matrices, "step"])
        for name in [*self.matrices, "step"]:  # warm-up (and tracing), not counted
            self._time(name)

    def _time(self, name: str | int) -> float:
        if name == "step":
            return _seconds(self.loop, self.h0)
        return _seconds(tf.linalg.matmul, *self.matrices[name])

    def sample(self) -> None:
        """Time the next measurement in turn (about 50 ms on 2 cores); keep the best."""
        name = next(self.cycle)
        seconds = self._time(name)
        self.best[name] = min(seconds, self.best.get(name, seconds))

    def measure(self, repeats: int = 5) -> None:
        """Time every measurement `repeats` times."""
        for _ in range(repeats * (len(self.matrices) + 1)):
            self.sample()

    def roof_gflops(self, precision: str) -> float:
        """The matmul roof of a dtype policy: bfloat16's under mixed_bfloat16, float32's
        (the best size) under any other (float16 is measured on no CPU)."""
        figures = self.figures()
        return figures["bfloat16_gflops_n1024" if "bfloat16" in precision else "gflops"]

    def figures(self) -> dict:
        """GFLOP/s per size, the roof (the best size), the recurrent step and its % of the roof."""
        out = {f"gflops_n{n}": round(2 * n**3 / self.best[n] / 1e9, 1) for n in SIZES}
        roof = max(out.values())
        step = round(self.step_flops / self.best["step"] / 1e9, 1)
        return {
            **out,
            "gflops": roof,
            "bfloat16_gflops_n1024": round(2 * BF16_SIZE**3 / self.best[BF16] / 1e9, 1),
            "decoder_step_matmul_gflops": step,
            "decoder_step_matmul_percent": round(100 * step / roof, 1),
        }
