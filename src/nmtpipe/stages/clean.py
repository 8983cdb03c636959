"""clean: run the OpusFilter chain on the raw corpus; report pairs removed per step."""

from nmtpipe.corpus.clean import clean_corpus
from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "clean",
        __doc__,
        {
            "raw": "raw corpus directory",
            "filters": "OpusFilter config template",
            "out": "cleaned corpus directory",
            "report": "JSON report of the counts",
        },
        argv,
    )
    clean_corpus(args.raw, args.filters, params.clean, params.data, args.out, args.report)
