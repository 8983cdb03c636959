"""download: fetch the corpus named by data.* into raw line-aligned files + manifest."""

from nmtpipe.corpus.download import download_corpus
from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args("download", __doc__, {"out": "raw corpus directory"}, argv)
    download_corpus(params.data, args.out)
