"""Fetch a corpus file and read sentence pairs from the common layouts.

Layouts: an Anki/manythings .zip (`eng<TAB>other[<TAB>attribution]`), a TSV
file (optionally gzipped), or two line-aligned files named by language
(a `{lang}` placeholder in the URL). Lines stream through generators; every
problem is a DataError naming the file and line.
"""

from __future__ import annotations

import gzip
import io
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from itertools import zip_longest
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from nmtpipe.errors import ConfigError, DataError
from nmtpipe.logs import progress

Pair = tuple[str, str]
DOWNLOAD_TIMEOUT_S = 30


def fetch(url: str, workdir: Path) -> Path:
    """Return a local path for `url`: a local file as is, an http(s) URL downloaded."""
    scheme = urlparse(url).scheme
    if scheme in ("http", "https"):
        return _download(url, workdir / PurePosixPath(urlparse(url).path).name)
    if scheme not in ("", "file"):
        raise ConfigError(f"data.url: unsupported scheme {scheme!r} (use http(s) or a local path)")
    path = Path(urlparse(url).path if scheme == "file" else url)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def _download(url: str, dest: Path) -> Path:
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(dest, "wb") as out,
                progress(
                    total=total, unit="B", unit_scale=True, desc=f"download {dest.name}"
                ) as bar,
            ):
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"cannot download {url}: {reason} (is the network reachable?)") from None
    return dest


# Limits against zip/gzip bombs and files that are not sentence corpora.
MAX_TEXT_BYTES = 8 << 30  # decompressed size of one corpus file
MAX_LINE_BYTES = 64 << 10  # one line (a sentence pair is far shorter)
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


def _decode(raw: bytes, name: str, lineno: int, stats: dict) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{name}:{lineno}: not valid UTF-8 (byte {err.start})") from None
    if lineno == 1 and text.startswith("\ufeff"):
        stats["bom"] = stats.get("bom", 0) + 1
        text = text[1:]
    if text.endswith("\r\n"):
        stats["crlf_lines"] = stats.get("crlf_lines", 0) + 1
    return text.rstrip("\r\n")


def _text_lines(stream: io.BufferedIOBase, name: str, stats: dict) -> Iterator[tuple[int, str]]:
    """Yield (line number, decoded line) from a binary stream; corrupt data is a DataError."""
    lineno = total = 0
    try:
        while raw := stream.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            total += len(raw)
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(
                    f"{name}:{lineno}: line longer than {MAX_LINE_BYTES} bytes "
                    "(not a sentence pair: is this the right file?)"
                )
            if total > MAX_TEXT_BYTES:
                raise DataError(
                    f"{name}: more than {MAX_TEXT_BYTES} bytes of text (a compression bomb?)"
                )
            yield lineno, _decode(raw, name, lineno, stats)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{name}: corrupt or truncated after line {lineno} ({err})") from None


def _open_binary(path: Path) -> tuple[io.BufferedIOBase, str]:
    """Open a plain, gzipped or zipped text file for binary reading."""
    if path.name.endswith(TAR_SUFFIXES):
        raise DataError(
            f"{path}: tar archives are not supported (use .zip, .tsv[.gz] or two aligned files)"
        )
    try:
        if path.suffix == ".zip":
            return _open_zip_member(path)
        if path.suffix == ".gz":
            return gzip.open(path, "rb"), str(path)
        return open(path, "rb"), str(path)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


def _check_zip_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse members that could escape a directory or point elsewhere (zip-slip)."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DataError(f"{path}: unsafe member path {info.filename!r} in archive")
    if (info.external_attr >> 16) & 0o170000 == 0o120000:
        raise DataError(f"{path}: archive member {info.filename!r} is a symbolic link")
    if info.file_size > MAX_TEXT_BYTES:
        raise DataError(
            f"{path}: member {info.filename!r} unpacks to {info.file_size} bytes "
            f"(limit {MAX_TEXT_BYTES})"
        )


def _open_zip_member(path: Path) -> tuple[io.BufferedIOBase, str]:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not a valid zip archive") from None
    for info in archive.infolist():
        _check_zip_member(path, info)
    members = [
        info
        for info in archive.infolist()
        if not info.is_dir()
        and not PurePosixPath(info.filename).name.startswith(("_", "."))
        and PurePosixPath(info.filename).suffix in (".txt", ".tsv")
    ]
    if len(members) != 1:
        names = [m.filename for m in members] or "none"
        raise DataError(f"{path}: expected one .txt/.tsv corpus member, found {names}")
    return archive.open(members[0]), f"{path}:{members[0].filename}"


def anki_columns(cfg) -> tuple[str, str]:
    """The columns of an Anki/manythings archive (data.columns is for TSV files): English,
    then the pair's other language."""
    if "en" not in (cfg.src_lang, cfg.tgt_lang):
        raise ConfigError(
            f"{cfg.url}: an Anki/manythings .zip is English and one other language; "
            f"data.src_lang/tgt_lang are {cfg.src_lang!r}/{cfg.tgt_lang!r}"
        )
    return ("en", cfg.tgt_lang if cfg.src_lang == "en" else cfg.src_lang)


def read_tsv(path: Path, columns: tuple[str, ...], src_lang: str, tgt_lang: str, stats: dict):
    """Yield (src, tgt) pairs from a TSV file whose columns have the languages `columns`.

    An extra last column (the Anki attribution) is allowed when every line has it.
    Blank lines are skipped and counted in stats["blank_lines"].
    """
    src_col, tgt_col = columns.index(src_lang), columns.index(tgt_lang)
    stream, name = _open_binary(path)
    width = None
    with stream:
        for lineno, line in _text_lines(stream, name, stats):
            if not line.strip():
                stats["blank_lines"] = stats.get("blank_lines", 0) + 1
                continue
            fields = line.split("\t")
            if width is None:  # the first line decides whether an attribution column follows
                width = len(columns) + (len(fields) == len(columns) + 1)
            if len(fields) != width:
                raise DataError(
                    f"{name}:{lineno}: expected {width} tab-separated fields, found {len(fields)}"
                )
            yield fields[src_col], fields[tgt_col]


def read_aligned(src_path: Path, tgt_path: Path, stats: dict) -> Iterator[Pair]:
    """Yield pairs from two line-aligned files; different line counts are a DataError."""
    src_stream, src_name = _open_binary(src_path)
    tgt_stream, tgt_name = _open_binary(tgt_path)
    with src_stream, tgt_stream:
        src_lines = _text_lines(src_stream, src_name, stats)
        tgt_lines = _text_lines(tgt_stream, tgt_name, stats)
        for src, tgt in zip_longest(src_lines, tgt_lines):
            if src is None or tgt is None:
                shorter, longer = (src_name, tgt_name) if src is None else (tgt_name, src_name)
                rest = tgt_lines if src is None else src_lines
                lines = (tgt or src)[0] + sum(1 for _ in rest)
                raise DataError(
                    f"misaligned files: {longer} has {lines} lines but {shorter} "
                    f"has {(tgt or src)[0] - 1}"
                )
            if not src[1].strip() and not tgt[1].strip():
                stats["blank_lines"] = stats.get("blank_lines", 0) + 1
                continue
            yield src[1], tgt[1]
