"""`nmtpipe compare`: paired significance tests on real sample sentences.

The systems are the sample's reference translations, lightly damaged (good) or
heavily damaged in every second sentence (worse), scored as evaluate scores; the
revisions are commits and a DVC experiment ref of a small git repo holding
evaluate's outputs. Only the model-directory test needs a (tiny, untrained) model.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nmtpipe import cli
from nmtpipe.errors import DataError
from nmtpipe.evaluation.compare import (
    BETTER,
    SAME,
    WORSE,
    System,
    check_same_test_set,
    paired_tests,
    parse_scores,
)
from nmtpipe.evaluation.compare_page import differing_sentences, params_diff, write_page
from nmtpipe.evaluation.scoring import group_references, score_corpus
from tests.browser import chromium, probe_page, screenshot
from tests.conftest import ROOT, run_nmtpipe, sample_pairs

SAMPLES = 200  # resamples and trials: plenty for these differences, and fast
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]


def sample_test_set(n: int = 120) -> tuple[list[str], list[list[str]]]:
    """n distinct sample sources; every fifth also has its reference without the final
    punctuation as a second reference (the sample has one reference per source)."""
    pairs = sample_pairs(n)
    sources, refs = group_references([en for en, _ in pairs], [es for _, es in pairs])
    return sources, [r + [r[0][:-1]] if i % 5 == 0 else r for i, r in enumerate(refs)]


def good(refs) -> list[str]:
    """The first reference, its last word dropped in every fourth sentence."""
    return [r[0] if i % 4 else " ".join(r[0].split()[:-1]) for i, r in enumerate(refs)]


def worse(refs) -> list[str]:
    """good(), but every second sentence loses a third of its words and the rest are shuffled."""
    rng = random.Random(0)
    hyps = good(refs)
    for i in range(0, len(hyps), 2):
        words = [w for j, w in enumerate(hyps[i].split()) if j % 3 != 1]
        rng.shuffle(words)
        hyps[i] = " ".join(words)
    return hyps


def system(name: str, hyps, sources, refs, params=None) -> System:
    return System(name, "revision", sources, hyps, refs, params or {})


def write_scores(path: Path, sources, hyps, refs) -> None:
    """reports/eval/scores.tsv as evaluate writes it: a pandas table, references joined."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {"source": sources, "hypothesis": hyps, "references": [" ||| ".join(r) for r in refs]}
    )
    table.to_csv(path, sep="\t", index=False)


# --- the tests and the verdicts -------------------------------------------------------------


def test_a_system_compared_with_itself_is_no_different():
    _, refs = sample_test_set()
    hyps = good(refs)
    verdicts = paired_tests(hyps, list(hyps), refs, SAMPLES)
    assert [v.metric for v in verdicts] == ["BLEU", "chrF", "TER"]
    for v in verdicts:
        assert (v.verdict, v.p_bs, v.p_ar, v.delta) == (SAME, 1.0, 1.0, 0)
        assert v.intervals[0] == v.intervals[1]
        assert v.intervals[0][0] < v.scores[0] < v.intervals[0][1]
    # the scores are evaluate's: all references of each source, sacrebleu's defaults
    expected = score_corpus(hyps, refs)
    assert [round(v.scores[0], 2) for v in verdicts] == [
        expected[k] for k in ("bleu", "chrf", "ter")
    ]
    bs_signature, ar_signature = verdicts[0].signatures
    assert "nrefs:var|bs:200|seed:12345" in bs_signature
    assert "nrefs:var|ar:200|seed:12345" in ar_signature


def test_a_clearly_worse_system_is_significantly_worse_on_every_metric():
    _, refs = sample_test_set()
    down = paired_tests(good(refs), worse(refs), refs, SAMPLES)
    assert [v.verdict for v in down] == [WORSE] * 3
    bleu, chrf, ter = down
    assert bleu.delta < -10 and chrf.delta < -5 and ter.delta > 10  # TER: lower is better
    assert all(v.p_bs < 0.01 and v.p_ar < 0.01 for v in down)
    assert bleu.intervals[1][1] < bleu.intervals[0][0]  # the intervals do not even overlap
    up = paired_tests(worse(refs), good(refs), refs, SAMPLES)
    assert [v.verdict for v in up] == [BETTER] * 3
    assert [round(v.delta, 6) for v in up] == [round(-v.delta, 6) for v in down]


def test_one_changed_sentence_is_not_significant():
    _, refs = sample_test_set()
    hyps = good(refs)
    nearly = [hyp + " ," if i == 7 else hyp for i, hyp in enumerate(hyps)]
    verdicts = paired_tests(hyps, nearly, refs, SAMPLES)
    assert all(v.delta != 0 for v in verdicts)
    assert [v.verdict for v in verdicts] == [SAME] * 3


def test_different_test_sets_are_refused_in_one_line():
    sources, refs = sample_test_set()
    hyps = good(refs)
    a = system("A", hyps, sources, refs)
    check_same_test_set(a, system("B", worse(refs), sources, refs))  # the same test set
    cases = [
        (system("B", hyps[1:], sources[1:], refs[1:]), "(120 sentences against 119)"),
        (system("B", hyps, sources[::-1], refs), f"(source 1 is {sources[0]!r} against"),
        (system("B", hyps, sources, [["otra"], *refs[1:]]), "(the references of source 1,"),
    ]
    for b, why in cases:
        with pytest.raises(DataError) as err:
            check_same_test_set(a, b)
        message = str(err.value)
        assert message.startswith(f"A and B were scored on different test sets {why}"), message
        assert "\n" not in message


def test_scores_tsv_round_trip_keeps_empty_na_and_quoted_text(tmp_path):
    sources = ['She said "no".', "NA", "None of it"]
    hyps = ["", "null", 'Dijo "no".']
    refs = [["Ella dijo «no».", "Dijo que no."], ["NA"], ["Nada."]]
    write_scores(tmp_path / "scores.tsv", sources, hyps, refs)
    text = (tmp_path / "scores.tsv").read_text(encoding="utf-8")
    assert parse_scores(text, "t") == (sources, hyps, refs)
    with pytest.raises(DataError, match=r"^t: no hypothesis$"):
        parse_scores("source\treferences\na\tb\n", "t")


# --- the page ---------------------------------------------------------------------------------


def test_page_shows_the_sentences_that_differ_most_and_the_params_diff(tmp_path):
    sources, refs = sample_test_set()
    a_params = {"model": {"attention": "bahdanau", "units": 256}, "data": {"url": ""}}
    b_params = {"model": {"attention": "none", "units": 256, "heads": 4}}
    a = system("base", good(refs), sources, refs, a_params)
    b = system("<worse>", worse(refs), sources, refs, b_params)
    # only the sections both record; a key only one side has shows as —
    assert params_diff(a.params, b.params) == [
        ("model.attention", "bahdanau", "none"),
        ("model.heads", "—", "4"),
    ]
    up, down = differing_sentences(a, b, count=5)
    assert len(up) == 0 and len(down) == 5
    gaps = [row["chrf_a"] - row["chrf_b"] for row in down]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] > 0
    assert differing_sentences(a, a) == ([], [])
    html = _write_page(tmp_path, a, b).read_text(encoding="utf-8")
    assert "A = base, B = &lt;worse&gt;" in html and "<worse>" not in html
    assert html.count("<td>B worse</td>") == 3
    assert "Where B is better (0)" in html and "Where A is better (10)" in html
    assert f"<td>{down[0]['b']}</td>" in html
    assert "<td>model.attention</td><td>bahdanau</td><td>none</td>" in html
    assert "http" not in html and "<script" not in html


def _write_page(tmp_path: Path, a: System, b: System) -> Path:
    path = tmp_path / "compare.html"
    write_page(path, a, b, paired_tests(a.hyps, b.hyps, a.refs, SAMPLES), 0.05)
    return path


@pytest.mark.slow
def test_page_opens_offline_in_chromium(tmp_path):
    sources, refs = sample_test_set()
    a = system("bahdanau", good(refs), sources, refs, {"model": {"attention": "bahdanau"}})
    b = system("none", worse(refs), sources, refs, {"model": {"attention": "none"}})
    path = _write_page(tmp_path, a, b)
    assert probe_page(path) == (0, 0, 0)  # it loaded: no images, no plots
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", path.as_uri())
    assert dom.count("<td>B worse</td>") == 3
    first = differing_sentences(a, b)[1][0]
    assert f"<td>{first['a']}</td><td>{first['b']}</td>" in dom
    screenshot(path, "compare.png", height=2400)


# --- the command on revisions ---------------------------------------------------------------


@pytest.fixture(scope="module")
def revisions(tmp_path_factory) -> Path:
    """A git repo (no DVC) with evaluate's outputs: tag `empty` has none, tag `other` is on
    another test set, main (and the workspace) is the good system with bahdanau attention,
    and the DVC experiment `exp-none` (an experiment ref on main) the worse one without."""
    repo = tmp_path_factory.mktemp("revisions")
    sources, refs = sample_test_set()
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))

    def commit(tag: str | None, hyps, n: int = len(sources), attention: str = "bahdanau"):
        write_scores(repo / "reports/eval/scores.tsv", sources[:n], hyps[:n], refs[:n])
        params["model"]["attention"] = attention
        (repo / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
        subprocess.run([*GIT, "commit", "-qm", tag or "experiment"], cwd=repo, check=True)
        if tag:
            subprocess.run(["git", "tag", tag], cwd=repo, check=True)
        return _git(repo, "rev-parse", "HEAD")

    _git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("nothing evaluated yet\n")
    _git(repo, "add", "README")
    subprocess.run([*GIT, "commit", "-qm", "empty"], cwd=repo, check=True)
    _git(repo, "tag", "empty")
    commit("other", good(refs), n=60)
    baseline = commit(None, good(refs))
    _git(repo, "checkout", "-q", "--detach")  # what `dvc exp run` keeps: a commit on main
    experiment = commit(None, worse(refs), attention="none")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "update-ref", f"refs/exps/{baseline[:2]}/{baseline[2:]}/exp-none", experiment)
    return repo


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def compare(repo: Path, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`nmtpipe compare ARGS` in this process, in repo; (exit status, stdout, stderr)."""
    monkeypatch.chdir(repo)
    status = cli.main(["compare", *args, "--samples", str(SAMPLES), "--out", "out/c.html"])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_compare_command_on_the_workspace_and_an_experiment(revisions):
    result = run_nmtpipe(
        "compare", "workspace", "exp-none", "--samples", str(SAMPLES), cwd=revisions
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("A: workspace (workspace)  B: exp-none (revision)  120 test")
    assert [line.split()[0] for line in lines[1:]] == ["BLEU", "chrF", "TER"]
    assert all(line.endswith("  B worse") and " p(ar)=0.00" in line for line in lines[1:])
    html = (revisions / "reports/compare.html").read_text(encoding="utf-8")
    assert "<td>model.attention</td><td>bahdanau</td><td>none</td>" in html


def test_compare_a_revision_with_the_same_scores_in_the_workspace(revisions, monkeypatch, capsys):
    status, out, err = compare(revisions, monkeypatch, capsys, "main", "workspace")
    assert status == 0, err
    assert out.count("p(bs)=1.0000 p(ar)=1.0000  no significant difference") == 3
    assert "A and B have the same params." in (revisions / "out/c.html").read_text("utf-8")


@pytest.mark.parametrize(
    ("a", "b", "error"),
    [
        ("main", "nope", "nope: not a git revision, experiment or model directory"),
        ("empty", "main", "empty: no reports/eval/scores.tsv there (has evaluate run at it?)"),
        ("main", "other", "A and B were scored on different test sets (120 sentences against 60)"),
    ],
)
def test_compare_errors_are_one_line(revisions, monkeypatch, capsys, a, b, error):
    assert compare(revisions, monkeypatch, capsys, a, b) == (
        1,
        "",
        f"nmtpipe compare: error: {error}\n",
    )


# --- the command on model directories -----------------------------------------------------


@pytest.mark.slow
def test_compare_model_directories_translates_the_test_split(tmp_path, monkeypatch, capsys):
    from nmtpipe.config import ModelConfig, TokenizerConfig, TrainConfig
    from nmtpipe.fileio import write_lines
    from nmtpipe.ids.tokenizer import train_tokenizers
    from nmtpipe.model.build import build_model
    from nmtpipe.modeldir import save_model_dir
    from nmtpipe.typedconfig import to_dict

    pairs = sample_pairs(300)
    (tmp_path / "split").mkdir()
    for name, rows in (("train", pairs[:270]), ("test", pairs[270:])):
        write_lines(tmp_path / f"split/{name}.src", [src for src, _ in rows])
        write_lines(tmp_path / f"split/{name}.tgt", [tgt for _, tgt in rows])
    train_tokenizers(
        tmp_path / "split",
        TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200),
        tmp_path / "tok",
    )
    cfg = ModelConfig(embedding_dim=8, units=16)
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": 200, "tgt_vocab_size": 200}
    config |= {"model": to_dict(cfg), "train": to_dict(TrainConfig())}
    (tmp_path / "model").mkdir()
    save_model_dir(tmp_path / "model", build_model(cfg, 200, 200), config, tmp_path / "tok")
    # the workspace's scores: another test set
    sources, refs = sample_test_set(10)
    write_scores(tmp_path / "reports/eval/scores.tsv", sources, good(refs), refs)

    options = ("--split", "split", "--params", "absent.yaml", "--beam", "1")
    status, out, err = compare(tmp_path, monkeypatch, capsys, "model", "model", *options)
    assert status == 0, err
    assert out.startswith("A: model (model directory)  B: model (model directory)  30 test")
    assert out.count("no significant difference") == 3
    html = (tmp_path / "out/c.html").read_text(encoding="utf-8")
    assert "A and B have the same params." in html and "No such sentence." in html
    status, _, err = compare(tmp_path, monkeypatch, capsys, "model", "workspace", *options)
    assert status == 1 and "different test sets (30 sentences against 10)" in err
