"""`nmtpipe params-doc`: the params reference (docs/params.md) and params.yaml's comments,
both generated from `config/`, where each key's meaning is declared once.

`--check` writes nothing and fails when either file is not what it would write.
params.yaml keeps its values (a missing key gets its default); only the comments
and the layout are rewritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import textwrap
import typing
from pathlib import Path

import yaml

from nmtpipe.config import Params, read_yaml
from nmtpipe.errors import ConfigError
from nmtpipe.fileio import atomic_file

HEADER = """\
# nmtpipe parameters: one section per stage. Every key is validated
# (src/nmtpipe/config/); an unknown key or a bad value stops the stage.
# The comments are each key's meaning as config/ declares it (`nmtpipe params-doc`
# rewrites them); docs/params.md lists defaults and allowed values.
"""
COMMENT_COLUMN, WIDTH = 24, 100
KEY_LINE = re.compile(r"^  (\w+):(.*?)(?:\s+#\s?(.*))?$")
CONTINUATION = re.compile(r"^\s{3,}#\s?(.*)$")


def sections() -> dict[str, type]:
    """Section name -> its config class, in params.yaml order."""
    hints = typing.get_type_hints(Params)
    return {f.name: hints[f.name] for f in dataclasses.fields(Params)}


def _doc(cls: type) -> str:
    return " ".join(inspect.getdoc(cls).split())


def _value(value) -> str:
    """A value in YAML flow style, on one line."""
    value = list(value) if isinstance(value, tuple) else value
    return (
        yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()
    )


def _allowed(f: dataclasses.Field) -> str:
    meta = f.metadata
    if meta["choices"]:
        return " \\| ".join(f"`{c}`" for c in meta["choices"])
    bounds = [f">= {meta['min']}" if meta["min"] is not None else ""]
    bounds += [f"<= {meta['max']}" if meta["max"] is not None else ""]
    return ", ".join(b for b in bounds if b)


def render_reference() -> str:
    """docs/params.md: every section and key with its default, allowed values, meaning."""
    out = [
        "# Params reference",
        "",
        "Generated from `src/nmtpipe/config/` by `nmtpipe params-doc`; do not edit by hand.",
        "Every key of `params.yaml`, its default, its allowed values and its meaning. An",
        "unknown key or a value out of range stops the stage with a one-line error.",
    ]
    for name, cls in sections().items():
        out += ["", f"## `{name}`", "", _doc(cls), "", "| key | default | allowed | meaning |"]
        out.append("|---|---|---|---|")
        for f in dataclasses.fields(cls):
            default = _value(f.default).replace("|", "\\|")
            meaning = f.metadata["help"].replace("|", "\\|")
            out.append(f"| `{name}.{f.name}` | `{default}` | {_allowed(f)} | {meaning} |")
    return "\n".join(out) + "\n"


def comment(f: dataclasses.Field) -> str:
    """A key's comment in params.yaml: its meaning, then its choices unless it names them."""
    choices = f.metadata["choices"] or ()
    named = all(re.search(rf"\b{re.escape(c)}\b", f.metadata["help"]) for c in choices)
    return " ".join(f.metadata["help"].split()) + ("" if named else f" ({' | '.join(choices)})")


def _key_lines(key: str, value, help_text: str) -> list[str]:
    """`  key: value  # meaning`, the meaning wrapped onto aligned comment lines."""
    first = f"  {key}: {_value(value)}"
    column = max(COMMENT_COLUMN, len(first) + 1)
    wrapped = textwrap.wrap(help_text, WIDTH - column - 2) or [""]
    lines = [f"{first.ljust(column)}# {wrapped[0]}"]
    return lines + [f"{' ' * column}#   {more}" for more in wrapped[1:]]


def render_params(values: dict) -> str:
    """params.yaml with `values` (section -> key -> value; defaults where missing)."""
    out = [HEADER.rstrip("\n")]
    for name, cls in sections().items():
        given = values.get(name) or {}
        out += ["", *(f"# {line}" for line in textwrap.wrap(_doc(cls), WIDTH - 2)), f"{name}:"]
        for f in dataclasses.fields(cls):
            out += _key_lines(f.name, given.get(f.name, f.default), comment(f))
    return "\n".join(out) + "\n"


def params_comments(text: str) -> dict[str, str]:
    """section.key -> its comment in a params.yaml text (continuation lines joined)."""
    comments, section, key = {}, None, None
    for line in text.splitlines():
        if re.match(r"^\w+:", line):
            section, key = line.split(":")[0], None
        elif (match := KEY_LINE.match(line)) and section:
            key = f"{section}.{match.group(1)}"
            comments[key] = match.group(3) or ""
        elif (match := CONTINUATION.match(line)) and key:
            comments[key] += " " + match.group(1).strip()
        else:
            key = None
    return {k: " ".join(v.split()) for k, v in comments.items()}


def stale_comments(text: str) -> list[str]:
    """The keys of a params.yaml text whose comment is not its meaning in config/."""
    helps = {
        f"{name}.{f.name}": comment(f)
        for name, cls in sections().items()
        for f in dataclasses.fields(cls)
    }
    comments = params_comments(text)
    return sorted(k for k in helps.keys() & comments.keys() if comments[k] != helps[k])


def check(reference: Path, params: Path) -> None:
    """A ConfigError when the reference is stale or a params.yaml comment is not the
    meaning config/ declares (values and layout may differ: presets change them)."""
    if not reference.is_file() or reference.read_text(encoding="utf-8") != render_reference():
        raise ConfigError(f"{reference}: not generated from config/ (run nmtpipe params-doc)")
    stale = stale_comments(params.read_text(encoding="utf-8"))
    if stale:
        raise ConfigError(
            f"{params}: comments of {', '.join(stale)} differ from src/nmtpipe/config/ "
            "(run nmtpipe params-doc)"
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="nmtpipe params-doc", description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("docs/params.md"))
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    args = parser.parse_args(argv)
    values = read_yaml(args.params) or {}
    wanted = {args.out: render_reference(), args.params: render_params(values)}
    if args.check:
        check(args.out, args.params)
        return
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
