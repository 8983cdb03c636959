"""encode: the training split as subword ids in shuffled, sharded TFRecord files."""

from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "encode",
        __doc__,
        {
            "split": "split directory",
            "tokenizers": "tokenizer directory",
            "out": "encoded directory (TFRecord shards and their stats)",
        },
        argv,
        tensorflow=True,
    )
    from nmtpipe.ids.encode import encode_split  # TensorFlow loads only after params are valid

    encode_split(args.split, args.tokenizers, params.train, args.out)
