"""The report a person opens: one self-contained HTML file.

Figures are PNGs inlined as data URIs and there is no script, so the file reads
the same offline, attached to an e-mail or from a DVC remote. This module only
renders: the numbers come from the evaluate stage and the files earlier stages
wrote. Sections: scores, data, training, BLEU by source length, attention,
best and worst translations, params.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import matplotlib
import pandas as pd
import yaml

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from nmtpipe.config import ModelConfig, parse_section  # noqa: E402
from nmtpipe.evaluation.scoring import REF_SEPARATOR  # noqa: E402
from nmtpipe.search.translator import Attention  # noqa: E402

REPORT_EXAMPLES = 8
CURVES = (  # (title, [(label, dvclive plot file)])
    ("Loss (masked cross-entropy)", [("train", "train/loss.tsv"), ("dev", "eval/loss.tsv")]),
    ("Dev BLEU (greedy, fixed sample)", [("dev", "eval/bleu.tsv")]),
    ("Learning rate", [("Adam", "train/learning_rate.tsv")]),
)  # no timings: the report is the same bytes for the same model (they are in *timing.json)


@dataclass
class ReportData:
    """Everything the report shows; optional parts are left out when missing."""

    metrics: dict
    table: pd.DataFrame  # per sentence: source, hypothesis, references, bleu, chrf
    buckets: pd.DataFrame  # source length bucket: sentences, bleu
    model_config: dict
    params: dict
    manifest: dict | None = None
    clean: dict | None = None
    split_sizes: dict | None = None
    train_summary: dict | None = None
    curves_dir: Path | None = None
    attention: list[Attention] = field(default_factory=list)


def write_report(path: Path, data: ReportData) -> None:
    """Render `data` as HTML into `path`."""
    cfg = data.model_config
    title = f"nmtpipe translation report: {cfg['src_lang']} → {cfg['tgt_lang']}"
    sections = [
        _scores_section(data.metrics),
        _data_section(data.manifest, data.clean, data.split_sizes),
        _training_section(data.train_summary, data.curves_dir, cfg.get("precision")),
        _buckets_section(data.buckets),
        _attention_section(data.attention, attention_caption(cfg["model"])),
        _examples_section(data.table),
        html_section(
            "Params", f"<pre>{escape(yaml.safe_dump(data.params, sort_keys=False))}</pre>"
        ),
    ]
    path.write_text(
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body><h1>{escape(title)}</h1>\n{''.join(sections)}</body></html>\n",
        encoding="utf-8",
    )


STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 1em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; } code { font-size: 85%; }
img { max-width: 100%; } figure { display: inline-block; margin: 0.5em; }
"""


def html_section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>\n{body}\n</section>\n"


def html_table(header: list[str], rows: list[list], numeric=()) -> str:
    """An HTML table; the columns whose index is in `numeric` align right."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(_cell(v, i in numeric) for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value, numeric: bool) -> str:
    return f"<td{' class=num' if numeric else ''}>{escape(str(value))}</td>"


def _img(fig, alt: str) -> str:
    """The figure as an inline PNG <img>; closes the figure."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{data}'>"


def _scores_section(m: dict) -> str:
    rows = [[name.upper(), m[name], m["signature"][name]] for name in ("bleu", "chrf", "ter")]
    rows.append(["BLEU of copying the source", m["copy_source_bleu"], "a floor: no translation"])
    facts = (
        f"<p>{m['test_sentences']} distinct test sources scored against "
        f"{m['test_references']} references.</p>"
    )
    return html_section(
        "Scores", html_table(["metric", "score", "sacrebleu signature"], rows, {1}) + facts
    )


def _data_section(manifest: dict | None, clean: dict | None, sizes: dict | None) -> str:
    parts = []
    if manifest:
        where = manifest.get("url") or manifest.get("file") or manifest.get("source")
        parts.append(
            f"<p>Downloaded {manifest['pairs']:,} pairs ({escape(manifest['source'])}: "
            f"<code>{escape(str(where))}</code>, sha256 <code>{manifest['sha256'][:16]}…</code>)."
            "</p>"
        )
    if clean:
        rows = [[name, count] for name, count in sorted(clean["removed"].items())]
        rows.append(["kept", clean["pairs_out"]])
        parts.append(
            f"<p>Cleaning (OpusFilter): {clean['pairs_in']:,} pairs in, {clean['pairs_out']:,} "
            "out. Pairs removed by each filter:</p>" + html_table(["filter", "pairs"], rows, {1})
        )
    if sizes:
        parts.append(html_table(["split", "pairs"], [[k, v] for k, v in sizes.items()], {1}))
    return html_section("Data", "\n".join(parts) or "<p>No data records found.</p>")


def _figure(value):
    """A summary figure as people read it: floats to 4 significant digits, ints with commas."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return f"{value:,}" if isinstance(value, int) else value


def _training_section(summary: dict | None, curves_dir: Path | None, precision=None) -> str:
    """The training summary's figures with the precision trained in (config.json's: what
    train.precision auto chose), and the curves."""
    parts = []
    if summary:
        keys = ("epochs_run", "best_epoch", "best_val_loss", "best_epoch_dev_bleu")
        keys += ("averaged_epochs", "parameters", "train_pairs", "train_pairs_too_long")
        rows = [[k, _figure(summary[k])] for k in keys if k in summary]
        rows += [["precision", precision]] if precision else []
        parts.append(html_table(["figure", "value"], rows, {1}))
    curves = _read_curves(curves_dir) if curves_dir else []
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.2))
        for ax, (title, lines) in zip([axes] if len(curves) == 1 else axes, curves, strict=True):
            for label, frame in lines:
                ax.plot(frame["step"] + 1, frame.iloc[:, 1], marker=".", label=label)
            ax.set(title=title, xlabel="epoch")
            ax.grid(alpha=0.3)
            ax.legend()
        parts.append(_img(fig, "training curves"))
    return html_section("Training", "\n".join(parts) or "<p>No training records found.</p>")


def _read_curves(curves_dir: Path) -> list[tuple[str, list[tuple[str, pd.DataFrame]]]]:
    found = []
    for title, files in CURVES:
        lines = [
            (label, pd.read_csv(curves_dir / name, sep="\t"))
            for label, name in files
            if (curves_dir / name).is_file()
        ]
        if lines:
            found.append((title, lines))
    return found


def _buckets_section(buckets: pd.DataFrame) -> str:
    rows = [[b.bucket, b.sentences, b.bleu] for b in buckets.itertuples()]
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.bar(buckets["bucket"], buckets["bleu"], color="#4a7ab5")
    ax.set(xlabel="source length (words)", ylabel="BLEU")
    for x, (bleu, n) in enumerate(zip(buckets["bleu"], buckets["sentences"], strict=True)):
        ax.annotate(f"n={n}", (x, bleu), ha="center", va="bottom", fontsize=8)
    table = html_table(["source words", "sentences", "BLEU"], rows, {1, 2})
    return html_section("BLEU by source length", table + _img(fig, "BLEU by source length"))


def attention_caption(model_section: dict) -> str:
    """What the attention maps show, as the network of the saved model section describes
    its attention (`attention_caption` of its class)."""
    from nmtpipe.model.build import NETWORKS  # Keras loads only when a report is written

    cfg = parse_section(ModelConfig, model_section, "model")
    return NETWORKS[cfg.arch].attention_caption(cfg)


def _attention_section(examples: list[Attention], caption: str) -> str:
    if not examples:
        return html_section("Attention", f"<p>No attention weights: {escape(caption)}.</p>")
    figures = []
    for example in examples:
        rows, cols = len(example.tgt_pieces), len(example.src_pieces)
        fig, ax = plt.subplots(figsize=(0.45 * cols + 1.5, 0.4 * rows + 1.2))
        ax.imshow(example.weights, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(cols), example.src_pieces, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(rows), example.tgt_pieces, fontsize=8)
        ax.set(xlabel="source pieces", ylabel="output pieces")
        figures.append(f"<figure>{_img(fig, 'attention weights')}</figure>")
    intro = f"<p>{escape(caption)} of the output pieces (rows) over the source pieces.</p>"
    return html_section("Attention", intro + "".join(figures))


def _examples_section(table: pd.DataFrame) -> str:
    ranked = table.sort_values(["bleu", "chrf"], ascending=False, kind="stable")
    header = ["BLEU", "chrF", "source", "translation", "references"]
    parts = []
    for title, rows in (
        ("Best translations", ranked.head(REPORT_EXAMPLES)),
        ("Worst translations", ranked.tail(REPORT_EXAMPLES).iloc[::-1]),
    ):
        cells = [
            [r.bleu, r.chrf, r.source, r.hypothesis, r.references.replace(REF_SEPARATOR, " / ")]
            for r in rows.itertuples()
        ]
        parts.append(f"<h3>{title}</h3>" + html_table(header, cells, {0, 1}))
    return html_section("Examples (sentence BLEU)", "\n".join(parts))
