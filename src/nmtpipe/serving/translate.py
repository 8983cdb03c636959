"""`nmtpipe translate`: one line out per line in, with either engine (`search.translator`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nmtpipe.errors import DataError
from nmtpipe.modeldir import CT2_DIR, is_ctranslate2_dir
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import ENGINES, load_engine, translate_sentences

log = logging.getLogger(__name__)
# the pipeline's model (dvc.yaml: train's and export's outputs), when --model is not given
PIPELINE_MODEL, PIPELINE_EXPORT = Path("data/model"), Path("data/export")


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


def default_model(engine: str) -> Path:
    """The pipeline's model: its CTranslate2 export when there is one (or when asked for),
    else the trained-model directory."""
    exported = PIPELINE_EXPORT / CT2_DIR
    if engine == "ctranslate2" or (engine == "auto" and is_ctranslate2_dir(exported)):
        return exported
    return PIPELINE_MODEL


def parse_search_args(parser: argparse.ArgumentParser) -> None:
    """The language and search options (translate's and serve's); defaults are
    SearchSettings'."""
    defaults = SearchSettings()
    parser.add_argument("--src-lang", help="refuse a model that does not translate from this")
    parser.add_argument("--tgt-lang", help="refuse a model that does not translate into this")
    parser.add_argument(
        "--beam", type=int, default=defaults.beam_size, help="beam size (1 = greedy search)"
    )
    parser.add_argument(
        "--length-penalty",
        type=float,
        default=defaults.length_penalty,
        help="beam search: rank by log-probability / length**length_penalty",
    )
    parser.add_argument(
        "--max-len-ratio",
        type=float,
        default=defaults.max_len_ratio,
        help="at most this many target pieces per source piece, plus 10",
    )


def search_settings(args: argparse.Namespace) -> SearchSettings:
    """The SearchSettings of parse_search_args' options (checked by each command's parser)."""
    return SearchSettings(args.beam, args.length_penalty, args.max_len_ratio)


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nmtpipe translate",
        description="Translate sentences (one per line) from stdin or --input to stdout.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="a trained model directory or a CTranslate2 directory (default: "
        f"{PIPELINE_EXPORT / CT2_DIR} when exported, else {PIPELINE_MODEL})",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto (default): CTranslate2 for a CTranslate2 directory, else TensorFlow",
    )
    parser.add_argument("--input", type=Path, help="file to translate (default: stdin)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch")
    parse_search_args(parser)
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.beam < 1:
        parser.error("--batch-size and --beam must be at least 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    model = args.model or default_model(args.engine)
    # fails fast, before reading a long stdin (and, for another pair, before TensorFlow loads)
    engine = load_engine(model, args.engine, (args.src_lang, args.tgt_lang))
    log.info("translating with %s (%s)", engine.name, model)
    lines = read_input(args.input)
    settings = search_settings(args)
    hyps = translate_sentences(engine, lines, settings, args.batch_size)
    for hyp in hyps:
        sys.stdout.write(hyp.replace("\n", " ") + "\n")  # one line out per line in
    sys.stdout.flush()
