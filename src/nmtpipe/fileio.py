"""Atomic outputs and small file helpers shared by every stage.

A stage writes into a temporary sibling of its output and renames it into
place only when everything succeeded, so a failed or killed stage never leaves
a partial output that a later stage could mistake for a real one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nmtpipe.errors import DataError
from nmtpipe.layout import split_files


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_stale(path: Path, kind: str = "tmp") -> None:
    """Delete temporaries that a killed earlier run left beside `path`.

    Safe because DVC runs one stage of a repository at a time (it holds a lock).
    """
    for stale in path.parent.glob(f".{path.name}.{kind}-*"):
        _remove(stale)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(tmp: Path, is_dir: bool) -> None:
    """Give a mkstemp/mkdtemp path (0600/0700) the mode a plain open/mkdir would have."""
    os.chmod(tmp, (0o777 if is_dir else 0o666) & ~_umask())


@contextlib.contextmanager
def scratch_dir(path: str | Path) -> Iterator[Path]:
    """A temporary working directory beside output `path`, deleted afterwards."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path, "scratch")
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.scratch-", dir=path.parent) as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    _default_mode(tmp, is_dir=True)
    try:
        yield tmp
        _remove(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path that replaces `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    _default_mode(tmp, is_dir=False)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, data, sort_keys: bool = True) -> None:
    """Write pretty JSON, key-sorted unless the caller's order is fixed (stable bytes for
    DVC either way)."""
    text = json.dumps(data, indent=2, sort_keys=sort_keys, ensure_ascii=False)
    Path(path).write_text(text + "\n")


def write_lines(path: str | Path, lines) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for line in lines:
            out.write(line + "\n")


def read_lines(path: str | Path) -> list[str]:
    """Read a UTF-8 text file written by a previous stage, one item per line."""
    with open(path, encoding="utf-8") as lines:
        return [line.rstrip("\n") for line in lines]


def read_split(split_dir: Path, split: str) -> tuple[list[str], list[str]]:
    """The (src lines, tgt lines) of one split (train, dev or test) written by split."""
    return read_parallel(*split_files(split_dir, split), f"{split} split", "split")


def read_parallel(src_path: Path, tgt_path: Path, what: str, made_by: str):
    """Two line-aligned files written by an earlier stage, as (src lines, tgt lines).

    A missing file or different line counts is a DataError naming the file.
    """
    try:
        src, tgt = read_lines(src_path), read_lines(tgt_path)
    except FileNotFoundError as err:
        raise DataError(f"{err.filename}: {what} not found (run {made_by})") from None
    if len(src) != len(tgt):
        raise DataError(
            f"{Path(src_path).parent}: {len(src)} source lines but {len(tgt)} target lines"
        )
    return src, tgt


def count_parallel(src_path: Path, tgt_path: Path, what: str, made_by: str) -> int:
    """The pairs of two line-aligned files written by an earlier stage (bytes counted, no
    decoding); a missing file or different line counts is a DataError naming the file."""
    try:
        counts = count_lines(src_path), count_lines(tgt_path)
    except FileNotFoundError as err:
        raise DataError(f"{err.filename}: {what} not found (run {made_by})") from None
    if counts[0] != counts[1]:
        raise DataError(
            f"{Path(src_path).parent}: {counts[0]} source lines but {counts[1]} target lines"
        )
    return counts[0]


def iter_parallel(src_path: Path, tgt_path: Path, what: str, made_by: str) -> Iterator:
    """Stream the (src, tgt) line pairs of two line-aligned files written by an earlier stage.

    The files are checked first (count_parallel), so nothing is consumed from a missing
    or misaligned pair of files.
    """
    count_parallel(src_path, tgt_path, what, made_by)
    with open(src_path, encoding="utf-8") as src, open(tgt_path, encoding="utf-8") as tgt:
        for src_line, tgt_line in zip(src, tgt, strict=True):
            yield src_line.rstrip("\n"), tgt_line.rstrip("\n")


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def count_lines(path: str | Path) -> int:
    with open(path, "rb") as data:
        return sum(block.count(b"\n") for block in iter(lambda: data.read(1 << 20), b""))
