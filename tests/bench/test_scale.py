"""nmtpipe bench-scale's corpus and table (the run itself is a benchmark, not a test)."""

from nmtpipe.bench.scale import STAGES, table, write_corpus
from nmtpipe.fileio import write_lines
from tests.conftest import sample_pairs


def test_scaled_corpus_holds_unique_numbered_copies(tmp_path):
    pairs = sample_pairs(50)
    write_lines(tmp_path / "src.txt", [s for s, _ in pairs])
    write_lines(tmp_path / "tgt.txt", [t for _, t in pairs])
    assert write_corpus(tmp_path, 3, tmp_path / "x3.tsv") == 150
    lines = (tmp_path / "x3.tsv").read_text(encoding="utf-8").splitlines()
    assert len(set(lines)) == 150  # unique pairs: cleaning's deduplication keeps them all
    assert lines[:50] == [f"{s}\t{t}" for s, t in pairs]
    assert lines[100] == f"{pairs[0][0]} 2\t{pairs[0][1]} 2"


def test_table_gives_each_stage_its_ratio_to_the_first_factor():
    results = {
        k: {"pairs": 100 * k, **{s: {"peak_rss_mib": 100 + k, "time_s": 2.0 * k} for s in STAGES}}
        for k in (1, 10)
    }
    rows = table(results).splitlines()
    assert rows[2] == "| download | 101 | 2.0 | 110 (1.09x) | 20.0 (10.00x) |"
    assert len(rows) == 2 + len(STAGES) + 2 and rows[-1] == "1x: 100 pairs, 10x: 1,000 pairs"
