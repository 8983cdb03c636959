"""One thin module per DVC stage: parse paths and params, call one library function."""

from __future__ import annotations

import argparse
from pathlib import Path

from nmtpipe.config import Params, load_params
from nmtpipe.cores import start_tensorflow


def parse_stage_args(
    name: str, doc: str, paths: dict[str, str], argv: list[str] | None, tensorflow: bool = False
) -> tuple[argparse.Namespace, Params]:
    """Parse `--params` and the stage's required path options; load and validate params.

    tensorflow: the stage runs TensorFlow, imported here (quietly) once params are valid.
    """
    parser = argparse.ArgumentParser(prog=f"nmtpipe {name}", description=doc)
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="params file (default: params.yaml)",
    )
    for option, help_text in paths.items():
        parser.add_argument(
            f"--{option.replace('_', '-')}", type=Path, required=True, help=help_text
        )
    args = parser.parse_args(argv)
    params = load_params(args.params)
    if tensorflow:
        start_tensorflow()
    return args, params
