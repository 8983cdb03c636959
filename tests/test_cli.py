"""The `nmtpipe` command as a user meets it: exit codes and one-line errors."""

from pathlib import Path

import pytest

from tests.conftest import ROOT, run_nmtpipe

pytestmark = pytest.mark.slow  # every test starts the `nmtpipe` command


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.decode().splitlines() if ": error: " in line]


def test_help_and_unknown_command():
    assert run_nmtpipe("--help").returncode == 0
    result = run_nmtpipe("translte")
    assert result.returncode == 2
    assert error_lines(result) == [
        "nmtpipe: error: unknown command 'translte' (did you mean 'translate'?)"
    ]


@pytest.mark.parametrize(
    "params, message",
    [
        ("data:\n  sorce: url\n", "unknown params key 'data.sorce' (did you mean 'data.source'?)"),
        ("data:\n  source: ftp\n", "'data.source' must be one of ['sample', 'url', 'opus']"),
        ("split:\n  test_size: -1\n", "'split.test_size' must be >= 0"),
        ("tokenizer:\n  src_vocab_size: many\n", "'tokenizer.src_vocab_size' must be int"),
        ("data:\n  source: url\n  url: missing.zip\n", "missing.zip: file not found"),
        ("data:\n  source: opus\n  corpus: Tatoeba\n  src_lang: xx\n", "cannot read OPUS corpus"),
    ],
)
def test_download_stage_errors(tmp_path: Path, params: str, message: str):
    (tmp_path / "params.yaml").write_text(params)
    result = run_nmtpipe(
        "download",
        "--out",
        "data/raw",
        cwd=tmp_path,
        env={"no_proxy": "*", "https_proxy": "http://127.0.0.1:9"},
    )
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith("nmtpipe download: error: ") and message in line, line
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_stage_with_missing_input(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("{}\n")
    result = run_nmtpipe("split", "--clean", "data/clean", "--out", "data/split", cwd=tmp_path)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "data/clean/src.txt: cleaned corpus not found (run clean)" in line
    assert not (tmp_path / "data/split").exists()


def test_misaligned_cleaned_corpus(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("{}\n")
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean/src.txt").write_text("a\nb\n")
    (tmp_path / "clean/tgt.txt").write_text("a\n")
    result = run_nmtpipe("split", "--clean", "clean", "--out", "split", cwd=tmp_path)
    assert result.returncode == 1
    assert "2 source lines but 1 target lines" in error_lines(result)[0]


def test_translate_without_a_model(tmp_path: Path):
    result = run_nmtpipe("translate", "--model", str(tmp_path / "nomodel"), stdin=b"Hello.\n")
    assert result.returncode == 1 and result.stdout == b""
    [line] = error_lines(result)
    assert "nomodel/model.keras: trained model not found" in line


def test_stage_usage_error_exits_2(tmp_path: Path):
    result = run_nmtpipe("clean", "--raw", "x", cwd=tmp_path)
    assert result.returncode == 2
    assert b"the following arguments are required" in result.stderr


def test_repo_params_file_is_found_from_the_project_root():
    result = run_nmtpipe("download", "--help", cwd=ROOT)
    assert result.returncode == 0 and b"--params" in result.stdout
