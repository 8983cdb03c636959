"""tokenize: train SentencePiece models for source and target on the training split."""

from nmtpipe.ids.tokenizer import train_tokenizers
from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "tokenize",
        __doc__,
        {
            "split": "split directory",
            "out": "tokenizer directory",
        },
        argv,
    )
    train_tokenizers(args.split, params.tokenizer, args.out)
