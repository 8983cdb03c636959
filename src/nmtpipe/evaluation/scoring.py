"""Corpus scores with sacrebleu against several references per source sentence.

Each distinct source is scored once against all of its reference translations
(sacrebleu reference streams, None where a source has fewer references than the
most), on detokenized text with sacrebleu's defaults (BLEU tokenizer 13a).
"""

from __future__ import annotations

import pandas as pd
from sacrebleu.metrics import BLEU, CHRF, TER

REF_SEPARATOR = " ||| "  # joins the references of one source in evaluate's scores.tsv


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


def _check_lengths(hyps: list[str], refs: list[list[str]]) -> None:
    if len(hyps) != len(refs):  # sacrebleu would silently truncate
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} reference sets")


def score_bleu(hyps: list[str], refs: list[list[str]]) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a) of hyps against all references of each."""
    _check_lengths(hyps, refs)
    return BLEU().corpus_score(hyps, reference_streams(refs)).score


def score_corpus(hyps: list[str], refs: list[list[str]]) -> dict:
    """BLEU, chrF and TER with their sacrebleu signatures."""
    _check_lengths(hyps, refs)
    streams = reference_streams(refs)
    scores, signatures = {}, {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF()), ("ter", TER())):
        scores[name] = round(metric.corpus_score(hyps, streams).score, 2)
        signatures[name] = str(metric.get_signature())
    return {**scores, "signature": signatures}


def bleu_by_length(
    sources: list[str], hyps: list[str], refs: list[list[str]], buckets
) -> pd.DataFrame:
    """Corpus BLEU of the sentences whose source word count falls in each (low, high) bucket
    (high None = no upper bound); empty buckets are left out."""
    lengths = [len(s.split()) for s in sources]
    rows = []
    for low, high in buckets:
        picked = [i for i, n in enumerate(lengths) if low <= n and (high is None or n <= high)]
        if picked:
            bleu = score_bleu([hyps[i] for i in picked], [refs[i] for i in picked])
            name = f"{low}–{high}" if high is not None else f"{low}+"
            rows.append({"bucket": name, "sentences": len(picked), "bleu": round(bleu, 2)})
    return pd.DataFrame(rows, columns=["bucket", "sentences", "bleu"])
