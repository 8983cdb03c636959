"""evaluate: translate the test split; write BLEU/chrF/TER, hypotheses and the HTML report."""

from nmtpipe.config import to_dict
from nmtpipe.stages import parse_stage_args


def main(argv=None) -> None:
    args, params = parse_stage_args(
        "evaluate",
        __doc__,
        {
            "model": "model directory",
            "split": "split directory",
            "metrics": "metrics JSON file",
            "timing": "timing JSON file (decoding time and speed)",
            "out": "directory for hypotheses and per-sentence scores",
            "report": "HTML report file",
            "manifest": "download manifest (for the report)",
            "clean_report": "clean stage report (for the report)",
            "live": "train stage dvclive directory (for the report)",
        },
        argv,
        tensorflow=True,
    )
    from nmtpipe.evaluation.evaluate import (  # TensorFlow loads after params check
        Records,
        evaluate_model,
    )

    records = Records(
        args.manifest,
        args.clean_report,
        args.live,
        # what produced the model and the scores (dvc.yaml lists these sections as params)
        {name: to_dict(section) for name, section in vars(params).items() if name != "export"},
    )
    out = {"metrics": args.metrics, "dir": args.out, "report": args.report, "timing": args.timing}
    pair = (params.data.src_lang, params.data.tgt_lang)
    evaluate_model(args.model, args.split, params.evaluate, pair, out, records)
