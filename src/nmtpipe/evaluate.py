"""The evaluate stage: translate the test split and score it with sacrebleu.

Each distinct test source is translated once and scored against all of its
reference translations (sacrebleu reference streams, None where a source has
fewer references than the most), on detokenized text with the 13a tokenizer.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from sacrebleu.metrics import BLEU, CHRF, TER

from nmtpipe.config import EvaluateConfig
from nmtpipe.errors import DataError
from nmtpipe.fileio import atomic_dir, atomic_file, read_parallel, write_json, write_lines
from nmtpipe.model.decoding import translate_sentences
from nmtpipe.model.store import check_pair, load_model_dir

log = logging.getLogger(__name__)
REPORT_EXAMPLES = 5


def group_references(src: list[str], tgt: list[str]) -> tuple[list[str], list[list[str]]]:
    """Distinct sources in first-seen order, each with all of its references."""
    refs: dict[str, list[str]] = {}
    for s, t in zip(src, tgt, strict=True):
        refs.setdefault(s, []).append(t)
    return list(refs), list(refs.values())


def reference_streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu layout: stream k holds every sentence's k-th reference (or None)."""
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def score_corpus(hyps: list[str], refs: list[list[str]]) -> dict:
    """BLEU, chrF and TER with their sacrebleu signatures."""
    if len(hyps) != len(refs):  # sacrebleu would silently truncate
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference sets")
    streams = reference_streams(refs)
    scores, signatures = {}, {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        scores[name] = round(metric.corpus_score(hyps, streams).score, 2)
        signatures[name] = str(metric.get_signature())
    return {**scores, "signature": signatures}


def sentence_scores(sources, hyps, refs) -> pd.DataFrame:
    bleu, chrf = BLEU(effective_order=True), CHRF()
    return pd.DataFrame(
        {
            "source": sources,
            "hypothesis": hyps,
            "references": [" ||| ".join(r) for r in refs],
            "bleu": [
                round(bleu.sentence_score(h, r).score, 2) for h, r in zip(hyps, refs, strict=True)
            ],
            "chrf": [
                round(chrf.sentence_score(h, r).score, 2) for h, r in zip(hyps, refs, strict=True)
            ],
        }
    )


def evaluate_model(
    model_dir: Path,
    split_dir: Path,
    cfg: EvaluateConfig,
    pair: tuple[str, str],
    metrics_path: Path,
    out_dir: Path,
) -> dict:
    """Write metrics_path and out_dir/{hypotheses.txt,scores.tsv,report.md}; return metrics.

    `pair` is the (src_lang, tgt_lang) the test split is in; the model must match it.
    """
    trained = load_model_dir(model_dir)
    check_pair(trained, model_dir, *pair)
    sources, refs = group_references(
        *read_parallel(split_dir / "test.src", split_dir / "test.tgt", "test split", "split")
    )
    if not sources:
        raise DataError(f"{split_dir / 'test.src'}: the test split is empty")
    started = time.perf_counter()
    hyps = translate_sentences(
        trained, sources, cfg.batch_size, cfg.max_len_ratio, cfg.beam_size, cfg.length_penalty
    )
    seconds = time.perf_counter() - started
    metrics = {
        **score_corpus(hyps, refs),
        "copy_source_bleu": score_corpus(sources, refs)["bleu"],
        "test_sentences": len(sources),
        "test_references": sum(len(r) for r in refs),
        "decode_time_s": round(seconds, 2),
        "sentences_per_s": round(len(sources) / seconds, 1),
    }
    table = sentence_scores(sources, hyps, refs)
    with atomic_dir(out_dir) as tmp, atomic_file(metrics_path) as tmp_metrics:
        write_lines(tmp / "hypotheses.txt", hyps)
        table.to_csv(tmp / "scores.tsv", sep="\t", index=False)
        (tmp / "report.md").write_text(markdown_report(metrics, trained.config, table))
        write_json(tmp_metrics, metrics)
    log.info(
        "test BLEU %.2f chrF %.2f TER %.2f on %d sentences (copying the source: BLEU %.2f)",
        metrics["bleu"],
        metrics["chrf"],
        metrics["ter"],
        len(sources),
        metrics["copy_source_bleu"],
    )
    return metrics


def markdown_report(metrics: dict, config: dict, table: pd.DataFrame) -> str:
    """A short human-readable report: scores, signatures, best and worst sentences."""
    ranked = table.sort_values(["bleu", "chrf"], ascending=False, kind="stable")
    lines = [
        f"# Translation report ({config['src_lang']} -> {config['tgt_lang']})",
        "",
        f"Test set: {metrics['test_sentences']} sentences, "
        f"{metrics['test_references']} references.",
        "",
        "| metric | score | sacrebleu signature |",
        "|---|---|---|",
        *(
            f"| {m.upper()} | {metrics[m]} | `{metrics['signature'][m]}` |"
            for m in ("bleu", "chrf", "ter")
        ),
        f"| BLEU of copying the source | {metrics['copy_source_bleu']} | |",
        "",
        f"Model: {config['model']}",
        "",
    ]
    for title, rows in (
        ("Best", ranked.head(REPORT_EXAMPLES)),
        ("Worst", ranked.tail(REPORT_EXAMPLES).iloc[::-1]),
    ):
        lines += [
            f"## {title} translations",
            "",
            "| BLEU | source | hypothesis | references |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r.bleu} | {_cell(r.source)} | {_cell(r.hypothesis)} | {_cell(r.references)} |"
            for r in rows.itertuples()
        ]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")
