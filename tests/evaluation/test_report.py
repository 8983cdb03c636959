"""The HTML report and the scores it shows, on tiny real data (no model needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nmtpipe.evaluation.report import ReportData, write_report
from nmtpipe.evaluation.scoring import bleu_by_length, group_references, score_bleu, score_corpus
from nmtpipe.search.translator import Attention
from tests.browser import probe_page
from tests.conftest import sample_pairs

BUCKETS = ((1, 5), (6, 10), (11, None))


def test_bleu_by_length_scores_each_bucket_against_all_its_references():
    pairs = sample_pairs(300)
    sources, refs = group_references([en for en, _ in pairs], [es for _, es in pairs])
    hyps = [r[0] if i % 3 else "nada" for i, r in enumerate(refs)]  # every third is wrong
    table = bleu_by_length(sources, hyps, refs, BUCKETS)
    lengths = [len(s.split()) for s in sources]
    assert table["sentences"].sum() == len(sources)
    short = [i for i, n in enumerate(lengths) if n <= 5]
    assert table.loc[0, "sentences"] == len(short)
    expected = score_bleu([hyps[i] for i in short], [refs[i] for i in short])
    assert table.loc[0, "bleu"] == round(expected, 2)
    assert 0 < table["bleu"].min() < 100
    perfect = bleu_by_length(sources, [r[0] for r in refs], refs, BUCKETS)
    assert (perfect["bleu"] == 100).all()


def test_bleu_by_length_leaves_out_empty_buckets():
    table = bleu_by_length(["a b"], ["x"], [["x"]], BUCKETS)
    assert list(table["bucket"]) == ["1–5"]


def _data(attention=True, model=None) -> ReportData:
    pairs = sample_pairs(40)
    sources = [en for en, _ in pairs] + ["<script>alert(1)</script> & more"]
    refs = [[es] for _, es in pairs] + [["<b>no</b>"]]
    hyps = [r[0] for r in refs[:20]] + ["algo"] * 21
    table = pd.DataFrame(
        {"source": sources, "hypothesis": hyps, "references": [r[0] for r in refs]}
    ).assign(bleu=[100.0] * 20 + [0.0] * 21, chrf=[100.0] * 20 + [5.0] * 21)
    weights = np.full((3, 4), 0.25)
    return ReportData(
        metrics={
            **score_corpus(hyps, refs),
            "copy_source_bleu": 0.5,
            "test_sentences": 41,
            "test_references": 41,
            "sentences_per_s": 100.0,
        },
        table=table,
        buckets=bleu_by_length(sources, hyps, refs, BUCKETS),
        model_config={"src_lang": "en", "tgt_lang": "es", "model": model or {"attention": "luong"}},
        params={"model": {"attention": "luong"}},
        attention=[Attention(["▁a", "b", "c", "</s>"], ["▁x", "y", "</s>"], weights)]
        if attention
        else [],
    )


def test_report_escapes_text_and_leaves_out_missing_records(tmp_path):
    path = tmp_path / "report.html"
    write_report(path, _data())
    html = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<script" not in html and "<b>no</b>" not in html
    assert "No data records found." in html and "No training records found." in html
    assert html.count("data:image/png;base64,") == 2  # BLEU by length + one attention map


def test_report_without_attention_says_so(tmp_path):
    path = tmp_path / "report.html"
    write_report(path, _data(attention=False))
    text = path.read_text(encoding="utf-8")
    assert "No attention weights: luong attention, general score." in text


def test_attention_is_captioned_by_the_network_that_made_it(tmp_path):
    """A Transformer's maps are its cross-attention, whatever the RNN-only model.attention
    key says."""
    path = tmp_path / "report.html"
    write_report(path, _data(model={"arch": "transformer", "attention": "bahdanau"}))
    text = path.read_text(encoding="utf-8")
    assert "<p>cross-attention (last decoder layer, mean over heads) of the output" in text
    assert "bahdanau" not in text.split("<h2>Attention</h2>")[1].split("</section>")[0]
    write_report(path, _data())
    assert "<p>luong attention, general score of the output" in path.read_text(encoding="utf-8")


def test_training_table_names_the_precision_trained_in(tmp_path):
    data = _data()
    data.model_config["precision"] = "mixed_bfloat16"  # what train.precision auto chose
    data.train_summary = {"epochs_run": 3, "best_epoch": 3}
    write_report(tmp_path / "report.html", data)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<tr><td>precision</td><td class=num>mixed_bfloat16</td></tr>" in html


@pytest.mark.slow
def test_report_images_load_in_chromium(tmp_path):
    path = tmp_path / "report.html"
    write_report(path, _data())
    assert probe_page(path)[:2] == (2, 2)
