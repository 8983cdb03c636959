"""Timed runs for `nmtpipe bench`: the training step, its parts, and translation.

Every timed function is traced during a warm-up first, so that no measurement
includes tracing. Eager and tf.function calls on the CPU return once their
results exist, so wall time around a call is its compute time.
"""

from __future__ import annotations

import logging
import time

import keras
import tensorflow as tf

from nmtpipe.config import PRECISIONS
from nmtpipe.model.build import build_model
from nmtpipe.model.losses import masked_loss
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import Engine, translate_sentences
from nmtpipe.training.precision import cpu_flags, dtype_policy, supported_precision
from nmtpipe.training.train import compile_model, set_determinism

log = logging.getLogger(__name__)


def training_model(trained, model_cfg, train_cfg, precision: str = "float32") -> keras.Model:
    """A fresh model built and compiled exactly as train.py builds and compiles it, under
    the Keras dtype policy `precision` (as asked: no fallback, a benchmark measures it)."""
    set_determinism(train_cfg.seed)
    sizes = trained.sp_src.get_piece_size(), trained.sp_tgt.get_piece_size()
    with dtype_policy(precision):
        model = build_model(model_cfg, *sizes)
    # train.py's own compile (schedule, label smoothing, metrics); the schedule's length
    # (steps per epoch) changes no step's cost.
    compile_model(model, train_cfg, steps_per_epoch=1000)
    return model


def _fn(function, *spec):
    return tf.function(function, input_signature=list(spec))


def _whole_step(model) -> dict:
    """tf.functions of the whole forward pass and of forward + backward (gradients of
    every trainable weight), dropout on."""
    ids = tf.TensorSpec([None, None], tf.int32)

    def forward(src, tgt_in, tgt_out):
        return masked_loss(tgt_out, model((src, tgt_in), training=True))

    def forward_backward(src, tgt_in, tgt_out):
        with tf.GradientTape() as tape:
            loss = forward(src, tgt_in, tgt_out)
        return tape.gradient(loss, model.trainable_variables)

    return {
        "forward": _fn(forward, ids, ids, ids),
        "forward_backward": _fn(forward_backward, ids, ids, ids),
    }


def part_functions(model) -> dict:
    """tf.functions of each part of the training forward pass that the model declares
    (`step_parts`, dropout on), of the whole forward pass, and of forward + backward
    (gradients of every trainable weight)."""
    parts = {name: _fn(function, *spec) for name, (function, spec) in model.step_parts().items()}
    return {**parts, **_whole_step(model)}


def _run_parts(model, parts: dict, batch) -> dict[str, float]:
    """Run every part on one batch, in the model's order (`run_step_parts`); return each
    part's wall time."""
    (src, tgt_in), tgt_out = batch
    seconds = {}

    def run(name, *args):
        started = time.perf_counter()
        result = parts[name](*args)
        seconds[name] = time.perf_counter() - started
        return result

    model.run_step_parts(run, src, tgt_in, tgt_out)
    run("forward", src, tgt_in, tgt_out)
    run("forward_backward", src, tgt_in, tgt_out)
    return seconds


def _step(model, batch) -> float:
    """Seconds of one training step: Keras' own train step, the function `fit` runs."""
    (src, tgt_in), tgt_out = batch
    started = time.perf_counter()
    model.train_on_batch((src, tgt_in), tgt_out)  # returns Python floats: the step is done
    return time.perf_counter() - started


def _run_step(model, parts: dict, batch) -> dict[str, float]:
    """One training step, then every part on the same batch; the wall time of each."""
    return {"step": _step(model, batch), **_run_parts(model, parts, batch)}


def time_precisions(trained, model_cfg, train_cfg, skip: str, warmup, measured) -> dict:
    """The training step (ms, mean over `measured`, best of 2 rounds) in every precision
    but `skip` (measured in full already) that this machine computes natively; for the
    others, why not (what train.precision would fall back from)."""
    gpus = len(tf.config.list_physical_devices("GPU"))
    figures = {}
    for precision in (p for p in PRECISIONS if p not in (skip, "auto")):  # auto: a choice
        _, why = supported_precision(precision, cpu_flags(), gpus)
        if why:
            figures[f"{precision}_step_ms"] = f"not measured: {why}"
            continue
        log.info("training step in %s", precision)
        model = training_model(trained, model_cfg, train_cfg, precision)
        for batch in warmup:
            _step(model, batch)
        best = min(sum(_step(model, batch) for batch in measured) for _ in range(2))
        figures[f"{precision}_step_ms"] = round(1000 * best / len(measured), 1)
    return figures


def time_steps(
    model, warmup: list, measured: list, rounds: int, between=None
) -> dict[str, list[float]]:
    """Seconds of the training step and of each of its parts on every measured batch, the
    best of `rounds`. Step and parts run interleaved, batch by batch, so that they see the
    same machine; on a shared machine the least disturbed run is the best estimate of the
    cost. The warm-up batches trace every function (Keras relaxes its step's shapes after
    the first few; the parts have shape-generic signatures). `between()`, if given, runs
    after every measured batch (the roof's samples)."""
    log.info(
        "training: %d warm-up batches, then %d rounds of %d", len(warmup), rounds, len(measured)
    )
    parts = part_functions(model)
    for batch in warmup:
        _run_step(model, parts, batch)
    runs = []
    for _ in range(rounds):
        runs.append([])
        for batch in measured:
            runs[-1].append(_run_step(model, parts, batch))
            if between is not None:
                between()
    return {
        name: [min(run[i][name] for run in runs) for i in range(len(measured))]
        for name in runs[0][0]
    }


def part_figures(model, batches: list, seconds: dict[str, list[float]]) -> dict:
    """Per training step: ms, share of the step and GFLOP/s of each forward part, of the
    backward pass (forward + backward minus forward) and of the optimizer update with the
    step's other work (the step minus forward + backward)."""
    total = {name: sum(values) for name, values in seconds.items()}
    flops = {}  # per part, in the model's order (a part it does not time has no row)
    for (src, tgt_in), _ in batches:
        for name, value in model.forward_flops(*src.shape, tgt_in.shape[1]).items():
            flops[name] = flops.get(name, 0) + value
    rows = {name: (total[name], flops[name]) for name in flops if name in total}
    backward = max(total["forward_backward"] - total["forward"], 0.0)
    rows["backward"] = (backward, 2 * sum(flops.values()))
    rows["optimizer_and_overhead"] = (max(total["step"] - total["forward_backward"], 0.0), 0)
    return {name: _row(s, f, len(batches), total["step"]) for name, (s, f) in rows.items()}


def _row(seconds: float, flops: int, steps: int, step_seconds: float) -> dict:
    return {
        "ms": round(1000 * seconds / steps, 2),
        "share_percent": round(100 * seconds / step_seconds, 1),
        "gflop": float(f"{flops / steps / 1e9:.4g}"),
        "gflops": round(flops / seconds / 1e9, 2) if seconds else 0.0,
    }


def time_translation(
    engine: Engine, sources: list[str], batch_size: int, settings: SearchSettings, rounds: int
) -> tuple[float, list[str]]:
    """(sentences/s translating `sources` with either engine, the best of `rounds` runs
    after a warm-up batch that traces the TensorFlow decoder's graphs; the translations)."""
    label = f"{engine.name} beam {settings.beam_size}"
    translate_sentences(engine, sources[:8], settings, batch_size, desc="warm-up")
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        hyps = translate_sentences(engine, sources, settings, batch_size, desc=label)
        seconds.append(time.perf_counter() - started)
    return len(sources) / min(seconds), hyps
