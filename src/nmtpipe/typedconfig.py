"""Typed, frozen config sections from plain mappings (the machinery of config.py).

A section is a frozen dataclass whose fields are declared with `param`: default,
one-line meaning, allowed values or range. `parse_section` checks a mapping against
it: unknown keys (with a "did you mean"), wrong types and out-of-range values are a
ConfigError naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import field
from pathlib import Path
from typing import Any

import yaml

from nmtpipe.errors import ConfigError


def param(default: Any, help: str, *, choices=None, min=None, max=None):  # noqa: A002
    """Declare a config key: default, one-line meaning, allowed values or range."""
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    return field(default=default, metadata=meta)


def is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def unknown_key(name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name.split(".")[-1], known, n=1)
    prefix = name.rsplit(".", 1)[0] + "." if "." in name else ""
    hint = f" (did you mean {prefix + close[0]!r}?)" if close else ""
    return ConfigError(f"unknown params key {name!r}{hint}")


def _check_value(key: str, value: Any, kind: Any, meta: dict) -> Any:
    """Check one value against its declared type and range; return it normalised."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"params key {key!r} must be a list of strings, got {value!r}")
        return tuple(value)
    if kind == int | str:  # a count or one of the named choices (e.g. "auto")
        if isinstance(value, str):  # its range is the count's, not the name's
            return _check_value(key, value, str, {**meta, "min": None, "max": None})
        return _check_value(key, value, int, {**meta, "choices": None})
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[kind]
    if not ok:
        raise ConfigError(f"params key {key!r} must be {kind.__name__}, got {value!r}")
    if meta["choices"] and value not in meta["choices"]:
        raise ConfigError(
            f"params key {key!r} must be one of {list(meta['choices'])}, got {value!r}"
        )
    if meta["min"] is not None and value < meta["min"]:
        raise ConfigError(f"params key {key!r} must be >= {meta['min']}, got {value!r}")
    if meta["max"] is not None and value > meta["max"]:
        raise ConfigError(f"params key {key!r} must be <= {meta['max']}, got {value!r}")
    return value


def parse_section(cls: type, raw: Any, section: str):
    """Build the frozen config object `cls` from the mapping `raw` of params.yaml."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"params section {section!r} must be a mapping, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in raw.items():
        name = f"{section}.{key}"
        if key not in fields:
            raise unknown_key(name, list(fields))
        values[key] = _check_value(name, value, hints[key], fields[key].metadata)
    return cls(**values)


def read_yaml(path: str | Path, what: str = "params file") -> Any:
    """The data of a YAML file; a missing, non-UTF-8 or invalid file is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not valid UTF-8 ({err.reason} at byte {err.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None


def to_dict(config) -> dict:
    """A config object as plain JSON-able data (tuples become lists)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in dataclasses.asdict(config).items()
    }
