import json

import pytest

from nmtpipe.config import CleanConfig, DataConfig
from nmtpipe.corpus import clean
from nmtpipe.corpus.clean import clean_corpus
from nmtpipe.errors import ConfigError, DataError
from tests.conftest import ROOT, sample_pairs

FILTERS = ROOT / "pipeline" / "opusfilter.yaml"


def write_raw(raw, pairs):
    raw.mkdir()
    (raw / "src.txt").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
    (raw / "tgt.txt").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")


def run_clean(tmp_path, pairs, cfg=None):
    write_raw(tmp_path / "raw", pairs)
    cfg = cfg or CleanConfig()
    report = clean_corpus(
        tmp_path / "raw", FILTERS, cfg, DataConfig(), tmp_path / "clean", tmp_path / "clean.json"
    )
    src = (tmp_path / "clean/src.txt").read_text(encoding="utf-8").splitlines()
    tgt = (tmp_path / "clean/tgt.txt").read_text(encoding="utf-8").splitlines()
    return report, list(zip(src, tgt, strict=True))


def test_each_filter_removes_its_pairs_and_is_counted(tmp_path):
    good = sample_pairs(50)
    dirty = [
        good[0],  # exact duplicate
        ("Cafe\u0301   con  leche.", "Cafe\u0301 con leche."),  # normalised, kept
        ("One two three four five six seven eight nine ten eleven.", "Uno."),  # ratio
        ("Привет, как дела?", "Hola, ¿qué tal?"),  # script
        ("<b>Bold</b> text here.", "Texto en negrita."),  # html
        ("This sentence is clearly written in English.", "This one is English as well, sadly."),
    ]
    report, kept = run_clean(tmp_path, good + dirty)
    assert ("Café con leche.", "Café con leche.") in kept
    assert report["modified"] == {"normalize": 1}
    assert not set(dirty[2:]) & set(kept) and kept.count(good[0]) == 1
    assert report["pairs_in"] == 56 and report["pairs_out"] == len(kept) >= 48
    assert report["removed"]["duplicates"] == 1
    assert report["removed"]["length_ratio"] == 1
    assert report["removed"]["script"] == 1
    assert report["removed"]["html"] == 1
    assert report["removed"]["langid"] >= 1  # langid also doubts a few short real pairs
    assert report["pairs_in"] - sum(report["removed"].values()) == report["pairs_out"]
    assert json.loads((tmp_path / "clean.json").read_text()) == report


def test_thresholds_come_from_params(tmp_path):
    _, kept = run_clean(tmp_path, sample_pairs(100), CleanConfig(max_words=4))
    assert kept and all(len(s.split()) <= 4 and len(t.split()) <= 4 for s, t in kept)


def test_cleaning_everything_away_is_an_error_without_output(tmp_path):
    with pytest.raises(DataError, match="cleaning removed every pair"):
        run_clean(tmp_path, [("<p>x</p>", "<p>y</p>")] * 3)
    assert not (tmp_path / "clean").exists() and not (tmp_path / "clean.json").exists()


def test_langid_languages_must_include_the_pair(tmp_path):
    with pytest.raises(ConfigError, match=r"must include \['es'\]"):
        run_clean(tmp_path, sample_pairs(5), CleanConfig(langid_languages=("en", "fr")))


def test_broken_filter_config_is_a_config_error(tmp_path):
    write_raw(tmp_path / "raw", sample_pairs(5))
    broken = tmp_path / "filters.yaml"
    broken.write_text("steps: [a: b: c\n")
    with pytest.raises(ConfigError, match="filters.yaml: invalid YAML"):
        clean_corpus(
            tmp_path / "raw",
            broken,
            CleanConfig(),
            DataConfig(),
            tmp_path / "clean",
            tmp_path / "clean.json",
        )
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text(
        "steps:\n  - type: filter\n    parameters:\n      inputs: [!var raw_src, !var raw_tgt]\n"
        "      outputs: [a.src, a.tgt]\n      filters:\n        - NoSuchFilter: {}\n"
    )
    with pytest.raises(ConfigError, match=r"opusfilter step 1 \(a\)"):
        clean_corpus(
            tmp_path / "raw",
            unknown,
            CleanConfig(),
            DataConfig(),
            tmp_path / "clean",
            tmp_path / "clean.json",
        )
    assert not (tmp_path / "clean").exists() and not (tmp_path / "clean.json").exists()


@pytest.mark.parametrize(
    ("n_jobs", "threads", "pairs", "expected"),
    [
        ("auto", "1", 116_000, 1),  # NMTPIPE_THREADS caps auto
        ("auto", "2", 116_000, 2),
        ("auto", "2", 19_999, 1),  # one job per 10,000 pairs at most
        ("auto", "2", 20_000, 2),
        ("auto", "2", 0, 1),  # an emptied corpus: 1 job (2 would write no output file)
        (2, "", 116_000, 2),
        (2, "1", 116_000, 1),  # NMTPIPE_THREADS caps an explicit clean.n_jobs too
        (4, "", 30_000, 3),
        (2, "", 0, 1),
    ],
)
def test_n_jobs_by_pairs_and_thread_cap(monkeypatch, n_jobs, threads, pairs, expected):
    monkeypatch.setenv("NMTPIPE_THREADS", threads)
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1, 2, 3}, raising=False)
    assert clean.n_jobs(CleanConfig(n_jobs=n_jobs), pairs) == expected


@pytest.mark.slow  # 20,000 pairs in 2 processes: 2.7 s idle, 7 s on a loaded machine
def test_two_jobs_on_a_corpus_a_filter_empties_is_a_data_error(tmp_path):
    """20,000 pairs take 2 jobs; the script filter removes them all, and the language-ID
    step after it (empty input) must still write its (empty) files: 1 job there."""
    pairs = [(f"Привет, друг номер {i}.", f"Hola, amigo número {i}.") for i in range(20_000)]
    with pytest.raises(DataError, match=r"cleaning removed every pair \(.*script: -20000"):
        run_clean(tmp_path, pairs, CleanConfig(n_jobs=2))
    assert not (tmp_path / "clean").exists() and not (tmp_path / "clean.json").exists()
