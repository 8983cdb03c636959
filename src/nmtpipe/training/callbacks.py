"""Keras callbacks that add per-epoch figures to the training logs (and so to dvclive).

They must run before DVCLiveCallback in the callback list: it logs whatever the
logs dict holds when its own on_epoch_end runs. Keys starting with "val_" become
dvclive's eval/ curves, the others train/ curves. Throughput is the exception: it
runs after DVCLiveCallback, so that timings stay out of the curves (the train stage
writes them to its timing file).
"""

from __future__ import annotations

import time

import keras

from nmtpipe.evaluation.scoring import score_bleu
from nmtpipe.modeldir import TrainedModel
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.tensorflow_engine import TensorFlowEngine
from nmtpipe.search.translator import translate_sentences

TIMING = ("epoch_time_s", "pairs_per_s", "tgt_tokens_per_s")  # the logs Throughput adds


class Throughput(keras.callbacks.Callback):
    """Adds epoch wall time (training + dev pass) and pairs/target tokens per second
    (TIMING), after DVCLiveCallback has logged the epoch: timings differ run to run."""

    def __init__(self, pairs: int, tgt_tokens: int):
        super().__init__()
        self.pairs, self.tgt_tokens = pairs, tgt_tokens
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.started
        if logs is not None:
            logs["epoch_time_s"] = seconds
            logs["pairs_per_s"] = self.pairs / seconds
            logs["tgt_tokens_per_s"] = self.tgt_tokens / seconds


class LearningRate(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate (after any schedule) to the logs.

    For a LearningRateSchedule, Keras' `optimizer.learning_rate` is the schedule
    evaluated at `optimizer.iterations` (the next update's rate); otherwise the
    variable that ReduceLROnPlateau lowers.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            lr = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))


class DevBleu(keras.callbacks.Callback):
    """Adds val_bleu: greedy-search BLEU on a fixed sample of dev sources.

    Args:
        sources: the dev sample's distinct source sentences (the same every epoch).
        refs: all reference translations of each source.
        sp_src, sp_tgt: the SentencePiece tokenizers.
        batch_size: sentences decoded per batch.
    """

    def __init__(self, sources: list[str], refs: list[list[str]], sp_src, sp_tgt, batch_size=64):
        super().__init__()
        self.sources, self.refs = sources, refs
        self.sp_src, self.sp_tgt, self.batch_size = sp_src, sp_tgt, batch_size
        self.engine = None

    def on_train_begin(self, logs=None):
        # its greedy decoder is traced on the first epoch and reused by the later ones
        self.engine = TensorFlowEngine(TrainedModel(self.model, {}, self.sp_src, self.sp_tgt))

    def on_epoch_end(self, epoch, logs=None):
        if logs is None or not self.sources:
            return
        hyps = translate_sentences(
            self.engine, self.sources, SearchSettings(), self.batch_size, desc="dev BLEU"
        )
        logs["val_bleu"] = score_bleu(hyps, self.refs)
