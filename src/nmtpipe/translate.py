"""`nmtpipe translate`: one translation per input line, order kept."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nmtpipe.errors import DataError

log = logging.getLogger(__name__)


def read_input(path: Path | None) -> list[str]:
    """Lines of a file or of stdin; invalid UTF-8 is replaced (with a warning), not fatal."""
    try:
        data = path.read_bytes() if path else sys.stdin.buffer.read()
    except FileNotFoundError:
        raise DataError(f"{path}: input file not found") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        log.warning("input is not valid UTF-8 (byte %d): undecodable bytes replaced", err.start)
        text = data.decode("utf-8", errors="replace")
    lines = text.removeprefix("\ufeff").split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return [line.removesuffix("\r") for line in lines]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmtpipe translate",
        description="Translate sentences (one per line) from stdin or --input to stdout.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=Path("data/model"),
        help="trained model directory (default: data/model)",
    )
    parser.add_argument("--input", type=Path, help="file to translate (default: stdin)")
    parser.add_argument("--src-lang", help="refuse a model that does not translate from this")
    parser.add_argument("--tgt-lang", help="refuse a model that does not translate into this")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parser.add_argument("--beam", type=int, default=1, help="beam size (1 = greedy search)")
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="beam search: rank by log-probability / length**length_penalty",
    )
    parser.add_argument(
        "--max-len-ratio",
        type=float,
        default=2.0,
        help="at most this many target pieces per source piece, plus 10",
    )
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.beam < 1:
        parser.error("--batch-size and --beam must be at least 1")

    from nmtpipe.model.decoding import translate_sentences
    from nmtpipe.model.store import check_pair, load_model_dir

    trained = load_model_dir(args.model)  # fails fast, before reading a long stdin
    if args.src_lang or args.tgt_lang:
        check_pair(
            trained,
            args.model,
            args.src_lang or trained.config["src_lang"],
            args.tgt_lang or trained.config["tgt_lang"],
        )
    lines = read_input(args.input)
    hyps = translate_sentences(
        trained, lines, args.batch_size, args.max_len_ratio, args.beam, args.length_penalty
    )
    for hyp in hyps:
        sys.stdout.write(hyp.replace("\n", " ") + "\n")  # one line out per line in
    sys.stdout.flush()
