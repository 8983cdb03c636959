"""The translator's contract on both engines, and how load_engine picks one."""

from __future__ import annotations

import logging
import shutil

import pytest

from nmtpipe.errors import ConfigError, ModelError
from nmtpipe.ids.tokenizer import encode_source
from nmtpipe.search.ctranslate2_engine import call_runs
from nmtpipe.search.settings import SearchSettings
from nmtpipe.search.translator import load_engine, translate_sentences
from tests.tiny_exports import PAIRS, transformer_dirs

ENGINES = ("tensorflow", "ctranslate2")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """(model directory, CTranslate2 directory) of one tiny random Transformer."""
    return transformer_dirs(tmp_path_factory.mktemp("translator"))


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, dirs):
    model_dir, ct2_dir = dirs
    return load_engine(model_dir if request.param == "tensorflow" else ct2_dir, request.param)


def distinct_lengths(sp_src, count: int) -> list[str]:
    """count sample sources of pairwise different piece counts (so any input order sorts
    into the same batch order)."""
    by_length = {}
    for src, _ in PAIRS:
        by_length.setdefault(len(sp_src.encode(src)), src)
    assert len(by_length) >= count
    return list(by_length.values())[:count]


def test_one_output_per_input_in_order_blank_lines_empty(engine):
    sentences = distinct_lengths(engine.sp_src, 12)
    plain = translate_sentences(engine, sentences, batch_size=64)
    mixed = [line for s in reversed(sentences) for line in (s, "", " \t\u3000")]
    out = translate_sentences(engine, mixed, batch_size=64)
    assert len(out) == len(mixed) and out[1::3] == out[2::3] == [""] * 12
    assert out[0::3] == plain[::-1]
    # each output is the engine's own translation of its source, in the sorted batch
    src = sorted(encode_source(engine.sp_src, sentences), key=len)
    (hyps,) = engine.decode_batches([src], SearchSettings())
    by_src = {tuple(ids): engine.sp_tgt.decode(hyp) for ids, hyp in zip(src, hyps, strict=True)}
    assert plain == [by_src[tuple(ids)] for ids in encode_source(engine.sp_src, sentences)]
    assert len(set(plain)) > 1
    assert (
        translate_sentences(engine, ["", " "]) == ["", ""] and translate_sentences(engine, []) == []
    )


def test_long_inputs_are_truncated_with_a_warning(engine, caplog):
    settings = SearchSettings(max_len_ratio=0.1)
    with caplog.at_level(logging.WARNING, logger="nmtpipe.search.translator"):
        out = translate_sentences(engine, ["word " * 300, "Hello.", "word " * 400], settings)
    assert caplog.messages == ["2 input(s) longer than 256 pieces were truncated"]
    assert out[0] == out[2] and len(out) == 3  # both cut to the same 255 pieces + EOS


def test_truncate_keeps_eos():
    from nmtpipe.model.ids import EOS_ID
    from nmtpipe.search.translator import MAX_INPUT_PIECES, truncate

    ids = list(range(4, 304))
    assert truncate(ids) == ids[: MAX_INPUT_PIECES - 1] + [EOS_ID]
    assert truncate(ids[:MAX_INPUT_PIECES]) == ids[:MAX_INPUT_PIECES]


def test_load_engine_picks_by_directory(dirs):
    model_dir, ct2_dir = dirs
    assert load_engine(model_dir).name == "tensorflow"
    assert load_engine(ct2_dir).name == "ctranslate2"
    assert load_engine(ct2_dir.parent).name == "ctranslate2"  # an export directory
    assert load_engine(ct2_dir, "ctranslate2", ("en", "es")).name == "ctranslate2"


def test_load_engine_refuses_the_wrong_directory_in_one_line(dirs, tmp_path):
    model_dir, ct2_dir = dirs
    with pytest.raises(ModelError, match=f"^{model_dir}: no CTranslate2 model .*--engine ctr"):
        load_engine(model_dir, "ctranslate2")
    with pytest.raises(ModelError, match=r"a CTranslate2 model: --engine tensorflow needs a tr"):
        load_engine(ct2_dir, "tensorflow")
    with pytest.raises(ModelError, match=r": model translates en->es, not de->es$"):
        load_engine(ct2_dir, pair=("de", None))
    broken = tmp_path / "broken"
    shutil.copytree(ct2_dir, broken)
    (broken / "model.bin").unlink()
    with pytest.raises(ModelError, match=f"^{broken}: cannot load the CTranslate2 model "):
        load_engine(broken)


def test_a_limit_beyond_the_ctranslate2_position_table_is_one_line(dirs):
    engine = load_engine(dirs[1])
    with pytest.raises(ConfigError, match=r"^max_len_ratio 5.0 allows 1290 target pieces, but "):
        translate_sentences(engine, ["Hello."], SearchSettings(max_len_ratio=5.0))


def test_greedy_is_one_call_per_batch_beam_one_per_limit():
    assert call_runs([12, 12, 14, 14, 14, 16], 1) == [(0, 6)]
    assert call_runs([12, 12, 14, 14, 14, 16], 4) == [(0, 2), (2, 5), (5, 6)]
    assert call_runs([], 1) == call_runs([], 4) == []
