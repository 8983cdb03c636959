"""export: write a TensorFlow SavedModel that translates raw strings (greedy search)."""

from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "export",
        __doc__,
        {
            "model": "model directory",
            "out": "SavedModel directory",
        },
        argv,
    )
    from nmtpipe.serving.export import export_model  # TensorFlow loads only after params are valid

    export_model(args.model, args.out, params.export)
