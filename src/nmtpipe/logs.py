"""Logging set-up, progress bars (switchable with NMTPIPE_PROGRESS=0/1) and a quiet
TensorFlow start (NMTPIPE_VERBOSE=1 shows its C++ start-up log)."""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

from tqdm.auto import tqdm


def setup_logging(verbose: bool = False) -> None:
    """Configure the root logger once, in the entry point."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,  # rebind to the current stderr when called again in one process
    )
    # Libraries that are chatty at INFO level.
    for name in ("opusfilter", "absl", "h5py", "matplotlib", "urllib3", "dvclive"):
        logging.getLogger(name).setLevel(logging.WARNING)


# TensorFlow's C++ start-up lines on a CPU machine: absl's banner, I/W lines (oneDNN,
# CUDA stubs, CPU features and their continuation line) and the failed cuInit
# (`E0000 ... cuda_platform.cc ... UNKNOWN ERROR (303)`) where there is no GPU.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IW]\d{4} |E\d{4} .*\bcu(da|Init)|"
    r"To enable the following instructions)"
)


def quiet_tensorflow() -> None:
    """Import TensorFlow and initialise its devices with the C++ start-up log hidden.

    Those lines go straight to file descriptor 2, whatever TF_CPP_MIN_LOG_LEVEL says,
    and a new user reads `failed call to cuInit` as a failure. Anything else written
    meanwhile (a real error) is written to stderr afterwards. Does nothing when
    TensorFlow is already imported or NMTPIPE_VERBOSE=1.
    """
    if "tensorflow" in sys.modules or os.environ.get("NMTPIPE_VERBOSE") == "1":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's probe (cuInit) runs here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not _STARTUP_NOISE.match(line)))


def progress_enabled() -> bool:
    """Progress bars: on for terminals; NMTPIPE_PROGRESS=1 or 0 forces them on or off."""
    setting = os.environ.get("NMTPIPE_PROGRESS", "")
    return {"0": False, "1": True}.get(setting, sys.stderr.isatty())


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr, shown when progress_enabled()."""
    return tqdm(
        iterable, disable=not progress_enabled(), file=sys.stderr, dynamic_ncols=True, **kwargs
    )
