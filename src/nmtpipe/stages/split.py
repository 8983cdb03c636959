"""split: grouped, seeded train/dev/test split of the cleaned corpus."""

from nmtpipe.corpus.split import split_corpus
from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "split",
        __doc__,
        {
            "clean": "cleaned corpus directory",
            "out": "split directory",
        },
        argv,
    )
    split_corpus(args.clean, params.split, args.out)
