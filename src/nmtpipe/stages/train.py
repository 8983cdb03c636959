"""train: fit the attention encoder-decoder (resumable); write the model directory and curves."""

from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "train",
        __doc__,
        {
            "split": "split directory",
            "tokenizers": "tokenizer directory",
            "out": "model directory",
            "live": "dvclive directory (metrics, plots)",
            "checkpoints": "checkpoint directory: resume an interrupted run from it",
        },
        argv,
    )
    from nmtpipe.training.train import train_model  # TensorFlow loads only after params are valid

    train_model(args.split, args.tokenizers, params, args.out, args.live, args.checkpoints)
