"""Translate sentences with a trained model; `nmtpipe translate`: one line out per line in."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nmtpipe.errors import DataError
from nmtpipe.logs import progress

log = logging.getLogger(__name__)
MAX_INPUT_PIECES = 256  # longer inputs are truncated: far beyond any training sentence


def _truncate(ids: list[int], eos_id: int) -> list[int]:
    return ids if len(ids) <= MAX_INPUT_PIECES else ids[: MAX_INPUT_PIECES - 1] + [eos_id]


def translate_sentences(
    trained, sentences: list[str], settings, batch_size: int = 64, desc: str = "translate"
) -> list[str]:
    """Translate sentences in batches of similar length; one output per input, order kept.

    Args:
        trained: a `modeldir.TrainedModel`; its decoder for `settings` (a
            `search.decoders.SearchSettings`) is made once and kept in
            `trained.decoders`, so later calls reuse its compiled graph.
        sentences: the sources. Blank ones translate to empty outputs; inputs longer
            than MAX_INPUT_PIECES subword pieces are truncated, with a warning.
        batch_size: sentences decoded per batch.
        desc: the progress bar's label.
    """
    from nmtpipe.ids.encode import encode_source
    from nmtpipe.model.ids import EOS_ID
    from nmtpipe.search.decoders import make_decoder

    if settings not in trained.decoders:
        trained.decoders[settings] = make_decoder(trained.model, settings)
    decoder = trained.decoders[settings]
    outputs = [""] * len(sentences)
    todo = [i for i, s in enumerate(sentences) if s.strip()]
    encoded = encode_source(trained.sp_src, [sentences[i] for i in todo])
    src_ids = {i: _truncate(ids, EOS_ID) for i, ids in zip(todo, encoded, strict=True)}
    too_long = sum(len(ids) > MAX_INPUT_PIECES for ids in encoded)
    if too_long:
        log.warning("%d input(s) longer than %d pieces were truncated", too_long, MAX_INPUT_PIECES)
    order = sorted(todo, key=lambda i: len(src_ids[i]))
    with progress(total=len(order), desc=desc, unit=" sent") as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            hyps = decoder.decode_batch([src_ids[i] for i in batch])
            for i, ids in zip(batch, hyps, strict=True):
                outputs[i] = trained.sp_tgt.decode([int(t) for t in ids])
            bar.update(len(batch))
    return outputs


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

    from nmtpipe.modeldir import load_model_dir
    from nmtpipe.search.settings import SearchSettings

    # fails fast, before reading a long stdin (and, for another pair, before TensorFlow loads)
    trained = load_model_dir(args.model, (args.src_lang, args.tgt_lang))
    lines = read_input(args.input)
    settings = SearchSettings(args.beam, args.length_penalty, args.max_len_ratio)
    hyps = translate_sentences(trained, lines, settings, args.batch_size)
    for hyp in hyps:
        sys.stdout.write(hyp.replace("\n", " ") + "\n")  # one line out per line in
    sys.stdout.flush()
