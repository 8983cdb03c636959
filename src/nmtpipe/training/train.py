"""The train stage: fit the encoder-decoder with teacher forcing and early stopping."""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import tensorflow as tf

from nmtpipe import __version__
from nmtpipe.config import Params, TrainConfig, to_dict
from nmtpipe.errors import DataError
from nmtpipe.evaluation.scoring import group_references
from nmtpipe.fileio import atomic_dir, atomic_file, read_split, write_json
from nmtpipe.ids.batches import (
    batches_per_epoch,
    bucket_sizes,
    example_lengths,
    make_dataset,
    make_train_dataset,
    train_batch_sizes,
)
from nmtpipe.ids.encode import encode_pairs
from nmtpipe.ids.records import read_encoded
from nmtpipe.ids.tokenizer import load_tokenizer
from nmtpipe.layout import SIDES, tokenizer_file
from nmtpipe.logs import progress_enabled
from nmtpipe.model.build import build_model
from nmtpipe.modeldir import save_model_dir
from nmtpipe.training import distribute
from nmtpipe.training.averaging import WeightAverage
from nmtpipe.training.callbacks import TIMING, DevBleu, LearningRate, Throughput
from nmtpipe.training.checkpoint import TrainingState, fingerprint
from nmtpipe.training.optimizer import FusedAdam
from nmtpipe.training.precision import choose_precision, dtype_policy
from nmtpipe.training.schedules import learning_rate, schedule_callbacks
from nmtpipe.training.transfer import prepare_model

log = logging.getLogger(__name__)


def set_determinism(seed: int) -> None:
    """Same seed, same machine -> same weights (pitfalls: costs no speed here)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _datasets(split_dir: Path, encoded_dir: Path, tok_dir: Path, params: Params):
    """Encode's stats of the training shards, and the dev batches (in memory)."""
    encoded, _ = read_encoded(encoded_dir)
    for key, value in encoded["params"].items():
        if getattr(params.train, key) != value:
            raise DataError(
                f"{encoded_dir}: encoded with train.{key} {value}, params say "
                f"{getattr(params.train, key)} (run encode)"
            )
    sp_src, sp_tgt = (load_tokenizer(tokenizer_file(tok_dir, side)) for side in SIDES)
    cfg, sizes = params.train, train_batch_sizes(params.train)
    dev = encode_pairs(
        sp_src, sp_tgt, *read_split(split_dir, "dev"), cfg.max_src_len, cfg.max_tgt_len
    )
    if not dev[0]:
        raise DataError("no dev pairs within train.max_src_len/max_tgt_len")
    stats = {
        "train_pairs": encoded["pairs"],
        "train_pairs_too_long": encoded["too_long"],
        "dev_pairs": len(dev[0]),
        "train_tgt_tokens": encoded["tgt_tokens"],
        "train_batches_per_epoch": batches_per_epoch(encoded["lengths"], sizes),
        "src_vocab_size": sp_src.get_piece_size(),
        "tgt_vocab_size": sp_tgt.get_piece_size(),
    }
    buckets = {
        "train split": bucket_sizes(encoded["lengths"]),
        "dev split": bucket_sizes(example_lengths(dev[0], dev[1])),
    }
    return make_dataset(dev[0], dev[1], sizes), stats, buckets


def evenly_spaced(count: int, total: int) -> list[int]:
    """`count` indices spread evenly over range(total), first and last included (all of
    them when count >= total)."""
    if count >= total:
        return list(range(total))
    if count == 1:
        return [0]
    return [round(i * (total - 1) / (count - 1)) for i in range(count)]


def _dev_bleu(split_dir: Path, tok_dir: Path, sentences: int) -> DevBleu:
    """The dev BLEU callback on `sentences` distinct dev sources spread over the split
    (which keeps corpus order: Tatoeba's is by length, so the first ones are the shortest)."""
    sources, refs = group_references(*read_split(split_dir, "dev"))
    chosen = evenly_spaced(sentences, len(sources))
    sp_src, sp_tgt = (load_tokenizer(tokenizer_file(tok_dir, side)) for side in SIDES)
    return DevBleu([sources[i] for i in chosen], [refs[i] for i in chosen], sp_src, sp_tgt)


def train_model(
    split_dir: Path,
    encoded_dir: Path,
    tok_dir: Path,
    params: Params,
    out_dir: Path,
    live_dir: Path,
    timing_path: Path,
    checkpoint_dir: Path | None = None,
) -> dict:
    """Train on encoded_dir's shards (dev: split_dir's), then write the model directory to
    out_dir, dvclive logs to live_dir and the training time, speeds and precision to
    timing_path (JSON).

    With checkpoint_dir, the training state is checkpointed after every epoch into
    checkpoint_dir/KEY, KEY the start of the run's fingerprint (its params, data, code):
    a run with the same inputs resumes from it, and a complete run removes it.
    """
    from dvclive.keras import DVCLiveCallback

    log.info("params: %s", {k: to_dict(v) for k, v in vars(params).items()})
    set_determinism(params.train.seed)
    dev_ds, stats, buckets = _datasets(split_dir, encoded_dir, tok_dir, params)
    log.info(
        "training on %d pairs (%d too long, skipped), dev %d pairs",
        stats["train_pairs"],
        stats["train_pairs_too_long"],
        stats["dev_pairs"],
    )
    model, transfer, precision = _build(params, tok_dir, stats, buckets)
    early = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params.train.patience, restore_best_weights=True
    )
    schedule = schedule_callbacks(params.train)  # [ReduceLROnPlateau] or []
    average = _averaging(params.train, early)
    run = fingerprint(params, split_dir, tok_dir, transfer)
    state = TrainingState(
        checkpoint_dir / run[:16] if checkpoint_dir else None,
        run,
        early,
        plateau=schedule[0] if schedule else None,
        average=average,
        precision=precision,
    )
    first_epoch = state.resume(model, params.train.epochs)
    train_ds, steps = make_train_dataset(
        encoded_dir,
        train_batch_sizes(params.train),
        params.train.seed,
        range(first_epoch, params.train.epochs),
    )
    with atomic_dir(out_dir) as model_tmp, atomic_dir(live_dir) as live_tmp:
        model.fit(
            train_ds,
            validation_data=dev_ds,
            steps_per_epoch=steps,
            initial_epoch=first_epoch,
            shuffle=False,  # train_ds is shuffled, by epoch
            epochs=params.train.epochs,
            callbacks=[  # the figure-adding callbacks run before early stopping and dvclive
                LearningRate(),  # before plateau: logs the rate the epoch trained with
                *schedule,
                _dev_bleu(split_dir, tok_dir, params.train.dev_bleu_sentences),
                early,
                *([average] if average else []),  # after early stopping: reads its best epoch
                DVCLiveCallback(live=state.open_live(live_tmp)),
                Throughput(stats["train_pairs"], stats["train_tgt_tokens"]),  # not in curves
                state,  # last: checkpoints what the callbacks before it did this epoch
            ],
            verbose=1 if progress_enabled() else 2,
        )
        averaged = average.apply(model) if average else []
        summary = {
            **_summary(state.history, stats, model),
            "averaged_epochs": max(len(averaged), 1),
        }
        state.live.summary.update(summary)
        state.live.make_summary()
        config = {
            **_model_config(params, transfer, stats),
            "precision": precision,
            "weights_layout": model.WEIGHTS_LAYOUT,
        }
        save_model_dir(model_tmp, model, {**config, "averaged_epochs": averaged}, tok_dir)
        with atomic_file(timing_path) as timing_tmp:
            timing = _timing(state.history, state.seconds, precision)
            write_json(timing_tmp, timing, sort_keys=False)  # time, precision: dvc exp show
    state.clear()  # only now: a kill before the renames above resumes from it
    log.info(
        "best dev loss %.4f at epoch %d of %d (%.0f s)",
        summary["best_val_loss"],
        summary["best_epoch"],
        summary["epochs_run"],
        timing["train_time_s"],
    )
    return summary


def _build(params: Params, tok_dir: Path, stats: dict, buckets: dict | None = None):
    """The compiled model, after init_from/pretrained vectors/freeze; their record; the
    precision it trains in (train.precision, or float32 where the hardware lacks it).

    The model and its optimizer are built under the train.distribute strategy, which
    model.fit then trains with. Every strategy allowed runs in one process, the chief,
    which writes the checkpoints, curves and model.
    """
    precision = choose_precision(params.train.precision)
    strategy = distribute.strategy(params.train.distribute)
    distribute.check_train(params.train, strategy)
    distribute.check_first_batches(buckets or {}, params.train, strategy)
    with strategy.scope(), dtype_policy(precision):
        model = build_model(params.model, stats["src_vocab_size"], stats["tgt_vocab_size"])
        transfer = prepare_model(model, params, tok_dir)
        compile_model(model, params.train, stats["train_batches_per_epoch"])
        model.optimizer.build(model.trainable_variables)  # here, not outside, on a resume
    log.info("model: %s parameters, %s", f"{model.count_params():,}", precision)
    log.info(
        "distribute: %s, %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync
    )
    return model, transfer, precision


def _averaging(cfg: TrainConfig, early) -> WeightAverage | None:
    """The WeightAverage callback of train.average_last (None: the best epoch alone)."""
    return WeightAverage(cfg.average_last, early) if cfg.average_last > 1 else None


def _model_config(params: Params, transfer: dict, stats: dict) -> dict:
    """config.json of the model directory: what translation and later runs need to know."""
    return {
        "nmtpipe_version": __version__,
        "src_lang": params.data.src_lang,
        "tgt_lang": params.data.tgt_lang,
        "model": to_dict(params.model),
        "train": to_dict(params.train),
        "transfer": transfer,  # files read by prepare_model, with their sha256
        **{k: stats[k] for k in ("src_vocab_size", "tgt_vocab_size")},
    }


def compile_model(model, cfg: TrainConfig, steps_per_epoch: int) -> None:
    """Adam (one kernel per variable: `optimizer.FusedAdam`; learning-rate schedule, its
    beta_2 and epsilon, gradient clipping) and the
    model's own masked, smoothed loss (its cross_entropy metric is the plain per-token
    cross-entropy, comparable across label smoothing)."""
    optimizer = FusedAdam(
        learning_rate(cfg, steps_per_epoch),
        beta_2=cfg.adam_beta2,
        epsilon=cfg.adam_epsilon,
        clipnorm=cfg.clipnorm or None,
    )
    model.compile(optimizer=optimizer, label_smoothing=cfg.label_smoothing)


def _timing(history: dict, seconds: float, precision: str) -> dict:
    """The timing file: training time, mean speeds, each epoch's time (resumed ones too),
    and the precision they were measured in (train.precision auto: the hardware's)."""
    epochs = len(history["epoch_time_s"])
    return {
        "train_time_s": round(seconds, 1),
        "precision": precision,
        **{key: round(sum(history[key]) / epochs, 1) for key in TIMING[1:]},
        "epoch_time_s": [round(value, 1) for value in history["epoch_time_s"]],
    }


def _summary(history: dict, stats: dict, model) -> dict:
    val_loss = history["val_loss"]
    best = min(range(len(val_loss)), key=val_loss.__getitem__)
    return {
        "best_val_loss": round(val_loss[best], 4),
        "best_epoch": best + 1,
        "epochs_run": len(val_loss),
        **(
            {"best_epoch_dev_bleu": round(history["val_bleu"][best], 2)}
            if "val_bleu" in history
            else {}
        ),
        "parameters": int(model.count_params()),
        **stats,
    }
