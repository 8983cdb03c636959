"""`nmtpipe bench`: how fast the trained model trains and translates on this machine.

Figures, all measured in one process with TensorFlow's default thread settings.
Every time is the best of a few runs (--rounds): on a machine shared with other
work, the least disturbed run is the best estimate of the cost.

- the machine's float32 matrix-multiply roof (GFLOP/s = 2n^3 / time of
  `tf.linalg.matmul` on n x n matrices, sampled before, between and after the
  other measurements), and the ceiling of the shape the recurrent layers really
  run: the decoder's per-step matmuls in a sequential loop (roof.py);
- training throughput of the train stage's own step (the model rebuilt from the
  saved config and compiled as train.py does; Keras' train step, the function
  `fit` runs, on real batches of the train split from `ids.batches`),
  after warm-up batches: pairs/s, target tokens/s, and the model's achieved
  GFLOP/s (flops.py) against the roof;
- where a training step's time goes: each forward part, the backward pass and the
  optimizer, timed separately on the same batches, interleaved with the steps;
- translation throughput, greedy and beam search, on distinct test sources, with the
  TensorFlow engine and, where the model has a CTranslate2 export (--ctranslate2),
  with CTranslate2 beside it (`inter_threads` one per core, `intra_threads` 1);
- peak memory (max RSS) and the test scores of reports/metrics.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from nmtpipe.bench.flops import train_step_flops
from nmtpipe.config import PRECISIONS, ModelConfig, TrainConfig, load_params, parse_section
from nmtpipe.errors import ConfigError, ModelError
from nmtpipe.fileio import atomic_file, read_split, write_json
from nmtpipe.layout import split_files

log = logging.getLogger(__name__)
SECTIONS = ("machine", "model", "roof", "train", "precision", "time", "gap", "translate")
SECTIONS += ("memory", "test")


def machine() -> dict:
    """CPU, core count, TensorFlow version and thread settings, load at the start."""
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "tensorflow": tf.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),  # 0 = all
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def model_config(trained, model_dir: Path) -> tuple[ModelConfig, TrainConfig]:
    """The model and train params the model was trained with (its config.json)."""
    missing = [name for name in ("model", "train") if name not in trained.config]
    if missing:
        raise ModelError(f"{model_dir / 'config.json'}: no {' or '.join(missing)} section")
    try:
        return (
            parse_section(ModelConfig, trained.config.get("model"), "model"),
            parse_section(TrainConfig, trained.config.get("train"), "train"),
        )
    except ConfigError as err:
        raise ModelError(f"{model_dir / 'config.json'}: {err}") from None


def train_batches(trained, split_dir: Path, cfg: TrainConfig, count: int) -> list:
    """`count` batches ((src, tgt_in), tgt_out) of the first epoch train.py would train on,
    spread evenly over the whole epoch (cycled when it has fewer): the epoch's length mix,
    where its first batches hold mostly the frequent short lengths, whose buckets fill
    first. Batched as training batches (train.max_tokens included)."""
    from nmtpipe.ids.batches import make_train_dataset, train_batch_sizes
    from nmtpipe.ids.encode import encode_pairs
    from nmtpipe.ids.records import write_shards
    from nmtpipe.training.train import evenly_spaced

    src, tgt = read_split(split_dir, "train")
    src_ids, tgt_ids, _ = encode_pairs(
        trained.sp_src, trained.sp_tgt, src, tgt, cfg.max_src_len, cfg.max_tgt_len
    )
    if not src_ids:
        raise ModelError(f"{split_dir}: no training pairs within the model's length limits")
    with tempfile.TemporaryDirectory() as encoded:
        write_shards(zip(src_ids, tgt_ids, strict=True), Path(encoded), cfg.seed, len(src_ids))
        sizes = train_batch_sizes(cfg)
        first_epoch, steps = make_train_dataset(Path(encoded), sizes, cfg.seed, range(1))
        chosen = set(evenly_spaced(count, steps))
        batches = [batch for i, batch in enumerate(first_epoch) if i in chosen]
    return [batches[i % len(batches)] for i in range(count)]


def run_bench(args, params) -> dict:
    """Measure everything; return the figures, section by section."""
    from nmtpipe.modeldir import load_model_dir

    trained = load_model_dir(args.model)  # a missing model fails before TensorFlow loads
    from nmtpipe.bench.roof import Roof
    from nmtpipe.bench.timing import part_figures, time_precisions, time_steps, training_model
    from nmtpipe.training.precision import choose_precision

    host = machine()
    model_cfg, train_cfg = model_config(trained, args.model)
    if args.train_batch_size:  # what if: the same model trained with other batches
        train_cfg = dataclasses.replace(train_cfg, batch_size=args.train_batch_size)
    precision = args.precision or train_cfg.precision
    if precision == "auto":  # what train.py would pick here; any other is measured as asked
        precision = choose_precision(precision)
    model = training_model(trained, model_cfg, train_cfg, precision)
    log.info("measuring the matmul roof")
    roof = Roof(train_cfg.batch_size, *model.step_matmul_shape)
    roof.measure()
    count = args.warmup_batches + args.train_batches
    batches = train_batches(trained, args.split, train_cfg, count)
    warmup, measured = batches[: args.warmup_batches], batches[args.warmup_batches :]
    seconds = time_steps(model, warmup, measured, args.rounds, between=roof.sample)
    others = time_precisions(trained, model_cfg, train_cfg, precision, warmup, measured)
    translate = translation(trained, args, params)
    roof.measure()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    train = train_figures(model, measured, seconds["step"], roof.roof_gflops(precision))
    figures = {
        "machine": host,
        "model": {
            **describe(args.model, trained, train_cfg, model),
            "precision": precision,
        },
        "roof": roof.figures(),
        "train": train,
        # the step in each precision against that precision's roof, or why not here
        "precision": precision_figures(precision, train, others, roof),
        "time": part_figures(model, measured, seconds),
        "translate": translate,
        "memory": {"peak_rss_mib": round(peak_kib / 1024, 1)},
        "test": read_test_scores(args.metrics),
    }
    figures["gap"] = explain(figures)
    return {name: figures[name] for name in SECTIONS}


def precision_figures(precision: str, train: dict, others: dict, roof) -> dict:
    """The step in the precision measured in full and in the others this machine computes
    (ms, or why not), each beside the share of its own precision's matmul roof."""
    figures = {}
    for name, step_ms in {f"{precision}_step_ms": train["step_ms"], **others}.items():
        figures[name] = step_ms
        if isinstance(step_ms, float):
            policy = name.removesuffix("_step_ms")
            gflops = train["gflop_per_step"] / step_ms * 1e3
            figures[f"{policy}_roof_percent"] = float(
                f"{100 * gflops / roof.roof_gflops(policy):.3g}"
            )
    return figures


def describe(model_dir: Path, trained, train_cfg, model) -> dict:
    """What is being measured: the model directory, pair, architecture and batch size."""
    return {
        "dir": str(model_dir),
        "pair": f"{trained.config.get('src_lang')}->{trained.config.get('tgt_lang')}",
        "architecture": f"{model.architecture}, vocabularies "
        f"{model.src_vocab_size}/{model.tgt_vocab_size}",
        "parameters": int(model.count_params()),
        "train_batch_size": train_cfg.batch_size,
        "train_max_tokens": train_cfg.max_tokens,
    }


def train_figures(model, batches, seconds: list[float], roof_gflops: float) -> dict:
    """Throughput of the measured training steps and the model's achieved GFLOP/s."""
    pairs = sum(int(tgt_out.shape[0]) for _, tgt_out in batches)
    tokens = sum(int((tgt_out.numpy() != 0).sum()) for _, tgt_out in batches)
    padded = sum(int(tgt_out.shape[0] * tgt_out.shape[1]) for _, tgt_out in batches)
    shapes = [(*src.shape, tgt_in.shape[1]) for (src, tgt_in), _ in batches]
    flops = sum(train_step_flops(model, *shape) for shape in shapes)
    total = sum(seconds)
    gflops = flops / total / 1e9
    return {
        "batches": len(batches),
        "pairs": pairs,
        "tgt_tokens": tokens,
        "tgt_padding_percent": round(100 * (1 - tokens / padded), 1),
        "step_ms": round(1000 * total / len(batches), 1),
        "pairs_per_s": round(pairs / total, 1),
        "tgt_tokens_per_s": round(tokens / total, 1),
        "gflop_per_step": float(f"{flops / len(batches) / 1e9:.4g}"),
        "gflops": float(f"{gflops:.4g}"),
        "roof_gflops": roof_gflops,
        "roof_percent": float(f"{100 * gflops / roof_gflops:.3g}"),
    }


REASONS = {  # what each part does besides matmuls (the encoder's: RNN, else Transformer)
    "encoder": "RNN: a matmul per time step in sequence, plus the gates' elementwise work; "
    "Transformer: softmax, layer norms and residual sums are elementwise",
    "decoder": "softmax, masking, layer norms and residual sums are elementwise, and so is "
    "the softmax cross-entropy over the vocabulary",
    "decoder_rnn": "a matmul per time step in sequence, plus the gates' elementwise work",
    "attention": "scores, masking and softmax over batch x target x source positions are "
    "elementwise (bahdanau: a tanh over every position pair and unit)",
    "output": "the softmax cross-entropy over the vocabulary is elementwise",
    "backward": "gradients of the elementwise work too, back through time in sequence, "
    "and the embeddings' scattered rows",
    "optimizer_and_overhead": "Adam's elementwise update of every weight, gradient clipping, "
    "and Keras' per-step work (loss and metric tracking)",
}
OTHER_REASON = "its elementwise work"  # a part another network names otherwise


def explain(figures: dict) -> list[str]:
    """Where the step's time goes beyond its matmul FLOPs at the roof: per part, the time
    it takes minus the time its FLOPs would take at the roof, largest first."""
    roof_gflops, parts = figures["train"]["roof_gflops"], figures["time"]  # its precision's
    step_ms = figures["train"]["step_ms"]
    lost = {name: p["ms"] - p["gflop"] / roof_gflops * 1e3 for name, p in parts.items()}
    lines = [
        f"at the roof this step's matmuls would take "
        f"{figures['train']['gflop_per_step'] / roof_gflops * 1e3:.1f} ms, not {step_ms} ms; "
        "time lost per part, largest first:"
    ]
    for name in sorted(lost, key=lost.get, reverse=True):
        if lost[name] > 0.05 * step_ms:
            lines.append(
                f"{name} {lost[name]:.1f} ms ({100 * lost[name] / step_ms:.0f}% of the step): "
                f"{REASONS.get(name, OTHER_REASON)}"
            )
    step = figures["roof"]
    lines += [
        f"the step matmul sampled with the roof (RNN: the decoder's per-step matmul; "
        f"Transformer: the feed-forward input), in a sequential loop, runs at "
        f"{step['decoder_step_matmul_gflops']} GFLOP/s ({step['decoder_step_matmul_percent']}% "
        "of the roof)",
    ]
    return lines


def translation(trained, args, params) -> dict:
    """Sentences/s and test BLEU of greedy and beam search on up to args.sentences distinct
    test sources, with the TensorFlow engine and, beside it, CTranslate2 where the model
    has an export (args.ctranslate2); the "ctranslate2" figure says which, or why not."""
    from nmtpipe.bench.timing import time_translation
    from nmtpipe.evaluation.scoring import group_references, score_bleu
    from nmtpipe.search.settings import SearchSettings
    from nmtpipe.search.tensorflow_engine import TensorFlowEngine

    sources, refs = group_references(*read_split(args.split, "test"))
    sources, refs = sources[: args.sentences], refs[: args.sentences]
    if not sources:
        raise ModelError(f"{split_files(args.split, 'test')[0]}: the test split is empty")
    batch_size = args.batch_size or params.evaluate.batch_size
    ct2, about = ctranslate2_engine(trained, args.ctranslate2)
    figures = {"sentences": len(sources), "batch_size": batch_size, "ctranslate2": about}
    engines = [TensorFlowEngine(trained)] + ([ct2] if ct2 else [])
    cfg = params.evaluate
    for beam in dict.fromkeys((1, args.beam)):  # --beam 1: greedy only
        name = "greedy" if beam == 1 else f"beam{beam}"
        settings = SearchSettings(beam, cfg.length_penalty, cfg.max_len_ratio)
        for engine in engines:
            log.info("translating %d test sentences (%s, %s)", len(sources), engine.name, name)
            rate, hyps = time_translation(engine, sources, batch_size, settings, args.rounds)
            figures[f"{name}_{engine.name}_sentences_per_s"] = round(rate, 1)
            figures[f"{name}_{engine.name}_bleu"] = round(score_bleu(hyps, refs), 2)
    return figures


def ctranslate2_engine(trained, ct2_dir: Path):
    """(the CTranslate2 engine of the model's export, or None; a line saying which or why
    not). An export of another model (architecture or language pair) is not measured."""
    from nmtpipe.modeldir import is_ctranslate2_dir, load_ctranslate2_dir
    from nmtpipe.search.ctranslate2_engine import CTranslate2Engine

    arch = trained.model.cfg.arch
    if arch != "transformer":
        return None, f"not measured: CTranslate2 has no RNN (model.arch {arch})"
    if not is_ctranslate2_dir(ct2_dir):
        return None, f"not measured: no CTranslate2 export in {ct2_dir} (dvc repro export)"
    pair = (trained.config.get("src_lang"), trained.config.get("tgt_lang"))
    try:
        engine = CTranslate2Engine(load_ctranslate2_dir(ct2_dir, pair))
    except ModelError as err:
        return None, f"not measured: {err}"
    quantization = engine.info.get("quantization")
    threads = f"{engine.inter_threads} inter threads x {engine.intra_threads} intra"
    return engine, f"{ct2_dir} ({quantization}, {threads})"


def read_test_scores(path: Path) -> dict:
    """Test BLEU and chrF with their signatures from the evaluate stage's metrics."""
    try:
        metrics = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError) as err:
        log.warning("%s: no test scores (%s; run `dvc repro`)", path, type(err).__name__)
        return {"metrics": str(path), "bleu": None, "chrf": None}
    signature = metrics.get("signature", {})
    return {
        "metrics": str(path),
        "bleu": metrics.get("bleu"),
        "bleu_signature": signature.get("bleu"),
        "chrf": metrics.get("chrf"),
        "chrf_signature": signature.get("chrf"),
    }


def format_figures(figures: dict) -> str:
    """`section.name: value` lines; the time breakdown as ms, share and GFLOP/s per part."""
    lines = []
    for section, values in figures.items():
        if section == "gap":
            lines += [f"gap: {text}" for text in values]
            continue
        for name, value in values.items():
            if isinstance(value, dict):  # a part of the time breakdown
                value = (
                    f"{value['ms']:.1f} ms/step, {value['share_percent']:.0f}%, "
                    f"{value['gflops']:.1f} GFLOP/s"
                    if value.get("gflop")
                    else f"{value['ms']:.1f} ms/step, {value['share_percent']:.0f}%"
                )
            lines.append(f"{section}.{name}: {value}")
    return "\n".join(lines)


OPTIONS = (  # name, type, default, help
    ("--model", Path, Path("data/model"), "trained model directory (default: data/model)"),
    ("--split", Path, Path("data/split"), "split directory: train and test (default: data/split)"),
    ("--params", Path, Path("params.yaml"), "params file; its evaluate section sets decoding"),
    ("--metrics", Path, Path("reports/metrics.json"), "the evaluate stage's test scores"),
    ("--train-batches", int, 30, "training batches measured (default: 30)"),
    ("--train-batch-size", int, None, "pairs per training batch (default: the model's own)"),
    ("--warmup-batches", int, 5, "training batches run first, not measured (default: 5)"),
    ("--rounds", int, 3, "runs of each timing; the best counts (default: 3)"),
    ("--sentences", int, None, "distinct test sources translated (default: all)"),
    ("--batch-size", int, None, "decoding batch size (default: evaluate.batch_size)"),
    ("--beam", int, 5, "beam size measured beside greedy search (default: 5)"),
    (
        "--ctranslate2",
        Path,
        Path("data/export/ctranslate2"),
        "the model's CTranslate2 export, timed beside TensorFlow where there is one",
    ),
    ("--json", Path, None, "also write the figures to this JSON file"),
    (
        "--precision",
        str,
        None,
        "training step's dtype policy: float32, mixed_bfloat16 or "
        "mixed_float16 (default: the model's train.precision)",
    ),
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmtpipe bench",
        description="Training and translation speed of a trained model on this machine, "
        "beside the machine's measured matmul roof; peak memory; test scores.",
    )
    for name, kind, default, help_text in OPTIONS:
        choices = PRECISIONS if name == "--precision" else None
        parser.add_argument(name, type=kind, default=default, help=help_text, choices=choices)
    args = parser.parse_args(argv)
    counts = (args.train_batches, args.warmup_batches, args.rounds, args.beam)
    optional = (args.sentences, args.batch_size, args.train_batch_size)
    sizes = [size for size in optional if size is not None]
    if min(counts + tuple(sizes)) < 1:
        parser.error("counts and sizes must be at least 1")
    params = load_params(args.params)
    figures = run_bench(args, params)
    if args.json:
        with atomic_file(args.json) as tmp:
            write_json(tmp, figures)
    print(format_figures(figures))
