"""Resumable training: the whole training state, checkpointed after every epoch.

`nmtpipe train --checkpoints DIR` keeps the newest checkpoint of a run,
`DIR/KEY/epoch-NNNN` (KEY = the start of the run's fingerprint, below; NNNN = epochs
completed): runs with other inputs keep theirs beside it, and DIR is no DVC output,
so DVC's run-cache stays on for train. Each is written into a temporary directory, renamed
into place when complete, and only then is the older one deleted, so a kill at
any moment leaves a whole checkpoint. It holds everything the next run needs to
continue as if it had never stopped:

    state.json        the run's fingerprint, epochs completed, whether early stopping
                      ended training, EarlyStopping's counters, every epoch's logs so
                      far, training seconds so far, the shapes of the variables below
    variables.npz     the model's variables (weights and the dropout layers'
                      seed-generator states) and the optimizer's (Adam moments,
                      iteration count, learning rate)
    best_weights.npz  EarlyStopping's best weights so far (restore_best_weights)
    average.npz       with train.average_last: the epochs' weights kept for averaging
    live/             the dvclive directory so far, so the curves continue

The shuffle order needs no state: epoch e's order is drawn from (seed, e) alone
(ids.batches.make_train_dataset). A checkpoint is resumed only when its fingerprint
(params, training data, tokenizers, transfer inputs, code and library versions)
and the precision it trained in (train.precision auto resolves per machine) are
the run's; otherwise it is deleted. A complete run deletes its directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from nmtpipe import __version__
from nmtpipe.config import Params, to_dict
from nmtpipe.fileio import atomic_dir, sha256_file, write_json
from nmtpipe.layout import SIDES, split_files, tokenizer_file
from nmtpipe.training.averaging import WeightAverage

log = logging.getLogger(__name__)

FORMAT = 2  # bump when the checkpoint layout changes
STATE = "state.json"
EARLY_STOPPING_STATE = ("wait", "best", "best_epoch", "stopped_epoch")
PLATEAU_STATE = {"wait": int, "best": float, "cooldown_counter": int}  # ReduceLROnPlateau


def fingerprint(params: Params, split_dir: Path, tok_dir: Path, transfer: dict) -> str:
    """sha256 of everything that decides the training trajectory.

    Args:
        params: the run's params (its model and train sections and language pair).
        split_dir, tok_dir: the training and dev split, the tokenizers (hashed by content).
        transfer: the files read by prepare_model, with their sha256.
    """
    files = [*split_files(split_dir, "train"), *split_files(split_dir, "dev")]
    files += [tokenizer_file(tok_dir, side) for side in SIDES]
    facts = {
        "format": FORMAT,
        "languages": [params.data.src_lang, params.data.tgt_lang],
        "model": to_dict(params.model),
        "train": to_dict(params.train),
        "transfer": transfer,
        "files": [sha256_file(path) for path in files],
        "code": _code_digest(),
        "versions": [__version__, keras.__version__, tf.__version__],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _code_digest() -> str:
    """sha256 of nmtpipe's source: a checkpoint of other code is not resumed."""
    package = Path(__file__).parents[1]  # the whole nmtpipe package
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _variables(model: keras.Model) -> list:
    """The model's variables (incl. seed-generator states), then the optimizer's."""
    return [*model.variables, *model.optimizer.variables]


def _shapes(variables: list) -> list:
    return [[list(v.shape), str(v.dtype)] for v in variables]


def _plain(value, kind):
    """A callback counter as JSON data (None stays None)."""
    return None if value is None else kind(value)


def _checkpoints(root: Path) -> list[Path]:
    """The complete checkpoints in root, oldest first."""
    found = [p for p in root.glob("epoch-*") if p.is_dir() and p.name[6:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[6:]))


class TrainingState(keras.callbacks.Callback):
    """Tracks the training state; with a directory, checkpoints it every epoch and resumes.

    Put it last in the callback list: it saves what EarlyStopping and DVCLiveCallback
    did in the same epoch, and it restores EarlyStopping after that callback's own
    on_train_begin reset. Call resume() before fit and open_live() for the dvclive
    directory; after fit, `history` holds every epoch's logs, resumed ones included.

    Args:
        root: the run's checkpoint directory, DIR/KEY (None: keep nothing on disk, never
            resume).
        fingerprint: identifies the run (see fingerprint()).
        early: the EarlyStopping callback whose state is saved and restored.
        plateau: the ReduceLROnPlateau callback (train.lr_schedule: plateau), if any,
            whose counters are saved and restored too (the rate itself is an
            optimizer variable).
        average: the WeightAverage callback (train.average_last), if any, whose kept
            weights are saved and restored too.
        precision: the dtype policy this run trains in (train.precision resolved on this
            machine): a checkpoint trained in another one is not resumed, and says so.
    """

    def __init__(
        self,
        root: Path | None,
        fingerprint: str,
        early: keras.callbacks.EarlyStopping,
        plateau: keras.callbacks.ReduceLROnPlateau | None = None,
        average: WeightAverage | None = None,
        precision: str = "float32",
    ):
        super().__init__()
        self.root, self.fingerprint, self.early = root, fingerprint, early
        self.precision = precision
        self.plateau, self.average = plateau, average
        self.epochs_done = 0
        self.history: dict[str, list[float]] = {}
        self.seconds_before = 0.0
        self.live_dir: Path | None = None
        self.live = None  # the dvclive Live of open_live()
        self._resumed: dict | None = None  # the state.json read by resume()
        self._resumed_path: Path | None = None
        self._best_weights: list = []  # EarlyStopping's, from the resumed checkpoint
        self._averaged: dict = {}  # WeightAverage's arrays, from the resumed checkpoint
        self._started = time.perf_counter()

    def resume(self, model: keras.Model, epochs: int) -> int:
        """Restore the model and optimizer from this run's checkpoint, if there is one.

        Returns the first epoch (0-based) to train: 0 without a checkpoint, `epochs`
        when the checkpointed run had already ended (early stopping or last epoch).
        """
        if self.root is None:
            return 0
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".epoch-*.tmp-*"):  # a checkpoint write that was killed
            shutil.rmtree(stale)
        found = _checkpoints(self.root)
        if not found:
            return 0
        path = found[-1]
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        loaded = self._load(path, _variables(model))
        if loaded is None:
            log.info(
                "checkpoint is for other params/data: starting over (deleted %s; params, "
                "data, tokenizers and code must be the same to resume)",
                path,
            )
            self.clear()
            self.root.mkdir(parents=True)
            return 0
        state, values, self._best_weights = loaded
        for variable, value in zip(_variables(model), values, strict=True):
            variable.assign(value)
        self._resumed, self._resumed_path = state, path
        self.epochs_done, self.history = state["epoch"], state["history"]
        self.seconds_before = state["train_seconds"]
        if state["stopped"] or self.epochs_done >= epochs:
            log.info(
                "resuming after epoch %d of %d, where training had ended (checkpoint %s)",
                self.epochs_done,
                epochs,
                self.root,
            )
            return epochs
        log.info(
            "resuming from epoch %d of %d (checkpoint %s)", self.epochs_done + 1, epochs, self.root
        )
        return self.epochs_done

    def _load(self, path: Path, variables: list) -> tuple[dict, list, list] | None:
        """(state, variable values, best weights) of the checkpoint at path if it is
        this run's (same fingerprint, same variables), else None."""
        try:
            state = json.loads((path / STATE).read_text(encoding="utf-8"))
            if state.get("fingerprint") != self.fingerprint:
                return None
            if state.get("precision") != self.precision:
                log.warning(
                    "%s trained in %s, this machine trains in %s (train.precision): not "
                    "resuming it in another precision",
                    path,
                    state.get("precision"),
                    self.precision,
                )
                return None
            if state.get("shapes") != _shapes(variables):
                return None
            with np.load(path / "variables.npz") as arrays:
                values = [arrays[f"v{num:05d}"] for num in range(len(variables))]
            with np.load(path / "best_weights.npz") as arrays:
                best = [arrays[f"w{num:05d}"] for num in range(len(arrays.files))]
            if self.average is not None:
                with np.load(path / "average.npz") as arrays:
                    self._averaged = {name: arrays[name] for name in arrays.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            log.warning("%s: unreadable checkpoint (%s)", path, err)
            return None
        return state, values, best

    def open_live(self, live_dir: Path):
        """A dvclive Live writing into live_dir that continues the resumed run's curves."""
        from dvclive import Live

        self.live_dir = live_dir
        resumed = self._resumed_path is not None
        if resumed and (self._resumed_path / "live").is_dir():
            shutil.copytree(self._resumed_path / "live", live_dir, dirs_exist_ok=True)
        live = Live(
            dir=str(live_dir), resume=resumed, dvcyaml=False, save_dvc_exp=False, report=None
        )
        if resumed:  # dvclive's own resume reads step 0 (one epoch done) as "start at 0"
            live.step = self.epochs_done
        self.live = live
        return live

    @property
    def seconds(self) -> float:
        """Training time so far, the checkpointed runs' included."""
        return self.seconds_before + time.perf_counter() - self._started

    def on_train_begin(self, logs=None):
        self._started = time.perf_counter()
        if self._resumed is None:
            return
        for key in EARLY_STOPPING_STATE:
            setattr(self.early, key, self._resumed["early_stopping"][key])
        self.early.best_weights = self._best_weights or None
        if self.plateau is not None:
            for key in PLATEAU_STATE:
                setattr(self.plateau, key, self._resumed["plateau"][key])
        if self.average is not None:
            self.average.set_state(self._resumed["average"], self._averaged)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.epochs_done = epoch + 1
        if self.root is not None:
            self._save()

    def _save(self) -> None:
        """Write epoch-NNNN atomically, then delete the older checkpoints."""
        name = f"epoch-{self.epochs_done:04d}"
        variables = _variables(self.model)
        with atomic_dir(self.root / name) as tmp:
            np.savez(
                tmp / "variables.npz", **{f"v{n:05d}": v.numpy() for n, v in enumerate(variables)}
            )
            best = self.early.best_weights or []
            np.savez(tmp / "best_weights.npz", **{f"w{n:05d}": w for n, w in enumerate(best)})
            averaged = None
            if self.average is not None:
                averaged, arrays = self.average.get_state()
                np.savez(tmp / "average.npz", **arrays)
            if self.live_dir is not None:
                shutil.copytree(self.live_dir, tmp / "live")
            write_json(tmp / STATE, {**self._state(variables), "average": averaged})
        for old in _checkpoints(self.root):
            if old.name != name:
                shutil.rmtree(old)

    def _state(self, variables: list) -> dict:
        early = self.early
        return {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "precision": self.precision,
            "epoch": self.epochs_done,
            "stopped": bool(self.model.stop_training),
            "early_stopping": {
                "wait": int(early.wait),
                "best": None if early.best is None else float(early.best),
                "best_epoch": int(early.best_epoch),
                "stopped_epoch": int(early.stopped_epoch),
            },
            "plateau": None
            if self.plateau is None
            else {
                key: _plain(getattr(self.plateau, key), kind) for key, kind in PLATEAU_STATE.items()
            },
            "history": self.history,
            "train_seconds": self.seconds,
            "shapes": _shapes(variables),
        }

    def clear(self) -> None:
        """Delete the run's checkpoint directory (the run is complete, or it is stale)."""
        if self.root is not None and self.root.is_dir():
            shutil.rmtree(self.root)
