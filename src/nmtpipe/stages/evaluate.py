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

    pair = (params.data.src_lang, params.data.tgt_lang)
    evaluate_model(args.model, args.split, params.evaluate, pair, args.metrics, args.out)
