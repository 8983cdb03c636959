"""docs/params.md and params.yaml's comments come from config/, the one home of each
param's meaning."""

import dataclasses

import pytest

from nmtpipe.errors import ConfigError
from nmtpipe.tools import params_doc
from tests.conftest import ROOT


def test_params_reference_and_params_yaml_comments_are_generated_from_config():
    params_doc.check(ROOT / "docs" / "params.md", ROOT / "params.yaml")


def test_every_key_is_documented_and_commented_once():
    reference = (ROOT / "docs" / "params.md").read_text(encoding="utf-8")
    comments = params_doc.params_comments((ROOT / "params.yaml").read_text(encoding="utf-8"))
    for name, cls in params_doc.sections().items():
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            assert reference.count(f"| `{key}` |") == 1, key
            assert comments[key] == params_doc.comment(f), key
    assert len(comments) == sum(len(dataclasses.fields(c)) for c in params_doc.sections().values())


def test_check_names_a_stale_comment_and_a_stale_reference(tmp_path):
    reference, params = tmp_path / "params.md", tmp_path / "params.yaml"
    params_doc.main(["--params", str(ROOT / "params.yaml"), "--out", str(reference)])
    params.write_text(params_doc.render_params({"train": {"epochs": 3}}), encoding="utf-8")
    params_doc.check(reference, params)  # values may differ from the defaults
    text = params.read_text(encoding="utf-8")
    params.write_text(text.replace("maximum number of epochs", "epochs to train"))
    with pytest.raises(
        ConfigError, match=r"comments of train\.epochs differ from src/nmtpipe/config/"
    ):
        params_doc.check(reference, params)
    reference.write_text(reference.read_text().replace("train.epochs", "train.epoch"))
    with pytest.raises(ConfigError, match="params.md: not generated from config/"):
        params_doc.check(reference, params)


def test_regenerated_params_yaml_keeps_every_value(tmp_path):
    import yaml

    values = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    text = params_doc.render_params(values)
    assert yaml.safe_load(text) == values
    assert text == (ROOT / "params.yaml").read_text(encoding="utf-8")
