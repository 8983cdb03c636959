"""train: fit the attention encoder-decoder (resumable); write the model directory and curves."""

from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "train",
        __doc__,
        {
            "split": "split directory (dev split, dev BLEU)",
            "encoded": "encoded training data (TFRecord shards)",
            "tokenizers": "tokenizer directory",
            "out": "model directory",
            "live": "dvclive directory (metrics, plots)",
            "timing": "timing JSON file (training time, pairs/s)",
            "checkpoints": "working directory of checkpoints (one per run's inputs): an "
            "interrupted run resumes from its own",
        },
        argv,
        tensorflow=True,
    )
    from nmtpipe.training.train import train_model  # TensorFlow loads only after params are valid

    train_model(
        args.split,
        args.encoded,
        args.tokenizers,
        params,
        args.out,
        args.live,
        args.timing,
        args.checkpoints,
    )
