"""`nmtpipe bench` on a tiny model: every figure present and sane (no timing assertions)."""

from __future__ import annotations

import json
import shutil

import pytest
import tensorflow as tf

from nmtpipe.bench.cli import main, read_test_scores
from nmtpipe.config import ModelConfig, TokenizerConfig, TrainConfig, to_dict
from nmtpipe.fileio import write_json, write_lines
from nmtpipe.ids.tokenizer import train_tokenizers
from nmtpipe.model.build import build_model
from nmtpipe.modeldir import save_model_dir
from tests.conftest import ROOT, run_nmtpipe, sample_pairs

VOCAB = 120


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A split, a complete tiny model directory, metrics and params, as the pipeline has."""
    root = tmp_path_factory.mktemp("bench")
    pairs = sample_pairs(300)
    (root / "split").mkdir()
    for name, rows in (("train", pairs[:260]), ("test", pairs[260:])):
        write_lines(root / f"split/{name}.src", [s for s, _ in rows])
        write_lines(root / f"split/{name}.tgt", [t for _, t in rows])
    tokenizer = TokenizerConfig(src_vocab_size=VOCAB, tgt_vocab_size=VOCAB)
    train_tokenizers(root / "split", tokenizer, root / "tok")
    model_cfg, train_cfg = ModelConfig(embedding_dim=8, units=16), TrainConfig(batch_size=16)
    config = {
        "src_lang": "en",
        "tgt_lang": "es",
        "model": to_dict(model_cfg),
        "train": to_dict(train_cfg),
        "src_vocab_size": VOCAB,
        "tgt_vocab_size": VOCAB,
    }
    (root / "model").mkdir()
    save_model_dir(root / "model", build_model(model_cfg, VOCAB, VOCAB), config, root / "tok")
    cfg = ModelConfig(arch="transformer", embedding_dim=16, heads=2, ff_dim=32, decoder_layers=2)
    (root / "transformer").mkdir()
    transformer = build_model(cfg, VOCAB, VOCAB)
    config = {**config, "model": to_dict(cfg), "weights_layout": transformer.WEIGHTS_LAYOUT}
    save_model_dir(root / "transformer", transformer, config, root / "tok")
    signature = {"bleu": "nrefs:1|tok:13a", "chrf": "nrefs:1|nc:6"}
    write_json(root / "metrics.json", {"bleu": 1.5, "chrf": 12.25, "signature": signature})
    shutil.copyfile(ROOT / "params.yaml", root / "params.yaml")
    return root


def bench(pipeline, model: str, train_batches: int, sentences: int, beam: int, *more) -> dict:
    """Run `nmtpipe bench` in this process on pipeline/model; return its JSON figures."""
    args = ["--model", str(pipeline / model), "--split", str(pipeline / "split")]
    args += ["--params", str(pipeline / "params.yaml"), "--metrics", str(pipeline / "metrics.json")]
    args += ["--train-batches", str(train_batches), "--warmup-batches", "2", "--rounds", "1"]
    args += ["--sentences", str(sentences), "--batch-size", "4", "--beam", str(beam)]
    main([*args, *more, "--json", str(pipeline / f"bench-{model}.json")])
    return json.loads((pipeline / f"bench-{model}.json").read_text())


@pytest.mark.slow
def test_bench_prints_and_writes_every_figure(pipeline, capsys):
    figures = bench(pipeline, "model", 3, 6, 3, "--precision", "mixed_bfloat16")
    sections = ["machine", "model", "roof", "train", "precision", "time", "gap", "translate"]
    sections += ["memory", "test"]
    assert sorted(figures) == sorted(sections)  # write_json sorts keys
    roof, train = figures["roof"], figures["train"]
    assert roof["gflops"] > 0 and roof["decoder_step_matmul_gflops"] > 0
    assert roof["gflops"] == max(roof["gflops_n1024"], roof["gflops_n2048"])
    assert roof["bfloat16_gflops_n1024"] > 0 and figures["model"]["precision"] == "mixed_bfloat16"
    assert train["batches"] == 3 and train["pairs"] > 0
    for name in ("step_ms", "pairs_per_s", "tgt_tokens_per_s", "gflop_per_step", "gflops"):
        assert train[name] > 0, name
    assert 0 < train["roof_percent"] <= 100
    assert train["roof_gflops"] == roof["bfloat16_gflops_n1024"]  # the precision measured's
    assert train["tgt_tokens_per_s"] > train["pairs_per_s"]
    steps = figures["precision"]  # the step in every precision: the one measured in full,
    assert steps["mixed_bfloat16_step_ms"] == train["step_ms"]  # the others again
    assert steps["float32_step_ms"] > 0  # every machine computes float32
    for policy, roof_gflops in (("mixed_bfloat16", roof["bfloat16_gflops_n1024"]),
                                ("float32", roof["gflops"])):  # fmt: skip
        gflops = train["gflop_per_step"] / steps[f"{policy}_step_ms"] * 1e3
        rounded = steps[f"{policy}_roof_percent"]  # 3 significant digits: within 5e-3
        assert rounded == pytest.approx(100 * gflops / roof_gflops, 5e-3)
    if not tf.config.list_physical_devices("GPU"):
        assert steps["mixed_float16_step_ms"].startswith("not measured: float16 needs a GPU")
    time = figures["time"]
    assert set(time) == {
        "encoder", "decoder_rnn", "attention", "output", "backward", "optimizer_and_overhead",
    }  # fmt: skip
    for name in ("encoder", "decoder_rnn", "attention", "output"):
        assert time[name]["ms"] > 0 and time[name]["gflop"] > 0 and time[name]["gflops"] > 0
    assert time["backward"]["gflop"] == pytest.approx(
        2 * sum(time[n]["gflop"] for n in ("encoder", "decoder_rnn", "attention", "output")),
        rel=1e-2,
    )
    translate = figures["translate"]
    assert translate["sentences"] == 6 and translate["batch_size"] == 4
    assert translate["greedy_tensorflow_sentences_per_s"] > 0
    assert translate["beam3_tensorflow_sentences_per_s"] > 0
    assert 0 <= translate["greedy_tensorflow_bleu"] <= 100
    assert translate["ctranslate2"] == "not measured: CTranslate2 has no RNN (model.arch rnn)"
    assert figures["memory"]["peak_rss_mib"] > 0
    assert figures["test"]["bleu"] == 1.5 and figures["test"]["chrf_signature"] == "nrefs:1|nc:6"
    assert figures["gap"] and all(isinstance(line, str) for line in figures["gap"])

    out = capsys.readouterr().out.splitlines()
    assert f"train.pairs_per_s: {train['pairs_per_s']}" in out
    assert f"roof.gflops: {roof['gflops']}" in out
    assert "test.bleu: 1.5" in out and "model.pair: en->es" in out
    assert any(line.startswith("time.encoder: ") and "GFLOP/s" in line for line in out)
    assert all(": " in line for line in out)
    assert list(dict.fromkeys(line.split(".")[0].split(":")[0] for line in out)) == sections


@pytest.mark.slow  # traces a Transformer's greedy and beam search
def test_bench_times_both_engines_where_the_model_has_a_ctranslate2_export(pipeline):
    from argparse import Namespace

    from nmtpipe.bench.cli import ctranslate2_engine, translation
    from nmtpipe.config import load_params
    from nmtpipe.evaluation.scoring import group_references, score_bleu
    from nmtpipe.fileio import read_split
    from nmtpipe.modeldir import load_model_dir
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.tensorflow_engine import TensorFlowEngine
    from nmtpipe.search.translator import translate_sentences
    from nmtpipe.serving.ctranslate2_export import export_ctranslate2

    trained, ct2 = load_model_dir(pipeline / "transformer"), pipeline / "export/ctranslate2"
    missing = f"not measured: no CTranslate2 export in {ct2} (dvc repro export)"
    assert ctranslate2_engine(trained, ct2) == (None, missing)
    export_ctranslate2(trained, pipeline / "transformer", ct2, "int8", 2.0)
    args = Namespace(split=pipeline / "split", sentences=6, batch_size=4, beam=2, rounds=1)
    args.ctranslate2 = ct2
    figures = translation(trained, args, load_params(pipeline / "params.yaml"))
    runs = [f"{search}_{engine}" for search in ("greedy", "beam2")
            for engine in ("tensorflow", "ctranslate2")]  # fmt: skip
    names = [f"{run}_{figure}" for run in runs for figure in ("sentences_per_s", "bleu")]
    assert list(figures) == ["sentences", "batch_size", "ctranslate2", *names]
    assert all(figures[f"{run}_sentences_per_s"] > 0 for run in runs)
    sources, refs = group_references(*read_split(pipeline / "split", "test"))
    hyps = translate_sentences(TensorFlowEngine(trained), sources[:6], SearchSettings(), 4)
    assert figures["greedy_tensorflow_bleu"] == round(score_bleu(hyps, refs[:6]), 2)
    assert figures["ctranslate2"].startswith(f"{ct2} (int8, ")
    assert figures["ctranslate2"].endswith(" inter threads x 1 intra)")


@pytest.mark.slow  # traces four step functions of a Transformer: ~13 s
def test_bench_times_a_transformer_by_its_parts(pipeline):
    """The other architecture's parts: its encoder, and its decoder with the output and
    loss, each a function bench times and counts the FLOPs of (the step, the roof and
    translation are the same code for both)."""
    from nmtpipe.bench.cli import model_config, train_batches
    from nmtpipe.bench.timing import part_functions
    from nmtpipe.modeldir import load_model_dir

    trained = load_model_dir(pipeline / "transformer")
    model_cfg, train_cfg = model_config(trained, pipeline / "transformer")
    model = trained.model
    parts = part_functions(model)
    assert set(parts) == {"encoder", "decoder", "forward", "forward_backward"}
    (src, tgt_in), tgt_out = train_batches(trained, pipeline / "split", train_cfg, 1)[0]
    enc_out, enc_mask, _ = parts["encoder"](src)
    loss = float(parts["decoder"](tgt_in, tgt_out, enc_out, enc_mask))
    assert loss == pytest.approx(float(parts["forward"](src, tgt_in, tgt_out)), rel=0.2)
    assert set(model.forward_flops(*src.shape, tgt_in.shape[1])) == {"encoder", "decoder"}


@pytest.mark.slow
def test_bench_batches_are_token_batches_spread_over_the_whole_epoch(pipeline):
    """Not the epoch's first batches (the frequent short buckets fill first) but evenly
    spaced ones, batched by train.max_tokens as training batches them."""
    import dataclasses

    from nmtpipe.bench.cli import model_config, train_batches
    from nmtpipe.modeldir import load_model_dir

    trained = load_model_dir(pipeline / "model")
    _, cfg = model_config(trained, pipeline / "model")
    cfg = dataclasses.replace(cfg, max_tokens=200, batch_size=64)
    every = train_batches(trained, pipeline / "split", cfg, 1000)  # the whole epoch, cycled
    steps = next(i for i in range(1, len(every)) if every[i] is every[0])
    sampled = train_batches(trained, pipeline / "split", cfg, 4)
    spaced = [every[round(i * (steps - 1) / 3)] for i in range(4)]
    for ((src, tgt_in), out), ((src2, _), out2) in zip(sampled, spaced, strict=True):
        assert src.shape[0] * (src.shape[1] + tgt_in.shape[1]) <= 200
        assert (out.numpy() == out2.numpy()).all() and (src.numpy() == src2.numpy()).all()


def test_missing_metrics_are_reported_not_fatal(tmp_path, caplog):
    scores = read_test_scores(tmp_path / "none.json")
    assert scores["bleu"] is None and scores["chrf"] is None
    assert "none.json: no test scores" in caplog.text


@pytest.mark.slow
def test_bench_refuses_a_missing_model(pipeline, tmp_path):
    result = run_nmtpipe(
        "bench", "--model", str(tmp_path / "none"), "--params", str(pipeline / "params.yaml")
    )
    assert result.returncode == 1
    assert "none/model.keras: trained model not found" in result.stderr.decode().splitlines()[-1]
