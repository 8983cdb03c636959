"""The CTranslate2 export: the converted Transformer scores and searches as the Keras one."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

from nmtpipe.config import ExportConfig, ModelConfig
from tests.serving.conftest import PAIRS, TINY, tokenizer_pair

ctranslate2 = pytest.importorskip("ctranslate2")

VARIANTS = {  # ModelConfig options; "shared" also needs one (shared) tokenizer
    "untied-2x1": {"encoder_layers": 2, "decoder_layers": 1},
    "tied-1x2": {"encoder_layers": 1, "decoder_layers": 2, "tie_embeddings": True},
    "shared-2x2": {"tie_embeddings": True, "share_embeddings": True},
}
SCORE_TOLERANCE = 5e-6  # absolute, per token log-probability; a wrong epsilon is 1e-5 off
QUANTIZATIONS = {f.name: f for f in dataclasses.fields(ExportConfig)}["quantization"].metadata[
    "choices"
]


def randomise(model, seed: int) -> None:
    """Every weight random, biases and layer-norm betas included, gammas around 1, so that
    a tensor mapped to the wrong place (or left at Keras' zeros/ones) changes the scores."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        centre = 1.0 if variable.name == "gamma" else 0.0
        variable.assign(centre + rng.normal(0.0, 0.3, variable.shape).astype("float32"))


@pytest.fixture(scope="module", params=list(VARIANTS))
def converted(request, tokenizers, tmp_path_factory):
    """(Keras model, sp_src, sp_tgt, float32 CTranslate2 Translator) of a random model."""
    from nmtpipe.model.build import build_model
    from nmtpipe.serving.ctranslate2_export import KerasTransformerConverter

    options = VARIANTS[request.param]
    sp_src, sp_tgt = tokenizer_pair(tokenizers[options.get("share_embeddings", False)])
    model = build_model(dataclasses.replace(TINY, **options), 200, 200)
    randomise(model, seed=len(request.param))
    out = tmp_path_factory.mktemp("ct2") / "model"
    KerasTransformerConverter(model, sp_src, sp_tgt).convert(str(out), quantization="float32")
    return model, sp_src, sp_tgt, ctranslate2.Translator(str(out), device="cpu")


def keras_log_probs(model, src_ids, tgt_ids) -> list[np.ndarray]:
    """Teacher-forced log-probabilities of each target piece and its EOS, per sentence."""
    from nmtpipe.search.decoders import pad_batch

    src = pad_batch(src_ids)
    tgt_in = pad_batch([[2] + ids for ids in tgt_ids])  # from <s>
    tgt_out = pad_batch([ids + [3] for ids in tgt_ids])  # to </s>
    logits = np.asarray(model((src, tgt_in)), dtype=np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # float64 log_softmax
    gathered = np.take_along_axis(log_probs, tgt_out[..., None], axis=-1)[..., 0]
    return [row[: len(ids) + 1] for row, ids in zip(gathered, tgt_ids, strict=True)]


def test_float32_scores_equal_the_keras_model(converted):
    """score_batch of (source, target) pieces = Keras' teacher-forced log-probabilities."""
    from nmtpipe.ids.tokenizer import encode_source

    model, sp_src, sp_tgt, translator = converted
    src, tgt = [s for s, _ in PAIRS[:12]], [t for _, t in PAIRS[:12]]
    tgt[3] = tgt[3] + " " + tgt[4]  # targets of several lengths in one batch
    expected = keras_log_probs(model, encode_source(sp_src, src), sp_tgt.encode(tgt))
    # CTranslate2 adds the source EOS itself (add_source_eos): pieces only
    scored = translator.score_batch(
        sp_src.encode(src, out_type=str), sp_tgt.encode(tgt, out_type=str)
    )
    for result, want in zip(scored, expected, strict=True):
        assert result.tokens[-1] == "</s>" and len(result.log_probs) == len(want)
        np.testing.assert_allclose(result.log_probs, want, rtol=0, atol=SCORE_TOLERANCE)


def test_the_spec_carries_the_models_epsilon_and_eos(converted, tmp_path):
    from nmtpipe.serving.ctranslate2_export import KerasTransformerConverter

    model, sp_src, sp_tgt, _ = converted
    KerasTransformerConverter(model, sp_src, sp_tgt, 600).convert(str(tmp_path / "m"))
    config = json.loads((tmp_path / "m/config.json").read_text())
    assert config["layer_norm_epsilon"] == pytest.approx(1e-6) == model.encoder_norm.epsilon
    assert config["add_source_eos"] is True and config["decoder_start_token"] == "<s>"


@pytest.mark.slow
def test_greedy_output_equals_nmtpipe_greedy_search(trained_dir, tmp_path):
    """CTranslate2's greedy search (beam 1, each sentence with nmtpipe's own length limit)
    gives nmtpipe's greedy pieces, token for token."""
    from nmtpipe.ids.tokenizer import encode_source
    from nmtpipe.modeldir import load_model_dir
    from nmtpipe.search.decoders import make_decoder
    from nmtpipe.search.loop import EXTRA_PIECES
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.serving.ctranslate2_export import KerasTransformerConverter

    trained, ratio = load_model_dir(trained_dir), 2.0
    converter = KerasTransformerConverter(trained.model, trained.sp_src, trained.sp_tgt)
    translator = ctranslate2.Translator(converter.convert(str(tmp_path / "m")), device="cpu")
    sentences = [s for s, _ in PAIRS[300:324]] + ["The cat sleeps on my bed every night."]
    src_ids = encode_source(trained.sp_src, sentences)
    expected = make_decoder(trained.model, SearchSettings(max_len_ratio=ratio)).decode_batch(
        src_ids
    )
    pieces = trained.sp_src.encode(sentences, out_type=str)
    limits = [int(ratio * len(ids)) + EXTRA_PIECES for ids in src_ids]  # nmtpipe's, EOS incl.
    for source, limit, want in zip(pieces, limits, expected, strict=True):
        (result,) = translator.translate_batch(
            [source], beam_size=1, max_decoding_length=limit, min_decoding_length=0
        )
        assert [trained.sp_tgt.piece_to_id(p) for p in result.hypotheses[0]] == want
    ended = [len(hyp) < limit for hyp, limit in zip(expected, limits, strict=True)]
    assert 2 <= sum(ended) <= len(ended) - 2  # some end with EOS, some at the length limit
    assert len({len(hyp) for hyp in expected}) >= 4 and len(set(map(tuple, expected))) >= 10


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_each_quantization_converts_and_translates(converted, quantization, tmp_path):
    from nmtpipe.serving.ctranslate2_export import KerasTransformerConverter

    model, sp_src, sp_tgt, _ = converted
    out = KerasTransformerConverter(model, sp_src, sp_tgt).convert(
        str(tmp_path / "m"), quantization=quantization
    )
    translator = ctranslate2.Translator(out, device="cpu")
    results = translator.translate_batch(
        sp_src.encode([s for s, _ in PAIRS[:4]], out_type=str), beam_size=1
    )
    assert all(result.hypotheses[0] for result in results)


def test_quantization_is_one_of_ctranslate2s_cpu_types():
    from nmtpipe.config import params_from_dict
    from nmtpipe.errors import ConfigError

    assert params_from_dict({}).export.quantization == "int8"
    with pytest.raises(ConfigError, match=r"^params key 'export.quantization' must be one of "):
        params_from_dict({"export": {"quantization": "bfloat16"}})


def test_a_vocabulary_of_another_size_is_a_model_error(converted, tokenizers):
    from nmtpipe.errors import ModelError
    from nmtpipe.model.build import build_model
    from nmtpipe.serving.ctranslate2_export import KerasTransformerConverter

    _, sp_src, sp_tgt, _ = converted
    model = build_model(TINY, 201, 200)
    with pytest.raises(ModelError, match="^src.model has 200 pieces but the model's src "):
        KerasTransformerConverter(model, sp_src, sp_tgt)._load()


@pytest.mark.slow
def test_export_writes_a_self_contained_int8_model(trained_dir, tmp_path):
    """The export stage's ctranslate2/ (int8 by default) translates with CTranslate2 and
    SentencePiece alone, from its own files."""
    import sentencepiece as spm

    from nmtpipe.serving.export import export_model

    export_model(trained_dir, tmp_path / "export", ExportConfig())
    ct2 = tmp_path / "export/ctranslate2"
    info = json.loads((ct2 / "nmtpipe.json").read_text())
    assert (info["src_lang"], info["tgt_lang"], info["quantization"]) == ("en", "es", "int8")
    assert info["max_positions"] == 1024
    config = json.loads((tmp_path / "export/config.json").read_text())
    assert config["export"]["ctranslate2"] == {"dir": "ctranslate2", "quantization": "int8"}
    sp_src = spm.SentencePieceProcessor(model_file=str(ct2 / "src.model"))
    sp_tgt = spm.SentencePieceProcessor(model_file=str(ct2 / "tgt.model"))
    translator = ctranslate2.Translator(str(ct2), device="cpu", compute_type="int8")
    sentences = [s for s, _ in PAIRS[300:306]]
    results = translator.translate_batch(sp_src.encode(sentences, out_type=str), beam_size=1)
    hyps = [sp_tgt.decode(result.hypotheses[0]) for result in results]
    assert all(hyps) and len(set(hyps)) > 1


@pytest.mark.slow
def test_rnn_export_writes_no_ctranslate2_model(tokenizers, tmp_path, caplog):
    from nmtpipe.model.build import build_model
    from nmtpipe.modeldir import save_model_dir
    from nmtpipe.serving.export import export_model

    (tmp_path / "model").mkdir()
    config = {"src_lang": "en", "tgt_lang": "es", "src_vocab_size": 200, "tgt_vocab_size": 200}
    rnn = build_model(ModelConfig(embedding_dim=8, units=16), 200, 200)
    save_model_dir(tmp_path / "model", rnn, config, tokenizers[False])
    with caplog.at_level(logging.INFO, logger="nmtpipe.serving.export"):
        export_model(tmp_path / "model", tmp_path / "export", ExportConfig(quantization="int16"))
    assert (tmp_path / "export/saved_model.pb").is_file()
    assert not (tmp_path / "export/ctranslate2").exists()
    assert "CTranslate2 has no RNN (model.arch rnn): writing the SavedModel only" in caplog.messages
    assert (
        json.loads((tmp_path / "export/config.json").read_text())["export"]["ctranslate2"] is None
    )


@pytest.fixture(scope="module")
def engines(trained_dir, tmp_path_factory):
    """(TensorFlowEngine, CTranslate2Engine) of the trained model, its float32 export."""
    from nmtpipe.modeldir import load_ctranslate2_dir, load_model_dir
    from nmtpipe.search.ctranslate2_engine import CTranslate2Engine
    from nmtpipe.search.tensorflow_engine import TensorFlowEngine
    from nmtpipe.serving.ctranslate2_export import export_ctranslate2

    trained, out = load_model_dir(trained_dir), tmp_path_factory.mktemp("engines") / "ct2"
    export_ctranslate2(trained, trained_dir, out, "float32", 2.0)
    return TensorFlowEngine(trained), CTranslate2Engine(load_ctranslate2_dir(out))


def sorted_batches(engine, sentences: list[str], batch_size: int) -> list[list[list[int]]]:
    from nmtpipe.ids.tokenizer import encode_source

    src = sorted(encode_source(engine.sp_src, sentences), key=len)
    return [src[i : i + batch_size] for i in range(0, len(src), batch_size)]


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [2.0, 0.6])
def test_the_ctranslate2_engine_is_the_tensorflow_engine_in_greedy_search(engines, ratio):
    """Token for token, in batches of several lengths: CTranslate2 runs each batch with its
    longest limit and cuts each hypothesis to its own, which is exact for greedy search."""
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.translator import translate_sentences

    tensorflow, ctranslate2 = engines
    settings = SearchSettings(max_len_ratio=ratio)
    sentences = [s for s, _ in PAIRS[300:348]] + ["The cat sleeps on my bed every night."]
    batches = sorted_batches(tensorflow, sentences, 8)
    want = list(tensorflow.decode_batches(batches, settings))
    assert list(ctranslate2.decode_batches(batches, settings)) == want
    cut = [  # hypotheses at their own limit, below their batch's longest
        len(hyp) == settings.max_target_len(len(src)) < settings.max_target_len(len(batch[-1]))
        for batch, hyps in zip(batches, want, strict=True)
        for src, hyp in zip(batch, hyps, strict=True)
    ]
    assert sum(cut) >= 2
    assert translate_sentences(ctranslate2, sentences, settings) == translate_sentences(
        tensorflow, sentences, settings
    )


@pytest.mark.slow
@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0])
def test_ctranslate2s_length_penalty_is_nmtpipes(engines, length_penalty):
    """CTranslate2, called as the engine calls it, scores a hypothesis
    log-probability / length**length_penalty with the EOS counted, as nmtpipe's beam search."""
    from nmtpipe.search.ctranslate2_engine import call_options
    from nmtpipe.search.settings import SearchSettings

    model = engines[0].model
    _, ctranslate2 = engines
    sp_src, sp_tgt = ctranslate2.sp_src, ctranslate2.sp_tgt
    sentences = [s for s, _ in PAIRS[300:316]]
    options = call_options(SearchSettings(3, length_penalty), 12)  # some end there, no EOS
    results = ctranslate2.translator.translate_batch(
        sp_src.encode(sentences, out_type=str),
        **{**options, "num_hypotheses": 3, "return_scores": True},
    )
    hyps = [
        (i, h, s)
        for i, r in enumerate(results)
        for h, s in zip(r.hypotheses, r.scores, strict=True)
    ]
    src_ids = [sp_src.encode(sentences[i]) + [3] for i, _, _ in hyps]
    tgt_ids = [[sp_tgt.piece_to_id(p) for p in pieces] for _, pieces, _ in hyps]
    ended = [len(ids) < 12 for ids in tgt_ids]
    assert 0 < sum(ended) < len(hyps)
    log_probs = keras_log_probs(model, src_ids, tgt_ids)  # each piece, then EOS
    for (_, _, score), row, ids, eos in zip(hyps, log_probs, tgt_ids, ended, strict=True):
        length = len(ids) + eos  # the EOS counts where it ended with one
        want = row[:length].sum() / length**length_penalty
        assert score == pytest.approx(want, rel=1e-4, abs=1e-4)


@pytest.mark.slow
def test_both_engines_give_the_same_attention_and_nbest(engines):
    """The page's heat map is the same whichever engine serves (the export's alignment
    heads are the last layer's, averaged as Keras does); n-best lists start with the
    1-best and hold distinct hypotheses."""
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.translator import translate_nbest, translate_with_attention

    sentences = [s for s, _ in PAIRS[300:308]]
    for sentence in sentences:
        (text_tf, tf_attn), (text_ct2, ct2_attn) = (
            translate_with_attention(engine, sentence) for engine in engines
        )
        assert text_tf == text_ct2 and tf_attn.tgt_pieces == ct2_attn.tgt_pieces
        assert tf_attn.weights.shape == (len(tf_attn.tgt_pieces), len(tf_attn.src_pieces))
        np.testing.assert_allclose(tf_attn.weights.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(ct2_attn.weights, tf_attn.weights, atol=1e-5)
    settings = SearchSettings(beam_size=4)
    for engine in engines:
        nbest = translate_nbest(engine, sentences + [""], settings, 3)
        assert [hyps[0] for hyps in nbest] == translate_sentences_of(engine, sentences, settings)
        assert nbest[-1] == [""] and all(len(set(h)) == len(h) == 3 for h in nbest[:-1])


def translate_sentences_of(engine, sentences, settings) -> list[str]:
    from nmtpipe.search.translator import translate_sentences

    return translate_sentences(engine, sentences, settings) + [""]
