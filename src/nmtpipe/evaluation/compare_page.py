"""The page `nmtpipe compare` writes: one self-contained HTML file, no script, no network.

Sections: who A and B are and the verdict per metric, the sentences where the two
differ most (by sentence chrF, both ways), the params that differ. Styled like the
evaluate report, whose CSS and table helpers it shares.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from sacrebleu.metrics import CHRF

from nmtpipe.evaluation.report import STYLE, html_section, html_table

DIFFERING = 10  # sentences shown in each direction
MISSING = object()  # a param one side does not have
PAGE_STYLE = STYLE + "td { white-space: pre-line; } p.note { color: #555; }\n"


def write_page(path: Path, a, b, verdicts, alpha: float) -> None:
    """Render the comparison of `a` and `b` (compare.System) and their `verdicts` into `path`."""
    title = f"nmtpipe compare: A = {a.name}, B = {b.name}"
    better, worse = differing_sentences(a, b)
    sections = [
        _verdict_section(a, b, verdicts, alpha),
        _sentences_section(f"Where B is better ({len(better)})", better, a, b),
        _sentences_section(f"Where A is better ({len(worse)})", worse, a, b),
        _params_section(a, b),
    ]
    path.write_text(
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{PAGE_STYLE}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>\n{''.join(sections)}</body></html>\n",
        encoding="utf-8",
    )


def differing_sentences(a, b, count: int = DIFFERING) -> tuple[list[dict], list[dict]]:
    """The test sentences where B's sentence chrF is most above A's, and most below
    (at most `count` each, largest difference first)."""
    chrf = CHRF()
    rows = []
    sentences = zip(a.sources, a.hyps, b.hyps, a.refs, strict=True)
    for i, (source, hyp_a, hyp_b, refs) in enumerate(sentences):
        if hyp_a == hyp_b:
            continue
        chrf_a, chrf_b = (chrf.sentence_score(hyp, refs).score for hyp in (hyp_a, hyp_b))
        if chrf_a != chrf_b:
            rows.append(
                dict(
                    n=i + 1,
                    source=source,
                    a=hyp_a,
                    b=hyp_b,
                    refs=refs,
                    chrf_a=chrf_a,
                    chrf_b=chrf_b,
                )
            )
    rows.sort(key=lambda row: row["chrf_b"] - row["chrf_a"], reverse=True)
    better = [row for row in rows if row["chrf_b"] > row["chrf_a"]]
    worse = [row for row in reversed(rows) if row["chrf_b"] < row["chrf_a"]]
    return better[:count], worse[:count]


def params_diff(params_a: dict, params_b: dict) -> list[tuple[str, str, str]]:
    """(section.key, A's value, B's value) of the params that differ, in the sections both
    sides record; a key only one side has shows as — on the other."""
    shared = [name for name in params_a if name in params_b]
    flat_a, flat_b = (_flatten({name: p[name] for name in shared}) for p in (params_a, params_b))
    keys = list(flat_a) + [key for key in flat_b if key not in flat_a]
    return [
        (key, _show(flat_a.get(key, MISSING)), _show(flat_b.get(key, MISSING)))
        for key in keys
        if flat_a.get(key, MISSING) != flat_b.get(key, MISSING)
    ]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value) -> str:
    if value is MISSING:
        return "—"
    return value if isinstance(value, str) and value else json.dumps(value, ensure_ascii=False)


def _verdict_section(a, b, verdicts, alpha: float) -> str:
    who = html_table(["", "name", "what"], [["A", a.name, a.kind], ["B", b.name, b.kind]])
    rows = [
        [
            v.metric,
            f"{v.scores[0]:.2f}",
            _interval(v.intervals[0]),
            f"{v.scores[1]:.2f}",
            _interval(v.intervals[1]),
            f"{v.delta:+.2f}",
            f"{v.p_bs:.4f}",
            f"{v.p_ar:.4f}",
            v.verdict,
        ]
        for v in verdicts
    ]
    header = ["metric", "A", "A 95% interval", "B", "B 95% interval", "B − A", "p (bs)", "p (ar)"]
    table = html_table([*header, "verdict"], rows, {1, 2, 3, 4, 5, 6, 7})
    refs = sum(len(r) for r in a.refs)
    note = (
        f"<p class=note>{len(a.sources)} distinct test sources, {refs} references. Paired tests "
        "(sacrebleu) on the same sentences: bootstrap resampling (bs) and approximate "
        "randomization (ar). p is the chance of a difference at least this large if A and B "
        f"were equally good; B is better or worse only where both tests give p &lt; {alpha:g}. "
        "95% intervals, sacrebleu's: the mean of the bootstrap resamples' scores ± half the "
        "spread of their middle 95%. TER is an error rate: lower is better.</p>"
    )
    signatures = html_table(
        ["metric", "sacrebleu signatures: bs, ar"],
        [[v.metric, "\n".join(v.signatures)] for v in verdicts],
    )
    return html_section("Verdict", who + table + note + signatures)


def _interval(bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:.2f}–{bounds[1]:.2f}"


def _sentences_section(title: str, rows: list[dict], a, b) -> str:
    if not rows:
        return html_section(title, "<p>No such sentence.</p>")
    header = ["#", "source", f"A: {a.name}", f"B: {b.name}", "references", "chrF A", "chrF B"]
    cells = [
        [
            row["n"],
            row["source"],
            row["a"],
            row["b"],
            "\n".join(row["refs"]),
            f"{row['chrf_a']:.1f}",
            f"{row['chrf_b']:.1f}",
        ]
        for row in rows
    ]
    note = "<p class=note>By sentence chrF against all references of the source.</p>"
    return html_section(title, note + html_table(header, cells, {0, 5, 6}))


def _params_section(a, b) -> str:
    rows = params_diff(a.params, b.params)
    if rows:
        body = html_table(["param", f"A: {a.name}", f"B: {b.name}"], rows)
    elif any(name in b.params for name in a.params):
        body = "<p>A and B have the same params.</p>"
    else:
        body = "<p>No params recorded on both sides.</p>"
    note = (
        "<p class=note>Revisions: their params.yaml. Model directories: the model and train "
        "sections of their config.json, and the decoding used here (evaluate).</p>"
    )
    return html_section("Params that differ", body + note)
