"""The clean stage: run the OpusFilter chain of pipeline/opusfilter.yaml on the raw corpus."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from contextlib import ExitStack
from pathlib import Path

from nmtpipe.config import CleanConfig, DataConfig
from nmtpipe.cores import thread_cap, usable_cores
from nmtpipe.errors import ConfigError, DataError
from nmtpipe.fileio import atomic_dir, atomic_file, count_lines, scratch_dir, write_json
from nmtpipe.layout import CORPUS_SRC, CORPUS_TGT, MANIFEST

log = logging.getLogger(__name__)


# OpusFilter splits a step's input into one chunk per job; below this many pairs per job
# the process start costs more than it saves, and an empty input writes no output at all
# (its parallel wrapper makes no chunk, so no output file): the jobs are chosen per step,
# from that step's input.
MIN_PAIRS_PER_JOB = 10_000


def n_jobs(cfg: CleanConfig, pairs: int) -> int:
    """OpusFilter's jobs for a step on `pairs` pairs: clean.n_jobs, or (auto) the usable
    cores, at most NMTPIPE_THREADS either way (cores.py: a sweep's jobs share the machine),
    and one job per MIN_PAIRS_PER_JOB pairs at most (1 job below 20,000 pairs)."""
    wanted = usable_cores() if cfg.n_jobs == "auto" else min(cfg.n_jobs, thread_cap() or cfg.n_jobs)
    return max(1, min(wanted, pairs // MIN_PAIRS_PER_JOB))


def load_filter_config(path: Path, raw_dir: Path, cfg: CleanConfig, data: DataConfig) -> dict:
    """Read the OpusFilter config template and fill its `!var` constants from params."""
    from opusfilter.util import yaml  # ruamel loader that knows OpusFilter's !var tags
    from ruamel.yaml import YAMLError

    try:
        config = yaml.load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: filter configuration not found") from None
    except YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or not config.get("steps"):
        raise ConfigError(f"{path}: expected an OpusFilter config with a `steps` list")
    constants = {
        **dataclasses.asdict(cfg),
        "langid_languages": list(cfg.langid_languages) or [data.src_lang, data.tgt_lang],
        "src_lang": data.src_lang,
        "tgt_lang": data.tgt_lang,
        "raw_src": str((raw_dir / CORPUS_SRC).resolve()),
        "raw_tgt": str((raw_dir / CORPUS_TGT).resolve()),
    }
    common = dict(config.get("common") or {})
    common.update(constants=constants)  # the jobs: per step, in _run_steps
    return {**config, "common": common}


def _step_name(step: dict) -> str:
    """Name a step by its output files (length.src -> length)."""
    outputs = step["parameters"].get("outputs") or [step["parameters"].get("output", "?")]
    return Path(str(outputs[0])).stem


def clean_corpus(
    raw_dir: Path,
    filters_path: Path,
    cfg: CleanConfig,
    data: DataConfig,
    out_dir: Path,
    report_path: Path,
) -> dict:
    """Filter raw_dir's pairs into out_dir; write the per-step counts to report_path."""
    missing = {data.src_lang, data.tgt_lang} - set(cfg.langid_languages)
    if cfg.langid_languages and missing:
        raise ConfigError(f"clean.langid_languages must include {sorted(missing)}")
    for name in (CORPUS_SRC, CORPUS_TGT):
        if not (raw_dir / name).is_file():
            raise DataError(f"{raw_dir / name}: raw corpus file not found (run download)")
    config = load_filter_config(filters_path, raw_dir, cfg, data)
    pairs_in = count_lines(raw_dir / CORPUS_SRC)
    with scratch_dir(out_dir) as work:
        config["common"]["output_directory"] = str(work)
        removed, modified, last_outputs = _run_steps(config, pairs_in, cfg)
        pairs_out = count_lines(last_outputs[0])
        if pairs_out == 0:
            raise DataError(f"cleaning removed every pair ({_summary(removed)})")
        report = {
            "pairs_in": pairs_in,
            "pairs_out": pairs_out,
            "removed": removed,
            "modified": modified,
            "fixed_on_read": _read_manifest(raw_dir).get("fixed", {}),
        }
        with atomic_dir(out_dir) as tmp, atomic_file(report_path) as tmp_report:
            shutil.move(last_outputs[0], tmp / CORPUS_SRC)
            shutil.move(last_outputs[1], tmp / CORPUS_TGT)
            write_json(tmp_report, report)
    log.info("cleaned %d -> %d pairs (%s)", pairs_in, pairs_out, _summary(removed))
    return report


def _read_manifest(raw_dir: Path) -> dict:
    try:
        return json.loads((raw_dir / MANIFEST).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _changed_pairs(inputs: list[Path], outputs: list[Path]) -> int:
    """Pairs that a preprocessing step rewrote (same line count in and out)."""
    with ExitStack() as stack:
        ins = [stack.enter_context(open(p, encoding="utf-8")) for p in inputs]
        outs = [stack.enter_context(open(p, encoding="utf-8")) for p in outputs]
        return sum(
            before != after
            for before, after in zip(zip(*ins, strict=True), zip(*outs, strict=True), strict=True)
        )


def _resolve(value, constants: dict) -> str:
    """A file name from the config, with an OpusFilter `!var` replaced by its value."""
    from opusfilter.util import Var

    return str(constants[value.value] if isinstance(value, Var) else value)


def _run_steps(config: dict, pairs_in: int, cfg: CleanConfig) -> tuple[dict, dict, list[Path]]:
    """Run every OpusFilter step; return pairs removed and modified per step, last outputs."""
    from opusfilter import OpusFilterError

    from nmtpipe.corpus.dedup import LowMemoryOpusFilter

    runner = LowMemoryOpusFilter(config)
    work = Path(config["common"]["output_directory"])
    removed, modified, pairs = {}, {}, pairs_in
    constants = config["common"]["constants"]
    outputs: list[Path] = []
    for num, step in enumerate(config["steps"], start=1):
        name = _step_name(step)
        # By the pairs left (this step's input): an emptied corpus gets 1 job, empty files.
        runner.default_n_jobs = n_jobs(cfg, pairs)
        log.info(
            "clean step %d/%d: %s (%d jobs)", num, len(config["steps"]), name, runner.default_n_jobs
        )
        try:
            runner.execute_step(num, overwrite=True)
        except (OpusFilterError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"opusfilter step {num} ({name}): {err}") from None
        except FileNotFoundError:  # OpusFilter does not check its parallel jobs' exit codes
            raise DataError(
                f"opusfilter step {num} ({name}): a parallel job failed (its error is above)"
            ) from None
        inputs = [work / _resolve(i, constants) for i in step["parameters"].get("inputs", [])]
        outputs = [work / _resolve(o, constants) for o in step["parameters"]["outputs"]]
        if step["type"] == "preprocess":
            modified[name] = _changed_pairs(inputs, outputs)
        after = count_lines(outputs[0])
        removed[name] = pairs - after
        pairs = after
    return removed, modified, outputs


def _summary(removed: dict) -> str:
    return ", ".join(f"{name}: -{count}" for name, count in removed.items())
