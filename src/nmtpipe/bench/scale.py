"""`nmtpipe bench-scale`: each data stage's peak memory and time as the corpus grows.

Builds corpora of k times a parallel corpus (k numbered variants of every pair, all
unique), runs download -> clean -> split -> tokenize -> encode -> one training epoch
of a small model on each, every stage as its own `nmtpipe` process, and prints each
stage's peak RSS (of the process and the children it waited for, e.g. OpusFilter's
jobs) and wall time, with the ratios to the smallest factor.

The params: --params (default params.yaml) with the corpus, a small model, one epoch
and tokenizer.max_sentences (--max-sentences) laid over it.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from nmtpipe.config import params_from_dict, read_yaml
from nmtpipe.fileio import atomic_file, iter_parallel, write_json
from nmtpipe.layout import corpus_files

log = logging.getLogger(__name__)

STAGES = ("download", "clean", "split", "tokenize", "encode", "train")
FILTERS = Path("pipeline/opusfilter.yaml")  # the project's filter chain (run in its root)
SMALL = {  # a small model: the figures are the data path's, not the network's
    "model": {"arch": "rnn", "embedding_dim": 32, "units": 64, "attention": "luong"},
    "train": {"epochs": 1, "batch_size": 256, "dev_bleu_sentences": 0, "patience": 1},
}


def stage_args(stage: str, work: Path) -> list[str]:
    """The stage's command line, with dvc.yaml's layout under `work`."""
    paths = {
        "download": ["--out", "raw"],
        "clean": ["--raw", "raw", "--filters", str(FILTERS.resolve()), "--out", "clean"],
        "split": ["--clean", "clean", "--out", "split"],
        "tokenize": ["--split", "split", "--out", "tok"],
        "encode": ["--split", "split", "--tokenizers", "tok", "--out", "encoded"],
        "train": ["--split", "split", "--encoded", "encoded", "--tokenizers", "tok"],
    }[stage]
    if stage == "clean":
        paths += ["--report", "clean.json"]
    if stage == "train":
        paths += ["--out", "model", "--live", "live", "--timing", "timing.json"]
        paths += ["--checkpoints", "checkpoints"]
    return [sys.executable, "-m", "nmtpipe", stage, "--params", str(work / "params.yaml"), *paths]


def run_stage(stage: str, work: Path) -> dict:
    """Run one stage in its own process; its peak RSS (MiB) and wall time (s)."""
    start = time.perf_counter()
    env = {**os.environ, "NMTPIPE_PROGRESS": "0"}
    with open(work / f"{stage}.log", "w") as out:
        proc = subprocess.Popen(stage_args(stage, work), cwd=work, stdout=out, stderr=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = (work / f"{stage}.log").read_text().strip().splitlines()[-1:]
        raise SystemExit(f"bench-scale: {stage} failed in {work}: {' '.join(tail)}")
    seconds = round(time.perf_counter() - start, 1)
    return {"peak_rss_mib": round(usage.ru_maxrss / 1024), "time_s": seconds}


def write_corpus(raw_dir: Path, factor: int, path: Path) -> int:
    """A TSV of `factor` variants of raw_dir's pairs: the pairs, then numbered copies."""
    pairs = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for variant in range(factor):
            suffix = f" {variant}" if variant else ""
            for src, tgt in iter_parallel(*corpus_files(raw_dir), "corpus", "download"):
                out.write(f"{src}{suffix}\t{tgt}{suffix}\n")
                pairs += 1
    return pairs


def bench_factor(base: dict, raw_dir: Path, factor: int, work: Path) -> dict:
    """Every stage's figures on a corpus `factor` times raw_dir's."""
    work.mkdir(parents=True, exist_ok=True)
    pairs = write_corpus(raw_dir, factor, work / "corpus.tsv")
    data = {**base["data"], "source": "url", "url": str(work / "corpus.tsv"), "sha256": ""}
    data["columns"] = [data["src_lang"], data["tgt_lang"]]
    (work / "params.yaml").write_text(yaml.safe_dump({**base, "data": data}, sort_keys=False))
    figures = {"pairs": pairs}
    for stage in STAGES:
        figures[stage] = run_stage(stage, work)
        log.info("%dx %s: %s", factor, stage, figures[stage])
    return figures


def _cell(figures: dict, first: dict, key: str) -> str:
    """A figure, with its ratio to the first factor's when it is not the first."""
    ratio = "" if figures is first else f" ({figures[key] / first[key]:.2f}x)"
    return f"{figures[key]:,}{ratio}"


def table(results: dict[int, dict]) -> str:
    """Markdown: one row per stage, each factor's RSS and time, ratios to the first."""
    factors = sorted(results)
    first = results[factors[0]]
    head = " | ".join(f"{k}x peak RSS (MiB) | {k}x time (s)" for k in factors)
    lines = [f"| stage | {head} |", "|---" * (1 + 2 * len(factors)) + "|"]
    for stage in STAGES:
        cells = [
            _cell(results[k][stage], first[stage], key)
            for k in factors
            for key in ("peak_rss_mib", "time_s")
        ]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    pairs = ", ".join(f"{k}x: {results[k]['pairs']:,} pairs" for k in factors)
    return "\n".join(lines) + f"\n\n{pairs}\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="nmtpipe bench-scale", description=__doc__)
    parser.add_argument("--corpus", required=True, help="the 1x corpus: a path data.url accepts")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10], help="default: 1 10")
    parser.add_argument("--work", type=Path, required=True, help="working directory (big)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--max-sentences", type=int, default=100_000, help="tokenizer.max_sentences (100000)"
    )
    parser.add_argument("--out", type=Path, help="JSON file of the figures")
    args = parser.parse_args(argv)
    base = read_yaml(args.params) or {}
    for section, values in SMALL.items():
        base[section] = {**(base.get(section) or {}), **values}
    base["tokenizer"] = {**(base.get("tokenizer") or {}), "max_sentences": args.max_sentences}
    base["data"] = {**(base.get("data") or {}), "source": "url", "url": args.corpus}
    params_from_dict(base)  # a bad params file stops here, before any work
    one = args.work / "source"
    one.mkdir(parents=True, exist_ok=True)
    (one / "params.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    run_stage("download", one)
    results = {k: bench_factor(base, one / "raw", k, args.work / f"x{k}") for k in args.factors}
    print(table(results))
    if args.out:
        with atomic_file(args.out) as tmp:
            write_json(tmp, {str(k): v for k, v in results.items()})
