"""Logging set-up and progress bars (switchable with NMTPIPE_PROGRESS=0/1)."""

from __future__ import annotations

import logging
import os
import sys

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


def progress_enabled() -> bool:
    """Progress bars: on for terminals; NMTPIPE_PROGRESS=1 or 0 forces them on or off."""
    setting = os.environ.get("NMTPIPE_PROGRESS", "")
    return {"0": False, "1": True}.get(setting, sys.stderr.isatty())


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr, shown when progress_enabled()."""
    return tqdm(
        iterable, disable=not progress_enabled(), file=sys.stderr, dynamic_ncols=True, **kwargs
    )
