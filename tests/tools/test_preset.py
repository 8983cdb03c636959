"""`nmtpipe preset`: presets written into params.yaml with its comments kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from nmtpipe.config import load_params
from nmtpipe.tools.preset import available, main
from tests.conftest import ROOT, run_nmtpipe

PRESETS = ROOT / "pipeline" / "presets"


@pytest.fixture
def params_file(tmp_path) -> Path:
    path = tmp_path / "params.yaml"
    shutil.copyfile(ROOT / "params.yaml", path)
    return path


def comments(text: str) -> list[str]:
    """Every comment of a YAML text, in order (the text after the first '#' of a line)."""
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def flat(path: Path) -> dict[str, object]:
    """A params or preset file as {section.key: value}."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {f"{s}.{k}": v for s, values in raw.items() for k, v in values.items()}


@pytest.mark.parametrize("name", ["tatoeba-en-es", "tatoeba-es-en"])
def test_preset_sets_its_keys_and_keeps_comments_and_other_values(params_file, capsys, name):
    before_text, before = params_file.read_text(), flat(params_file)
    preset = flat(PRESETS / f"{name}.yaml")

    main([name, "--params", str(params_file), "--presets", str(PRESETS)])

    after_text, after = params_file.read_text(), flat(params_file)
    assert comments(after_text) == comments(before_text)
    assert list(after) == list(before)  # key order kept, no key added (all already there)
    assert {k: after[k] for k in preset} == preset
    assert {k: v for k, v in after.items() if k not in preset} == {
        k: v for k, v in before.items() if k not in preset
    }
    changed = [k for k in preset if before[k] != preset[k]]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == changed
    assert 'data.source: "sample" -> "url"' in lines
    assert "columns: [en, es]" in after_text  # flow lists stay flow lists
    params = load_params(params_file)
    assert params.data.url == "https://www.manythings.org/anki/spa-eng.zip"
    assert params.data.src_lang == name.split("-")[1]
    assert params.model.embedding_dim == 256


def test_preset_changes_only_lines_of_changed_values(params_file):
    before = params_file.read_text().splitlines()
    main(["tatoeba-en-es", "--params", str(params_file), "--presets", str(PRESETS)])
    after = params_file.read_text().splitlines()
    assert len(after) == len(before)
    differ = [b.split(":")[0].strip() for b, a in zip(before, after, strict=True) if b != a]
    preset_keys = {key.split(".")[1] for key in flat(PRESETS / "tatoeba-en-es.yaml")}
    assert differ and set(differ) <= preset_keys


def test_preset_adds_keys_missing_from_params(tmp_path, capsys):
    params_file = tmp_path / "params.yaml"
    params_file.write_text("# mine\nmodel:\n  embedding_dim: 128  # small\n")
    main(["tatoeba-es-en", "--params", str(params_file), "--presets", str(PRESETS)])
    text = params_file.read_text()
    assert text.startswith("# mine\nmodel:\n  embedding_dim: 256  # small\n")
    params = load_params(params_file)
    assert (params.data.src_lang, params.train.max_tokens) == ("es", 3072)
    assert params.train.adam_epsilon == 1e-9  # written back as a float (1.0e-09)
    assert "model.embedding_dim: 128 -> 256" in capsys.readouterr().out


def test_preset_again_changes_nothing(params_file, capsys):
    args = ["tatoeba-en-es", "--params", str(params_file), "--presets", str(PRESETS)]
    main(args)
    once = params_file.read_bytes()
    main(args)
    assert params_file.read_bytes() == once
    assert "0 value(s) changed" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.slow
def test_list_shows_presets_with_their_first_comment_line():
    presets = available(PRESETS)
    assert set(presets) >= {"tatoeba-en-es", "tatoeba-es-en", "tatoeba-en-es-lstm"}
    assert presets["tatoeba-en-es"].startswith("Tatoeba English->Spanish")
    result = run_nmtpipe("preset", "--list", cwd=ROOT)
    assert result.returncode == 0
    assert "tatoeba-es-en        Tatoeba Spanish->English" in result.stdout.decode()


@pytest.mark.slow
def test_unknown_preset_is_one_line_error(params_file):
    result = run_nmtpipe("preset", "tatoeba-en-fr", "--params", str(params_file), cwd=ROOT)
    assert result.returncode == 1 and result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        "nmtpipe preset: error: no preset 'tatoeba-en-fr' in pipeline/presets "
        f"(available: {', '.join(available(PRESETS))})"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, message",
    [
        (
            "model:\n  units: 512\n  unit: 3\n",
            "bad.yaml: unknown params key 'model.unit' (did you mean 'model.units'?)",
        ),
        ("trian:\n  epochs: 3\n", "bad.yaml: unknown params key 'trian' (did you mean 'train'?)"),
        ("train:\n  epochs: ten\n", "bad.yaml: params key 'train.epochs' must be int, got 'ten'"),
        ("data:\n  src_lang: es\n", "bad.yaml: data.src_lang and data.tgt_lang are both 'es'"),
        ("data: url\n", "bad.yaml: section 'data' must be a mapping, got 'url'"),
        ("model:\n  units: [\n", "bad.yaml: line 3:"),
    ],
)
def test_bad_preset_is_one_line_error_and_params_unchanged(tmp_path, params_file, preset, message):
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "bad.yaml").write_text(preset)
    before = params_file.read_bytes()
    result = run_nmtpipe(
        "preset", "bad", "--params", str(params_file), "--presets", str(tmp_path / "presets")
    )
    assert result.returncode == 1 and result.stdout == b""
    err = result.stderr.decode().splitlines()
    assert len(err) == 1 and err[0].startswith("nmtpipe preset: error: ") and message in err[0]
    assert params_file.read_bytes() == before
