"""The evaluate stage: translate the test split, score it with sacrebleu, write the report.

Each distinct test source is translated once and scored against all of its
reference translations (sacrebleu reference streams, None where a source has
fewer references than the most), on detokenized text with the 13a tokenizer.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sacrebleu.metrics import BLEU, CHRF

from nmtpipe.config import EvaluateConfig
from nmtpipe.errors import DataError, first_line
from nmtpipe.evaluation.report import ReportData, write_report
from nmtpipe.evaluation.scoring import (
    REF_SEPARATOR,
    bleu_by_length,
    group_references,
    score_corpus,
)
from nmtpipe.fileio import atomic_dir, atomic_file, read_split, write_json, write_lines
from nmtpipe.ids.tokenizer import encode_source
from nmtpipe.layout import HYPOTHESES, SENTENCE_SCORES, SPLIT_SIZES, split_files
from nmtpipe.modeldir import check_pair, load_model_dir
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.tensorflow_engine import TensorFlowEngine
from nmtpipe.search.translator import Attention, attention_of, translate_sentences

log = logging.getLogger(__name__)
ATTENTION_EXAMPLES = 4
LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, None))  # source words


def sentence_scores(sources, hyps, refs) -> pd.DataFrame:
    bleu, chrf = BLEU(effective_order=True), CHRF()
    return pd.DataFrame(
        {
            "source": sources,
            "hypothesis": hyps,
            "references": [REF_SEPARATOR.join(r) for r in refs],
            "bleu": [
                round(bleu.sentence_score(h, r).score, 2) for h, r in zip(hyps, refs, strict=True)
            ],
            "chrf": [
                round(chrf.sentence_score(h, r).score, 2) for h, r in zip(hyps, refs, strict=True)
            ],
        }
    )


@dataclass
class Records:
    """Files earlier stages wrote, shown in the report; a missing one is left out."""

    manifest: Path | None = None  # download's manifest.json
    clean: Path | None = None  # clean's report
    live_dir: Path | None = None  # train's dvclive directory
    params: dict = field(default_factory=dict)  # all params, as resolved


def test_set(split_dir: Path) -> tuple[list[str], list[list[str]]]:
    """The test split's distinct sources and all references of each; empty is a DataError."""
    sources, refs = group_references(*read_split(split_dir, "test"))
    if not sources:
        raise DataError(f"{split_files(split_dir, 'test')[0]}: the test split is empty")
    return sources, refs


def decode(trained, sources: list[str], cfg: EvaluateConfig, desc: str = "translate"):
    """The hypotheses of `sources` (TensorFlow engine) with the evaluate section's search
    settings."""
    settings = SearchSettings(cfg.beam_size, cfg.length_penalty, cfg.max_len_ratio)
    return translate_sentences(TensorFlowEngine(trained), sources, settings, cfg.batch_size, desc)


def evaluate_model(
    model_dir: Path,
    split_dir: Path,
    cfg: EvaluateConfig,
    pair: tuple[str, str],
    out: dict[str, Path],
    records: Records,
) -> dict:
    """Translate and score the test split; return the metrics.

    Writes out["metrics"] (JSON), out["dir"]/{hypotheses.txt,scores.tsv},
    out["report"] (HTML) and out["timing"] (JSON: decoding time and speed, kept out of
    the others so that they are the same bytes on every run). `pair` is the
    (src_lang, tgt_lang) the test split is in; the model must match it.
    """
    trained = load_model_dir(model_dir)
    check_pair(trained, model_dir, *pair)
    sources, refs = test_set(split_dir)
    started = time.perf_counter()
    hyps = decode(trained, sources, cfg)
    seconds = time.perf_counter() - started
    scores = score_corpus(hyps, refs)
    metrics = {  # in this order in the file: bleu, chrf and ter lead dvc exp show
        **{name: scores[name] for name in ("bleu", "chrf", "ter")},
        "copy_source_bleu": score_corpus(sources, refs)["bleu"],
        "test_sentences": len(sources),
        "test_references": sum(len(r) for r in refs),
        "signature": scores["signature"],
    }
    timing = {  # apart from the metrics: the only figures that differ run to run
        "decode_time_s": round(seconds, 2),
        "sentences_per_s": round(len(sources) / seconds, 1),
        "beam_size": cfg.beam_size,
    }
    table = sentence_scores(sources, hyps, refs)
    report = _report_data(trained, metrics, table, (sources, hyps, refs), split_dir, records)
    with (
        atomic_dir(out["dir"]) as tmp,
        atomic_file(out["metrics"]) as tmp_metrics,
        atomic_file(out["report"]) as tmp_report,
        atomic_file(out["timing"]) as tmp_timing,
    ):
        write_lines(tmp / HYPOTHESES, hyps)
        table.to_csv(tmp / SENTENCE_SCORES, sep="\t", index=False)
        write_report(tmp_report, report)
        write_json(tmp_metrics, metrics, sort_keys=False)
        write_json(tmp_timing, timing)
    log.info(
        "test BLEU %.2f chrF %.2f TER %.2f on %d sentences (copying the source: BLEU %.2f)",
        metrics["bleu"],
        metrics["chrf"],
        metrics["ter"],
        len(sources),
        metrics["copy_source_bleu"],
    )
    return metrics


def _report_data(trained, metrics, table, test, split_dir: Path, records: Records) -> ReportData:
    sources, hyps, refs = test
    live = records.live_dir
    return ReportData(
        metrics=metrics,
        table=table,
        buckets=bleu_by_length(sources, hyps, refs, LENGTH_BUCKETS),
        model_config=trained.config,
        params=records.params,
        manifest=_read_json(records.manifest),
        clean=_read_json(records.clean),
        split_sizes=_read_json(split_dir / SPLIT_SIZES),
        train_summary=_read_json(live / "metrics.json") if live else None,
        curves_dir=live / "plots" / "metrics" if live else None,
        attention=attention_examples(trained, sources, hyps),
    )


def _read_json(path: Path | None) -> dict | None:
    """A JSON record of an earlier stage, or None when it is not there."""
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: invalid JSON ({first_line(err)})") from None


def attention_examples(trained, sources: list[str], hyps: list[str]) -> list[Attention]:
    """Attention weights of the first few test translations of 4 to 16 source pieces
    (and at most 40 output pieces, so that the heat maps stay readable)."""
    if not trained.model.attends:
        return []
    engine, examples = TensorFlowEngine(trained), []
    for source, hyp in zip(sources, hyps, strict=True):
        src_ids = encode_source(trained.sp_src, [source])[0]
        tgt_ids = trained.sp_tgt.encode(hyp)
        if 4 <= len(src_ids) <= 16 and len(tgt_ids) <= 40:
            examples.append(attention_of(engine, src_ids, tgt_ids))
        if len(examples) == ATTENTION_EXAMPLES:
            break
    return examples
