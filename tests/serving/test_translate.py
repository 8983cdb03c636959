"""`nmtpipe translate` with either engine: which model it takes, and no TensorFlow for
CTranslate2."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import run_nmtpipe
from tests.tiny_exports import PAIRS, transformer_dirs

SENTENCES = [s for s, _ in PAIRS[:6]] + ["", "The cat sleeps on my bed every night."]
STDIN = "".join(f"{s}\n" for s in SENTENCES).encode()
# `nmtpipe translate ARGS` in this process, then the TensorFlow modules it imported
NO_TENSORFLOW = textwrap.dedent(
    """
    import sys
    from nmtpipe.cli import main
    code = main(["translate", *sys.argv[1:]])
    loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")]
    sys.stderr.write(f"loaded: {loaded}\\n")
    sys.exit(code)
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A directory holding the pipeline's data/model and data/export/ctranslate2."""
    root = tmp_path_factory.mktemp("translate")
    transformer_dirs(root / "data")
    return root


def translate_here(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", NO_TENSORFLOW, *args],
        cwd=project,
        input=STDIN,
        capture_output=True,
        timeout=300,
    )


def error_line(result) -> str:
    assert result.returncode == 1 and result.stdout == b""
    [line] = [x for x in result.stderr.decode().splitlines() if x.startswith("nmtpipe ")]
    return line


def test_a_ctranslate2_directory_translates_without_tensorflow(project):
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.translator import load_engine, translate_sentences

    result = translate_here(project, "--model", "data/export/ctranslate2", "--beam", "2")
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines()[-1] == "loaded: []"
    engine = load_engine(project / "data/export/ctranslate2")
    expected = translate_sentences(engine, SENTENCES, SearchSettings(beam_size=2))
    assert result.stdout.decode().splitlines() == expected
    assert expected[6] == "" and len(set(expected)) > 2


def test_without_model_the_pipelines_export_is_taken(project):
    result = translate_here(project)
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "translating with ctranslate2 (data/export/ctranslate2)" in stderr
    assert stderr.splitlines()[-1] == "loaded: []"
    assert len(result.stdout.decode().splitlines()) == len(SENTENCES)


def test_the_engine_asked_for_needs_its_directory(project, tmp_path):
    result = run_nmtpipe(
        "translate", "--model", "data/model", "--engine", "ctranslate2", cwd=project
    )
    assert error_line(result) == (
        "nmtpipe translate: error: data/model: no CTranslate2 model (no nmtpipe.json, nor "
        "ctranslate2/nmtpipe.json): --engine ctranslate2 needs a Transformer's export "
        "(dvc repro export)"
    )
    result = run_nmtpipe(
        "translate", "--model", "data/export/ctranslate2", "--engine", "tensorflow", cwd=project
    )
    assert error_line(result) == (
        "nmtpipe translate: error: data/export/ctranslate2: a CTranslate2 model: --engine "
        "tensorflow needs a trained model directory (model.keras)"
    )
    result = run_nmtpipe("translate", "--engine", "ctranslate2", cwd=tmp_path, stdin=b"Hi.\n")
    assert error_line(result).startswith(
        "nmtpipe translate: error: data/export/ctranslate2: no CTranslate2 model"
    )
    result = run_nmtpipe("translate", "--engine", "jax", cwd=tmp_path)
    assert result.returncode == 2 and b"invalid choice: 'jax'" in result.stderr


@pytest.mark.slow  # imports TensorFlow in a fresh process
def test_engine_tensorflow_takes_the_model_directory_and_agrees(project):
    tensorflow = run_nmtpipe("translate", "--engine", "tensorflow", cwd=project, stdin=STDIN)
    assert tensorflow.returncode == 0, tensorflow.stderr
    assert b"translating with tensorflow (data/model)" in tensorflow.stderr
    ctranslate2 = translate_here(project)
    assert tensorflow.stdout == ctranslate2.stdout  # float32 greedy search: the same pieces
