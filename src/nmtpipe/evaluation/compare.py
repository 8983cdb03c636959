"""`nmtpipe compare A B`: is B really better than A, or is the difference noise?

A and B are each a model directory (translated here, on the test split) or a git
revision or DVC experiment name, whose reports/eval/scores.tsv and params.yaml
are read with `dvc.api.read` (`workspace`: the files in the working tree). Both
must have been scored on the same test set.

For BLEU, chrF and TER, sacrebleu's paired tests (`sacrebleu.significance`, the
tests behind `sacrebleu --paired-bs/--paired-ar`) compare B with A on the same
sentences: paired bootstrap resampling (bs, also the 95% confidence intervals)
and approximate randomization (ar), seeded (SACREBLEU_SEED, default 12345) so
that a rerun gives the same numbers. B is "better" or "worse" on a metric only
where both tests give p < alpha; TER is an error rate, lower is better.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.significance import PairedTest

from nmtpipe.config import EvaluateConfig, load_params
from nmtpipe.errors import DataError, first_line
from nmtpipe.evaluation.scoring import REF_SEPARATOR, reference_streams
from nmtpipe.fileio import atomic_file
from nmtpipe.layout import SENTENCE_SCORES
from nmtpipe.typedconfig import to_dict

log = logging.getLogger(__name__)
METRICS = (("BLEU", BLEU, True), ("chrF", CHRF, True), ("TER", TER, False))  # higher better?
WORKSPACE = "workspace"
BETTER, WORSE, SAME = "B better", "B worse", "no significant difference"


@dataclass
class System:
    """One side of the comparison: its test set, its translations and the params behind them."""

    name: str  # as given on the command line
    kind: str  # "model directory", "revision" or "workspace"
    sources: list[str]
    hyps: list[str]
    refs: list[list[str]]
    params: dict


@dataclass(frozen=True)
class Verdict:
    """The paired tests of one metric: B against A."""

    metric: str
    scores: tuple[float, float]  # A, B on the whole test set
    # 95%, as sacrebleu: resamples' mean +- half the spread of their middle 95%
    intervals: tuple[tuple[float, float], tuple[float, float]]
    p_bs: float
    p_ar: float
    verdict: str  # BETTER, WORSE or SAME
    signatures: tuple[str, str]  # sacrebleu's, of the bs and the ar test

    @property
    def delta(self) -> float:
        return self.scores[1] - self.scores[0]


def paired_tests(hyps_a, hyps_b, refs, samples: int = 0, alpha: float = 0.05) -> list[Verdict]:
    """BLEU, chrF and TER of B against A on the same sources, with both paired tests.

    Args:
        hyps_a, hyps_b: one translation per source, in the same order.
        refs: the references of each source (one or more).
        samples: bootstrap resamples and randomization trials (0: sacrebleu's
            defaults, 1000 and 10000).
        alpha: the significance level a verdict needs from both tests.
    """
    if not len(hyps_a) == len(hyps_b) == len(refs):
        raise ValueError(f"{len(hyps_a)} and {len(hyps_b)} hypotheses for {len(refs)} sources")
    streams = reference_streams(refs)
    verdicts = []
    for name, make_metric, higher_is_better in METRICS:
        (a, b), sig_bs = _paired_test(hyps_a, hyps_b, streams, make_metric(), "bs", samples)
        (_, b_ar), sig_ar = _paired_test(hyps_a, hyps_b, streams, make_metric(), "ar", samples)
        delta = b.score - a.score
        p_bs, p_ar = _p_value(b.p_value, delta), _p_value(b_ar.p_value, delta)
        if max(p_bs, p_ar) >= alpha:
            verdict = SAME
        else:
            verdict = BETTER if (delta > 0) == higher_is_better else WORSE
        intervals = tuple((r.mean - r.ci, r.mean + r.ci) for r in (a, b))
        verdicts.append(
            Verdict(name, (a.score, b.score), intervals, p_bs, p_ar, verdict, (sig_bs, sig_ar))
        )
    return verdicts


def _paired_test(hyps_a, hyps_b, streams, metric, test_type: str, samples: int):
    """sacrebleu's (result of A, result of B) and the test's signature, for one metric."""
    test = PairedTest(
        [("A", hyps_a), ("B", hyps_b)], {"metric": metric}, streams, test_type, samples
    )
    signatures, scores = test()
    ((name, signature),) = signatures.items()  # sacrebleu renames the metric (chrF -> chrF2)
    return scores[name], signature.format()


def _p_value(p: float, delta: float) -> float:
    """sacrebleu's p, except 1 where A and B score the same.

    sacrebleu counts the samples whose difference is strictly above the observed one
    (p = (count + 1) / (samples + 1)). With no observed difference, for a system
    compared with itself every sample differs by exactly 0, none is counted and p
    would be the smallest possible, "significant". Nothing can be more extreme than
    no difference: p is 1.
    """
    return 1.0 if delta == 0 else p


def load_system(spec: str, where: dict, evaluate: EvaluateConfig | None, pair) -> System:
    """A or B: a model directory (translated here) or a revision's (or the workspace's)
    scores. `where` holds the paths: split, scores and params."""
    if Path(spec).is_dir():
        return translated_system(Path(spec), where["split"], evaluate, pair)
    scores, params = (read_at(spec, where[name]) for name in ("scores", "params"))
    if scores is None:
        raise DataError(f"{spec}: no {where['scores']} there (has evaluate run at it?)")
    sources, hyps, refs = parse_scores(scores, f"{where['scores']} at {spec}")
    params = yaml.safe_load(params) if params else {}
    kind = WORKSPACE if spec == WORKSPACE else "revision"
    return System(spec, kind, sources, hyps, refs, params if isinstance(params, dict) else {})


def read_at(rev: str, path: Path) -> str | None:
    """A file at a git revision or DVC experiment (or in the workspace); None if it lacks it."""
    if rev == WORKSPACE:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    import dvc.api
    from dvc.exceptions import DvcException, PathMissingError
    from dvc.scm import RevError

    try:
        return dvc.api.read(str(path), rev=rev, encoding="utf-8")
    except PathMissingError:
        return None
    except RevError:
        raise DataError(f"{rev}: not a git revision, experiment or model directory") from None
    except DvcException as err:
        raise DataError(f"{rev}: cannot read {path} ({first_line(err)})") from None


def parse_scores(text: str, where: str) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The sources, hypotheses and references of evaluate's scores.tsv."""
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{where}: not a scores table ({first_line(err)})") from None
    missing = {"source", "hypothesis", "references"} - set(table.columns)
    if missing or table.empty:
        raise DataError(f"{where}: no {', '.join(sorted(missing)) or 'rows'}")
    refs = [r.split(REF_SEPARATOR) for r in table["references"]]
    return list(table["source"]), list(table["hypothesis"]), refs


def translated_system(model_dir: Path, split_dir: Path, cfg: EvaluateConfig, pair) -> System:
    """Translate the test split's distinct sources with a model directory, as evaluate does."""
    from nmtpipe.evaluation.evaluate import decode, test_set  # TensorFlow: only here
    from nmtpipe.modeldir import load_model_dir, require_model

    require_model(model_dir)
    sources, refs = test_set(split_dir)
    trained = load_model_dir(model_dir, pair)
    hyps = decode(trained, sources, cfg, desc=str(model_dir))
    params = {name: trained.config[name] for name in ("model", "train") if name in trained.config}
    return System(
        str(model_dir), "model directory", sources, hyps, refs, {"evaluate": to_dict(cfg), **params}
    )


def check_same_test_set(a: System, b: System) -> None:
    """A DataError unless A and B translated the same sources, in order, with the same refs."""
    if len(a.sources) != len(b.sources):
        why = f"{len(a.sources)} sentences against {len(b.sources)}"
    elif a.sources != b.sources:
        i = next(i for i, (x, y) in enumerate(zip(a.sources, b.sources, strict=True)) if x != y)
        why = f"source {i + 1} is {a.sources[i]!r} against {b.sources[i]!r}"
    elif a.refs != b.refs:
        i = next(i for i, (x, y) in enumerate(zip(a.refs, b.refs, strict=True)) if x != y)
        why = f"the references of source {i + 1}, {a.sources[i]!r}, differ"
    else:
        return
    raise DataError(f"A and B were scored on different test sets ({why})")


def decoding(params_path: Path, beam: int | None) -> tuple[EvaluateConfig, tuple]:
    """How model directories translate: evaluate's params (and language pair) from the
    params file where there is one, the defaults otherwise; --beam wins."""
    if params_path.is_file():
        params = load_params(params_path)
        cfg, pair = params.evaluate, (params.data.src_lang, params.data.tgt_lang)
    else:
        cfg, pair = EvaluateConfig(), (None, None)
    return (dataclasses.replace(cfg, beam_size=beam) if beam else cfg), pair


def verdict_line(v: Verdict) -> str:
    """`BLEU  A 26.77 (25.1-28.4)  B 24.10 (22.6-25.7)  delta -2.67  p(bs)=0.0010 ...`"""
    (a_low, a_high), (b_low, b_high) = v.intervals
    return (
        f"{v.metric:<5} A {v.scores[0]:.2f} ({a_low:.1f}-{a_high:.1f})  "
        f"B {v.scores[1]:.2f} ({b_low:.1f}-{b_high:.1f})  delta {v.delta:+.2f}  "
        f"p(bs)={v.p_bs:.4f} p(ar)={v.p_ar:.4f}  {v.verdict}"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmtpipe compare",
        description="Paired significance tests (sacrebleu) of B against A on the same test set, "
        "and an offline HTML page. A and B: model directories, git revisions, DVC experiment "
        "names, or `workspace`.",
    )
    parser.add_argument("a", metavar="A", help="the baseline")
    parser.add_argument("b", metavar="B", help="the system compared with it")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("reports/compare.html"),
        help="the page (default: %(default)s)",
    )
    parser.add_argument(
        "--split",
        type=Path,
        default=Path("data/split"),
        help="model directories translate its test split (default: %(default)s)",
    )
    parser.add_argument(
        "--scores",
        type=Path,
        default=Path("reports/eval") / SENTENCE_SCORES,
        help="evaluate's per-sentence scores, read at each revision (default: %(default)s)",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=Path("params.yaml"),
        help="read at each revision; the workspace's sets how model directories decode "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--beam", type=int, help="model directories: beam size (default: evaluate.beam_size)"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=0,
        help="bootstrap resamples and randomization trials (default: sacrebleu's, 1000 and 10000)",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level (default 0.05)"
    )
    args = parser.parse_args(argv)
    if (args.beam is not None and args.beam < 1) or args.samples < 0 or not 0 < args.alpha < 1:
        parser.error("--beam must be at least 1, --samples at least 0, --alpha in (0, 1)")
    logging.getLogger("sacrebleu").setLevel(logging.WARNING)  # a line per test at INFO

    from nmtpipe.evaluation.compare_page import write_page

    # the workspace's params matter only to model directories
    models = any(Path(spec).is_dir() for spec in (args.a, args.b))
    evaluate, pair = decoding(args.params, args.beam) if models else (None, None)
    where = {"split": args.split, "scores": args.scores, "params": args.params}
    a, b = (load_system(spec, where, evaluate, pair) for spec in (args.a, args.b))
    check_same_test_set(a, b)
    verdicts = paired_tests(a.hyps, b.hyps, a.refs, args.samples, args.alpha)
    print(
        f"A: {a.name} ({a.kind})  B: {b.name} ({b.kind})  {len(a.sources)} test sentences, "
        f"verdicts at p < {args.alpha:g} by both tests"
    )
    for v in verdicts:
        print(verdict_line(v))
    sys.stdout.flush()
    with atomic_file(args.out) as tmp:
        write_page(tmp, a, b, verdicts, args.alpha)
    log.info("wrote %s", args.out)
