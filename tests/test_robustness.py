"""Robustness: bad input, faults (SIGKILL), unsafe archives, hostile translate input.

Every bad input stops its stage with one error line naming the file/line/key,
a non-zero exit, earlier outputs untouched and no partial new output.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nmtpipe import cli
from nmtpipe.config import ModelConfig, TokenizerConfig
from nmtpipe.corpus import sources
from nmtpipe.fileio import write_lines
from nmtpipe.ids.tokenizer import train_tokenizers
from tests.conftest import sample_pairs

GOOD = "".join(f"{en}\t{es}\n" for en, es in sample_pairs(300))


def tree_digest(path: Path) -> dict[str, str]:
    """File name -> sha256 for everything under path (empty if it does not exist)."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def anki_zip(path: Path, members: dict[str, str], symlink: str | None = None) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")


def make_inputs(d: Path) -> None:
    """Every bad (and good) input file the matrix refers to, inside directory d."""
    (d / "good.tsv").write_text(GOOD, encoding="utf-8")
    (d / "empty.tsv").write_text("")
    (d / "tab.tsv").write_text(GOOD + "A line without a tab\n")
    (d / "extra.tsv").write_text(GOOD + "One.\tUno.\tx\ty\n")
    (d / "latin1.tsv").write_bytes(GOOD.encode() + "Café.\tCafé.\n".encode("latin-1"))
    (d / "long.tsv").write_text(GOOD + "x" * (1 << 20) + "\ty\n")
    (d / "mis.en").write_text("a\nb\nc\n")
    (d / "mis.es").write_text("a\nb\n")
    (d / "corrupt.zip").write_bytes(b"PK\x03\x04 not a zip at all")
    anki_zip(d / "good.zip", {"spa-eng/_about.txt": "about", "spa-eng/spa.txt": GOOD * 20})
    (d / "truncated.zip").write_bytes((d / "good.zip").read_bytes()[:3000])
    anki_zip(d / "nomember.zip", {"spa-eng/_about.txt": "about"})
    anki_zip(d / "slip.zip", {"spa.txt": GOOD, "../../evil.txt": "pwned"})
    anki_zip(d / "abs.zip", {"spa.txt": GOOD, "/tmp/evil.txt": "pwned"})
    anki_zip(d / "link.zip", {"spa.txt": GOOD}, symlink="passwd.txt")
    packed = gzip.compress(GOOD.encode() * 50)
    (d / "truncated.tsv.gz").write_bytes(packed[: len(packed) // 2])
    (d / "corpus.tar.gz").write_bytes(packed)
    (d / "html.tsv").write_text("<p>a</p>\t<p>b</p>\n" * 5)


URL = {"data": {"source": "url"}}
MATRIX = [  # (id, stage, params, expected message)
    ("missing file", "download", {"data": {"url": "in/nope.tsv"}}, "in/nope.tsv: file not found"),
    ("empty file", "download", {"data": {"url": "in/empty.tsv"}}, "no sentence pairs found"),
    ("corrupt zip", "download", {"data": {"url": "in/corrupt.zip"}}, "not a valid zip archive"),
    ("truncated zip", "download", {"data": {"url": "in/truncated.zip"}}, "truncated.zip"),
    ("truncated gzip", "download", {"data": {"url": "in/truncated.tsv.gz"}}, "corrupt or trunc"),
    (
        "zip without corpus member",
        "download",
        {"data": {"url": "in/nomember.zip"}},
        "expected one .txt/.tsv corpus member, found none",
    ),
    (
        "missing tab",
        "download",
        {"data": {"url": "in/tab.tsv"}},
        "tab.tsv:301: expected 2 tab-separated fields, found 1",
    ),
    (
        "extra tab",
        "download",
        {"data": {"url": "in/extra.tsv"}},
        "extra.tsv:301: expected 2 tab-separated fields, found 4",
    ),
    (
        "misaligned files",
        "download",
        {"data": {"url": "in/mis.{lang}"}},
        "misaligned files: in/mis.en has 3 lines but in/mis.es has 2",
    ),
    (
        "not UTF-8",
        "download",
        {"data": {"url": "in/latin1.tsv"}},
        "latin1.tsv:301: not valid UTF-8",
    ),
    ("1 MB line", "download", {"data": {"url": "in/long.tsv"}}, "long.tsv:301: line longer than"),
    (
        "sha256 mismatch",
        "download",
        {"data": {"url": "in/good.tsv", "sha256": "0" * 64}},
        "sha256 mismatch",
    ),
    (
        "unreachable URL",
        "download",
        {"data": {"url": "http://127.0.0.1:9/spa-eng.zip"}},
        "cannot download http://127.0.0.1:9/spa-eng.zip",
    ),
    (
        "unsupported scheme",
        "download",
        {"data": {"url": "ftp://example.org/x.zip"}},
        "unsupported scheme 'ftp'",
    ),
    ("tar archive", "download", {"data": {"url": "in/corpus.tar.gz"}}, "tar archives are not"),
    (
        "zip-slip member",
        "download",
        {"data": {"url": "in/slip.zip"}},
        "unsafe member path '../../evil.txt'",
    ),
    (
        "absolute member",
        "download",
        {"data": {"url": "in/abs.zip"}},
        "unsafe member path '/tmp/evil.txt'",
    ),
    ("symlink member", "download", {"data": {"url": "in/link.zip"}}, "is a symbolic link"),
    (
        "unknown source kind",
        "download",
        {"data": {"source": "ftp"}},
        "'data.source' must be one of ['sample', 'url', 'opus'], got 'ftp'",
    ),
    (
        "unknown key",
        "download",
        {"data": {"urll": "x"}},
        "unknown params key 'data.urll' (did you mean 'data.url'?)",
    ),
    (
        "unknown section",
        "download",
        {"evaluation": {}},
        "unknown params key 'evaluation' (did you mean 'evaluate'?)",
    ),
    ("wrong type", "download", {"train": {"epochs": "many"}}, "'train.epochs' must be int"),
    (
        "negative vocab",
        "download",
        {"tokenizer": {"src_vocab_size": -5}},
        "'tokenizer.src_vocab_size' must be >= 8, got -5",
    ),
    (
        "same languages",
        "download",
        {"data": {"tgt_lang": "en"}},
        "data.src_lang and data.tgt_lang are both 'en'",
    ),
    (
        "OPUS without network",
        "download",
        {"data": {"source": "opus", "corpus": "Tatoeba"}},
        "cannot read OPUS corpus 'Tatoeba' release 'latest' (en-es)",
    ),
    (
        "filtering empties corpus",
        "clean",
        {"data": {"url": "in/html.tsv"}},
        "cleaning removed every pair",
    ),
    (
        "dev+test >= corpus",
        "split",
        {"split": {"dev_size": 200, "test_size": 150}},
        "leave no training data out of",
    ),
    (
        "vocab too large",
        "tokenize",
        {"tokenizer": {"src_vocab_size": 20000}},
        "tokenizer.src_vocab_size=20000: SentencePiece training failed: Vocabulary size too high",
    ),
]
STAGE_ARGS = {
    "download": ["--out", "data/raw"],
    "clean": [
        "--raw",
        "data/raw",
        "--filters",
        str(Path(__file__).parents[1] / "pipeline" / "opusfilter.yaml"),
        "--out",
        "data/clean",
        "--report",
        "reports/clean.json",
    ],
    "split": ["--clean", "data/clean", "--out", "data/split"],
    "tokenize": ["--split", "data/split", "--out", "data/tokenizers"],
}
OUTPUTS = {
    "download": ["data/raw"],
    "clean": ["data/clean", "reports/clean.json"],
    "split": ["data/split"],
    "tokenize": ["data/tokenizers"],
}


def write_params(project: Path, params: dict) -> None:
    merged = {"data": {"source": "url", "url": "in/good.tsv"}}
    for section, values in params.items():
        merged.setdefault(section, {}).update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(merged))


def run_stage(stage: str, capsys) -> tuple[int, list[str]]:
    code = cli.main([stage, *STAGE_ARGS[stage]])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def project(tmp_path, monkeypatch, capsys):
    """A project whose stages have all run once on good input (the earlier outputs)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    make_inputs(tmp_path / "in")
    write_params(
        tmp_path,
        {
            "split": {"dev_size": 20, "test_size": 20},
            "tokenizer": {"src_vocab_size": 200, "tgt_vocab_size": 200},
        },
    )
    for stage in STAGE_ARGS:
        assert run_stage(stage, capsys)[0] == 0
    return tmp_path


@pytest.mark.parametrize("case, stage, params, message", MATRIX, ids=[m[0] for m in MATRIX])
def test_robustness_bad_input_matrix(project, capsys, monkeypatch, case, stage, params, message):
    for proxy in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # no test reaches the network
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    if stage in ("split", "tokenize"):
        base = {
            "split": {"dev_size": 20, "test_size": 20},
            "tokenizer": {"src_vocab_size": 200, "tgt_vocab_size": 200},
        }
        params = {**base, **params}
    write_params(project, params)
    if stage == "clean":  # its bad input is a corpus that downloads fine
        assert run_stage("download", capsys)[0] == 0
    before = {out: tree_digest(project / out) for out in sum(OUTPUTS.values(), [])}
    code, err = run_stage(stage, capsys)
    assert code == 1, err
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1 and errors[0].startswith(f"nmtpipe {stage}: error: "), err
    assert message in errors[0], errors[0]
    after = {out: tree_digest(project / out) for out in before}
    assert after == before  # earlier outputs untouched, nothing partial written
    leftovers = [p for p in project.rglob(".*") if ".tmp-" in p.name or ".scratch-" in p.name]
    assert not leftovers
    assert not (project.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_robustness_zip_bomb_is_refused(project, capsys, monkeypatch):
    monkeypatch.setattr(sources, "MAX_TEXT_BYTES", 10_000)
    write_params(project, {"data": {"url": "in/good.zip"}})
    code, err = run_stage("download", capsys)
    assert code == 1 and "unpacks to" in err[-1] and "(limit 10000)" in err[-1]


def test_robustness_dirty_input_is_cleaned_and_counted(project, capsys):
    dirty = (
        "\ufeffHello  there.\tHola.\r\n"
        "Good\x00 night.\tBuenas\u200b noches.\r\n"
        "  Thank you.  \tGracias.\x07\r\n"
    )
    (project / "in/dirty.tsv").write_text(dirty + GOOD.replace("\n", "\r\n"), encoding="utf-8")
    write_params(project, {"data": {"url": "in/dirty.tsv"}})
    assert run_stage("download", capsys)[0] == 0
    assert run_stage("clean", capsys)[0] == 0
    report = json.loads((project / "reports/clean.json").read_text())
    assert report["fixed_on_read"] == {"blank_lines": 0, "bom": 1, "crlf_lines": 303}
    assert report["modified"]["normalize"] == 3
    clean = (project / "data/clean/src.txt").read_text(encoding="utf-8").splitlines()
    assert clean[:3] == ["Hello there.", "Good night.", "Thank you."]
    assert (project / "data/clean/tgt.txt").read_text(encoding="utf-8").splitlines()[1] == (
        "Buenas noches."
    )


# --- faults: SIGKILL in the middle of a stage --------------------------------------------


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "NMTPIPE_PROGRESS": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "nmtpipe", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    """SIGKILL proc as soon as ready() is true (the stage is mid-way)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "stage ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def temporaries(project: Path, name: str) -> list[Path]:
    return [p for p in project.rglob(f".{name}.*") if ".tmp-" in p.name or ".scratch" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize("stage, output", [("download", "raw"), ("clean", "clean")])
def test_robustness_kill_data_stage_keeps_old_output_and_recovers(project, capsys, stage, output):
    big = project / "in/big.tsv"
    big.write_text(
        "".join(f"{i} {en}\t{i} {es}\n" for i in range(300) for en, es in sample_pairs(300)),
        encoding="utf-8",
    )
    write_params(project, {"data": {"url": "in/big.tsv"}})
    if stage == "clean":
        assert run_stage("download", capsys)[0] == 0
    before = tree_digest(project / "data" / output)
    proc = start([stage, *STAGE_ARGS[stage]], project)
    kill_when(proc, lambda: temporaries(project, output))
    assert tree_digest(project / "data" / output) == before  # old output, whole
    assert run_stage(stage, capsys)[0] == 0  # the next run recovers ...
    assert not temporaries(project, output)  # ... and removes what the killed one left
    lines = (project / "data" / output / "src.txt").read_text(encoding="utf-8").count("\n")
    assert lines > 80_000


# --- translate never crashes ---------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained but complete en->es model directory (fast to build)."""
    from nmtpipe.model.build import build_model
    from nmtpipe.modeldir import save_model_dir

    root = tmp_path_factory.mktemp("model")
    pairs = sample_pairs(400)
    (root / "split").mkdir()
    write_lines(root / "split/train.src", [s for s, _ in pairs])
    write_lines(root / "split/train.tgt", [t for _, t in pairs])
    train_tokenizers(
        root / "split", TokenizerConfig(src_vocab_size=200, tgt_vocab_size=200), root / "tok"
    )
    cfg = ModelConfig(embedding_dim=8, units=16)
    (root / "model").mkdir()
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": 200, "tgt_vocab_size": 200}
    save_model_dir(root / "model", build_model(cfg, 200, 200), config, root / "tok")
    return root / "model"


def translate(model_dir: Path, data: bytes, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nmtpipe", "translate", "--model", str(model_dir), *args],
        input=data,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.slow
def test_robustness_translate_hostile_input(model_dir):
    lines = [
        b"Hello.",
        b"",
        b"   \t ",
        b"caf\xe9 \xff\xfe broken",
        b"\xf0\x9f\x98\x80 \xe2\x80\xae",
        b"word " * 2000,
        b"\x00\x01\x02",
        "日本語のテキスト".encode(),
        b"Bye.\r",
    ]
    result = translate(model_dir, b"\n".join(lines) + b"\n", "--beam", "3")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode("utf-8").split("\n")
    assert len(out) == len(lines) + 1 and out[-1] == ""
    assert out[1] == "" and out[2] == ""
    err = result.stderr.decode()
    assert "not valid UTF-8" in err and "longer than 256 pieces were truncated" in err


@pytest.mark.slow
def test_robustness_translate_refuses_another_pair(model_dir):
    result = translate(model_dir, b"Hola.\n", "--src-lang", "es", "--tgt-lang", "en")
    assert result.returncode == 1 and result.stdout == b""
    assert "model translates en->es, not es->en" in result.stderr.decode().splitlines()[-1]


@pytest.mark.slow
def test_robustness_translate_corrupt_model(model_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "src.model", "tgt.model"):
        (broken / name).write_bytes((model_dir / name).read_bytes())
    (broken / "model.keras").write_bytes(b"garbage")
    result = translate(broken, b"Hello.\n")
    assert result.returncode == 1
    assert "model.keras: cannot load model" in result.stderr.decode().splitlines()[-1]


@pytest.fixture(scope="module")
def loaded(model_dir):
    from nmtpipe.modeldir import load_model_dir
    from nmtpipe.search.tensorflow_engine import TensorFlowEngine

    return TensorFlowEngine(load_model_dir(model_dir))


@pytest.mark.slow  # 30 examples through greedy search: ~10 s
@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=6))
def test_robustness_translate_any_unicode(loaded, sentences):
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.translator import translate_sentences

    hyps = translate_sentences(loaded, sentences, SearchSettings(max_len_ratio=0.5), 4)
    assert len(hyps) == len(sentences)
    assert all(isinstance(h, str) for h in hyps)
    assert all(h == "" for h, s in zip(hyps, sentences, strict=True) if not s.strip())


@pytest.mark.slow
def test_robustness_translate_a_transformer_of_the_unfused_layout(model_dir, tmp_path):
    """A Transformer saved before the fused attention projections: one line, retrain."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("model.keras", "src.model", "tgt.model"):
        (old / name).write_bytes((model_dir / name).read_bytes())
    config = json.loads((model_dir / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "model": {"arch": "transformer"}}))
    result = translate(old, b"Hello.\n")
    assert result.returncode == 1 and result.stdout == b""
    assert (
        result.stderr.decode()
        .splitlines()[-1]
        .endswith(
            "saved in weight layout 1, this nmtpipe reads layout 2 for model.arch transformer: "
            "retrain it (dvc repro)"
        )
    )
