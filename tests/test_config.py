import dataclasses
from pathlib import Path

import pytest
import yaml

from nmtpipe.config import ModelConfig, Params, TrainConfig, load_params, params_from_dict
from nmtpipe.errors import ConfigError
from tests.conftest import ROOT


def test_repo_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.data.source == "sample"
    assert (params.data.src_lang, params.data.tgt_lang) == ("en", "es")


def test_empty_sections_take_defaults():
    assert params_from_dict({"train": None}) == Params()


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            {"train": {"epoch": 3}},
            "unknown params key 'train.epoch' (did you mean 'train.epochs'?)",
        ),
        ({"trian": {}}, "unknown params key 'trian' (did you mean 'train'?)"),
        ({"train": {"epochs": "ten"}}, "'train.epochs' must be int, got 'ten'"),
        ({"train": {"epochs": True}}, "'train.epochs' must be int"),
        ({"tokenizer": {"src_vocab_size": -5}}, "'tokenizer.src_vocab_size' must be >= 8, got -5"),
        ({"model": {"attention": "cosine"}}, "must be one of ['none', 'bahdanau', 'luong']"),
        ({"model": {"dropout": 1.5}}, "'model.dropout' must be <= 0.9"),
        ({"data": {"src_lang": "es"}}, "data.src_lang and data.tgt_lang are both 'es'"),
        ({"data": {"source": "url"}}, "data.url is empty"),
        ({"data": {"columns": "en"}}, "'data.columns' must be a list of strings"),
        ({"data": {"sha256": "abc"}}, "data.sha256 must be 64 hex digits"),
        ({"clean": {"min_words": 5, "max_words": 2}}, "clean.min_words (5) is above"),
        ({"model": {"units": 15}}, "model.units must be even"),
        ({"model": {"encoder_layers": 0}}, "'model.encoder_layers' must be >= 1, got 0"),
        ({"train": {"label_smoothing": 1.0}}, "train.label_smoothing must be below 1, got 1.0"),
        ({"train": {"plateau_factor": 1}}, "train.plateau_factor must be between 0 and 1"),
        ({"train": {"adam_beta2": 1.0}}, "train.adam_beta2 must be below 1, got 1.0"),
        ({"train": {"precision": "bf16"}}, "must be one of ['auto', 'float32', 'mixed_bfloat16'"),
        (
            {"train": {"max_tokens": 100, "max_src_len": 64, "max_tgt_len": 64}},
            "train.max_tokens (100) must hold one pair of the longest length allowed: at least "
            "2 x max(max_src_len, max_tgt_len + 1) = 130",
        ),
        (
            {"train": {"lr_schedule": "cosine"}},
            "must be one of ['constant', 'warmup_inverse_sqrt', 'warmup_cosine', 'plateau']",
        ),
        (
            {"train": {"lr_schedule": "warmup_inverse_sqrt", "warmup_steps": 0}},
            "train.lr_schedule warmup_inverse_sqrt needs train.warmup_steps >= 1",
        ),
        (
            {"train": {"lr_schedule": "plateau", "plateau_patience": 5}},
            "train.plateau_patience (5) must be below train.patience (5)",
        ),
        (
            {"tokenizer": {"shared": True, "src_vocab_size": 500}},
            "tokenizer.shared needs tokenizer.src_vocab_size (500) = tokenizer.tgt_vocab_size",
        ),
        (
            {"model": {"share_embeddings": True}},
            "model.share_embeddings needs tokenizer.shared: true",
        ),
        (
            {
                "tokenizer": {"shared": True},
                "model": {"share_embeddings": True, "tgt_embeddings": "vectors.txt"},
            },
            "model.tgt_embeddings must be empty with model.share_embeddings",
        ),
        (["a"], "params.yaml must be a mapping"),
    ],
)
def test_invalid_params_name_the_key(raw, message):
    with pytest.raises(ConfigError) as err:
        params_from_dict(raw)
    assert message in str(err.value)


def test_shared_vocabulary_and_embeddings():
    params = params_from_dict(
        {"tokenizer": {"shared": True}, "model": {"share_embeddings": True, "src_embeddings": "v"}}
    )
    assert params.tokenizer.shared and params.model.share_embeddings
    assert params.model.network()["share_embeddings"] is True


def test_a_count_or_a_named_choice():
    assert params_from_dict({"clean": {"n_jobs": "auto"}}).clean.n_jobs == "auto"
    assert params_from_dict({"clean": {"n_jobs": 2}}).clean.n_jobs == 2
    with pytest.raises(ConfigError, match=r"'clean.n_jobs' must be one of \['auto'\], got 'all'"):
        params_from_dict({"clean": {"n_jobs": "all"}})
    with pytest.raises(ConfigError, match="'clean.n_jobs' must be >= 1, got 0"):
        params_from_dict({"clean": {"n_jobs": 0}})


def test_floats_accept_ints():
    assert params_from_dict({"train": {"learning_rate": 1}}).train.learning_rate == 1


def test_load_params_errors_name_the_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+"):
        load_params(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("model:\n  cel: gru\n")
    with pytest.raises(ConfigError, match="wrong.yaml: unknown params key 'model.cel'"):
        load_params(wrong)


def test_train_stage_tracks_every_model_and_train_param():
    """dvc.yaml lists each model.* and train.* key, so that changing one re-runs training."""
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["train"]
    keys = {
        f"{section}.{f.name}"
        for section, cls in (("model", ModelConfig), ("train", TrainConfig))
        for f in dataclasses.fields(cls)
    }
    assert keys <= set(stage["params"])


def test_nmtpipe_threads_caps_cores_and_is_checked(monkeypatch):
    from nmtpipe.cores import thread_cap, usable_cores

    monkeypatch.setenv("NMTPIPE_THREADS", "1")
    assert thread_cap() == 1 and usable_cores() == 1
    monkeypatch.setenv("NMTPIPE_THREADS", "")
    assert thread_cap() is None and usable_cores() >= 1
    monkeypatch.setenv("NMTPIPE_THREADS", "two")
    with pytest.raises(
        ConfigError, match="NMTPIPE_THREADS must be a positive whole number, got 'two'"
    ):
        usable_cores()
