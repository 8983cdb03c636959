"""evaluate: translate the test split; write BLEU/chrF/TER, hypotheses and a report."""

from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "evaluate",
        __doc__,
        {
            "model": "model directory",
            "split": "split directory",
            "metrics": "metrics JSON file",
            "out": "directory for hypotheses, scores, report",
        },
        argv,
    )
    from nmtpipe.evaluate import evaluate_model  # TensorFlow loads only after params are valid

    evaluate_model(args.model, args.split, params.evaluate, args.metrics, args.out)
