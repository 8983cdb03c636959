"""The clean stage: run the OpusFilter chain of pipeline/opusfilter.yaml on the raw corpus."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from pathlib import Path

from nmtpipe.config import CleanConfig, DataConfig
from nmtpipe.corpus.download import SRC_FILE, TGT_FILE
from nmtpipe.errors import ConfigError, DataError
from nmtpipe.fileio import atomic_dir, atomic_file, count_lines, write_json

log = logging.getLogger(__name__)


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
        "raw_src": str((raw_dir / SRC_FILE).resolve()),
        "raw_tgt": str((raw_dir / TGT_FILE).resolve()),
    }
    common = dict(config.get("common") or {})
    common.update(constants=constants, default_n_jobs=cfg.n_jobs)
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
    for name in (SRC_FILE, TGT_FILE):
        if not (raw_dir / name).is_file():
            raise DataError(f"{raw_dir / name}: raw corpus file not found (run download)")
    config = load_filter_config(filters_path, raw_dir, cfg, data)
    pairs_in = count_lines(raw_dir / SRC_FILE)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".clean-", dir=out_dir.parent) as work:
        config["common"]["output_directory"] = work
        removed, last_outputs = _run_steps(config, pairs_in)
        pairs_out = count_lines(last_outputs[0])
        if pairs_out == 0:
            raise DataError(f"cleaning removed every pair ({_summary(removed)})")
        report = {"pairs_in": pairs_in, "pairs_out": pairs_out, "removed": removed}
        with atomic_dir(out_dir) as tmp, atomic_file(report_path) as tmp_report:
            shutil.move(last_outputs[0], tmp / SRC_FILE)
            shutil.move(last_outputs[1], tmp / TGT_FILE)
            write_json(tmp_report, report)
    log.info("cleaned %d -> %d pairs (%s)", pairs_in, pairs_out, _summary(removed))
    return report


def _run_steps(config: dict, pairs_in: int) -> tuple[dict, list[Path]]:
    """Run every OpusFilter step; return pairs removed per step and the last outputs."""
    from opusfilter import OpusFilterError
    from opusfilter.opusfilter import OpusFilter

    runner = OpusFilter(config)
    work = Path(config["common"]["output_directory"])
    removed, pairs = {}, pairs_in
    outputs: list[Path] = []
    for num, step in enumerate(config["steps"], start=1):
        name = _step_name(step)
        log.info("clean step %d/%d: %s", num, len(config["steps"]), name)
        try:
            runner.execute_step(num, overwrite=True)
        except (OpusFilterError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"opusfilter step {num} ({name}): {err}") from None
        outputs = [work / str(o) for o in step["parameters"]["outputs"]]
        after = count_lines(outputs[0])
        removed[name] = pairs - after
        pairs = after
    return removed, outputs


def _summary(removed: dict) -> str:
    return ", ".join(f"{name}: -{count}" for name, count in removed.items())
