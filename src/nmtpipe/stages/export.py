"""export: write a TensorFlow SavedModel that translates raw strings (greedy search) and, for
the Transformer, a CTranslate2 model in its ctranslate2/ subdirectory."""

from nmtpipe.cores import start_tensorflow
from nmtpipe.modeldir import require_model
from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "export",
        __doc__,
        {
            "model": "model directory",
            "out": "export directory (the SavedModel; ctranslate2/ for the Transformer)",
        },
        argv,
    )
    require_model(args.model)  # before TensorFlow loads: a missing model fails in a second
    start_tensorflow()
    from nmtpipe.serving.export import export_model

    export_model(args.model, args.out, params.export)
