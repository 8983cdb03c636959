"""The download stage: bring the corpus named in params into `src.txt`/`tgt.txt`."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from nmtpipe.config import DataConfig
from nmtpipe.corpus import sources
from nmtpipe.errors import ConfigError, DataError
from nmtpipe.fileio import atomic_dir, scratch_dir, sha256_file, write_json
from nmtpipe.layout import CORPUS_SRC, CORPUS_TGT, MANIFEST
from nmtpipe.logs import progress

log = logging.getLogger(__name__)

SAMPLE_FILE = "en-es.tsv"
SAMPLE_COLUMNS = ("en", "es")


def sample_path() -> Path:
    """The embedded English-Spanish corpus shipped with the package."""
    return Path(str(resources.files("nmtpipe") / "resources" / "sample" / SAMPLE_FILE))


def download_corpus(cfg: DataConfig, out_dir: Path) -> dict:
    """Write the corpus as line-aligned `src.txt`/`tgt.txt` plus `manifest.json` into out_dir.

    Returns the manifest. Nothing is left in out_dir unless every pair was read.
    """
    with scratch_dir(out_dir) as scratch, atomic_dir(out_dir) as tmp:
        pairs, origin = _open_source(cfg, scratch)  # downloads land in scratch
        stats: dict = {}
        count = _write_pairs(pairs(stats), tmp)
        if count == 0:
            raise DataError(f"{origin['file']}: no sentence pairs found")
        manifest = {
            **origin,
            "pairs": count,
            # Dirty but usable input, fixed while reading (reported again by clean).
            "fixed": {key: stats.get(key, 0) for key in ("blank_lines", "bom", "crlf_lines")},
            "src_lang": cfg.src_lang,
            "tgt_lang": cfg.tgt_lang,
            "src_sha256": sha256_file(tmp / CORPUS_SRC),
            "tgt_sha256": sha256_file(tmp / CORPUS_TGT),
        }
        write_json(tmp / MANIFEST, manifest)
    log.info(
        "downloaded %d pairs (%s -> %s) from %s",
        count,
        cfg.src_lang,
        cfg.tgt_lang,
        origin["source"],
    )
    return manifest


def _open_source(cfg: DataConfig, workdir: Path):
    """Return (pairs(stats) generator factory, provenance dict) for the configured source."""
    if cfg.source == "sample":
        if {cfg.src_lang, cfg.tgt_lang} != set(SAMPLE_COLUMNS):
            raise ConfigError(
                "data.source 'sample' is English-Spanish: data.src_lang/tgt_lang must be en/es"
            )
        path = sample_path()
        origin = {"source": "sample", "file": SAMPLE_FILE, "sha256": sha256_file(path)}
        return lambda stats: sources.read_tsv(
            path, SAMPLE_COLUMNS, cfg.src_lang, cfg.tgt_lang, stats
        ), origin
    if cfg.source == "url" and "{lang}" in cfg.url:
        return _open_aligned(cfg, workdir)
    if cfg.source == "url":
        path = _fetch_checked(cfg.url, cfg.sha256, workdir)
        origin = {"source": "url", "file": cfg.url, "sha256": sha256_file(path)}
        columns = sources.anki_columns(cfg) if cfg.url.endswith(".zip") else cfg.columns
        return lambda stats: sources.read_tsv(
            path, columns, cfg.src_lang, cfg.tgt_lang, stats
        ), origin
    return _open_opus(cfg, workdir)


def _fetch_checked(url: str, expected_sha256: str, workdir: Path) -> Path:
    path = sources.fetch(url, workdir)
    if expected_sha256 and sha256_file(path) != expected_sha256.lower():
        raise DataError(
            f"{url}: sha256 mismatch (expected {expected_sha256}, got {sha256_file(path)})"
        )
    return path


def _open_aligned(cfg: DataConfig, workdir: Path):
    if cfg.sha256:
        raise ConfigError("data.sha256 cannot check two files given by a {lang} placeholder")
    src_url, tgt_url = (cfg.url.replace("{lang}", lang) for lang in (cfg.src_lang, cfg.tgt_lang))
    src_path, tgt_path = sources.fetch(src_url, workdir), sources.fetch(tgt_url, workdir)
    origin = {
        "source": "url",
        "file": cfg.url,
        "sha256": {"src": sha256_file(src_path), "tgt": sha256_file(tgt_path)},
    }
    return lambda stats: sources.read_aligned(src_path, tgt_path, stats), origin


def _open_opus(cfg: DataConfig, workdir: Path):
    """Read an OPUS corpus with OpusFilter's opus_read step (needs network)."""
    from opusfilter.opusfilter import OpusFilter

    step = {
        "type": "opus_read",
        "parameters": {
            "corpus_name": cfg.corpus,
            "source_language": cfg.src_lang,
            "target_language": cfg.tgt_lang,
            "release": cfg.release,
            "preprocessing": "moses",
            "src_output": "opus.src",
            "tgt_output": "opus.tgt",
            "suppress_prompts": True,
        },
    }
    try:
        OpusFilter({"common": {"output_directory": str(workdir)}, "steps": [step]}).execute_steps(
            overwrite=True
        )
    except Exception as err:  # network, OPUS API and archive errors all end here
        first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"cannot read OPUS corpus {cfg.corpus!r} release {cfg.release!r} "
            f"({cfg.src_lang}-{cfg.tgt_lang}): {first_line} (OPUS needs network access)"
        ) from None
    src_path, tgt_path = workdir / "opus.src", workdir / "opus.tgt"
    origin = {"source": "opus", "file": f"{cfg.corpus}/{cfg.release}", "sha256": ""}
    return lambda stats: sources.read_aligned(src_path, tgt_path, stats), origin


def _write_pairs(pairs, out_dir: Path) -> int:
    count = 0
    with (
        open(out_dir / CORPUS_SRC, "w", encoding="utf-8", newline="\n") as src_out,
        open(out_dir / CORPUS_TGT, "w", encoding="utf-8", newline="\n") as tgt_out,
    ):
        for src, tgt in progress(pairs, desc="read pairs", unit=" pairs"):
            # A lone CR inside a field would split the line for universal-newline readers.
            src_out.write(src.replace("\r", " ") + "\n")
            tgt_out.write(tgt.replace("\r", " ") + "\n")
            count += 1
    return count
