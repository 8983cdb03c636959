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
    )
    # Libraries that are chatty at INFO level.
    for name in ("opusfilter", "absl", "h5py", "matplotlib", "urllib3", "dvclive"):
        logging.getLogger(name).setLevel(logging.WARNING)


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr: on for terminals, forced by NMTPIPE_PROGRESS=1|0."""
    setting = os.environ.get("NMTPIPE_PROGRESS", "")
    disable = {"0": True, "1": False}.get(setting)  # None: only when stderr is a terminal
    return tqdm(iterable, disable=disable, file=sys.stderr, dynamic_ncols=True, **kwargs)
