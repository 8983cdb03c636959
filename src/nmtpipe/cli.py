"""The `nmtpipe` command: the pipeline stages (run by `dvc repro`), `translate`, `preset`,
`bench`."""

from __future__ import annotations

import difflib
import importlib
import os
import sys

from nmtpipe import __version__
from nmtpipe.errors import NmtpipeError, first_line
from nmtpipe.logs import setup_logging

COMMANDS = {
    "download": ("nmtpipe.stages.download", "stage: fetch the corpus named in params.yaml"),
    "clean": ("nmtpipe.stages.clean", "stage: OpusFilter cleaning"),
    "split": ("nmtpipe.stages.split", "stage: grouped train/dev/test split"),
    "tokenize": ("nmtpipe.stages.tokenize", "stage: SentencePiece tokenizers"),
    "encode": ("nmtpipe.stages.encode", "stage: training pairs -> sharded TFRecord ids"),
    "train": ("nmtpipe.stages.train", "stage: train the attention model"),
    "evaluate": ("nmtpipe.stages.evaluate", "stage: BLEU/chrF/TER on the test split"),
    "export": ("nmtpipe.stages.export", "stage: TensorFlow SavedModel for serving"),
    "translate": (
        "nmtpipe.serving.translate",
        "translate stdin (or --input): TensorFlow or CTranslate2 (the Transformer's export)",
    ),
    "serve": (
        "nmtpipe.serving.serve",
        "serve a model over HTTP: LibreTranslate's API and a page (the serve extra)",
    ),
    "preset": (
        "nmtpipe.tools.preset",
        "write a preset's values into params.yaml (--list: presets)",
    ),
    "bench": ("nmtpipe.bench.cli", "training/translation speed vs the machine's matmul roof"),
    "bench-serve": (
        "nmtpipe.bench.serve",
        "batch translation rates, and a server's latency and throughput under load",
    ),
    "bench-scale": (
        "nmtpipe.bench.scale",
        "each data stage's peak memory and time at 1x and 10x a corpus",
    ),
    "compare": (
        "nmtpipe.evaluation.compare",
        "paired significance tests of two experiments, revisions or model dirs; an HTML page",
    ),
    "params-doc": (
        "nmtpipe.tools.params_doc",
        "write docs/params.md and params.yaml's comments from config/ (--check)",
    ),
    "plots-template": (
        "nmtpipe.tools.plots_template",
        "write an offline HTML template for dvc plots",
    ),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<15} {help_text}" for name, (_, help_text) in COMMANDS.items())
    return (
        f"usage: nmtpipe COMMAND [options]   (nmtpipe COMMAND --help for its options)\n\n"
        f"commands:\n{rows}\n"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        (sys.stdout if argv else sys.stderr).write(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"nmtpipe {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        sys.stderr.write(f"nmtpipe: error: unknown command {command!r}{hint}\n")
        return 2
    verbose = os.environ.get("NMTPIPE_VERBOSE") == "1"
    # TensorFlow's C++ log, before it is imported: its errors that matter raise in Python
    # (our one-line error); what it logs at ERROR level on its own is start-up and kernel
    # noise (`oneDNN supports DT_BOOL only on platforms with AVX-512`)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    setup_logging(verbose=verbose)
    try:
        importlib.import_module(COMMANDS[command][0]).main(rest)
    except NmtpipeError as err:
        sys.stderr.write(f"nmtpipe {command}: error: {first_line(err)}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"nmtpipe {command}: interrupted\n")
        return 130
    return 0
