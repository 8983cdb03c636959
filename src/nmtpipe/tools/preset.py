"""`nmtpipe preset NAME`: write a named preset's values into params.yaml, comments kept.

A preset (`pipeline/presets/NAME.yaml`) is a partial params mapping: only the keys
it sets, commented with why. Applying it validates the merged params with the
same code as every stage (config.params_from_dict), so an unknown key or a bad
value is the usual one-line ConfigError and params.yaml stays untouched. The file
is updated in place with ruamel.yaml's round-trip mode (comments, key order and
flow lists kept) and replaced atomically; then `dvc repro` runs the preset.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import yaml

from nmtpipe.config import Params, params_from_dict, read_yaml, to_dict
from nmtpipe.errors import ConfigError
from nmtpipe.fileio import atomic_file

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def available(presets_dir: Path) -> dict[str, str]:
    """Preset names in presets_dir, each with the first line of its leading comment."""
    presets = {}
    for path in sorted(Path(presets_dir).glob("*.yaml"), key=lambda p: p.stem):
        first = ""
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("#"):
                first = line.lstrip("#").strip()
                break
        presets[path.stem] = first
    return presets


def preset_path(presets_dir: Path, name: str) -> Path:
    """The file of preset `name`; an unknown name is a ConfigError listing the presets."""
    path = Path(presets_dir) / f"{name}.yaml"
    if not NAME_PATTERN.fullmatch(name) or not path.is_file():
        names = ", ".join(available(presets_dir)) or "none"
        raise ConfigError(f"no preset {name!r} in {presets_dir} (available: {names})")
    return path


def read_preset(path: Path) -> dict[str, dict[str, Any]]:
    """A preset file as {section: {key: value}}, shape checked (values are checked later)."""
    raw = read_yaml(path, "preset")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: a preset must be a non-empty mapping of params sections")
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: section {section!r} must be a mapping, got {values!r}")
    return raw


def merged_params(current: dict, preset: dict, source: Path) -> Params:
    """Validate params.yaml's mapping with the preset's values on top of it."""
    merged = copy.deepcopy(current) if isinstance(current, dict) else {}
    for section, values in preset.items():
        if not isinstance(merged.get(section), dict):
            merged[section] = {}
        merged[section].update(values)
    try:
        return params_from_dict(merged)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def changes(old: Params, new: Params, preset: dict) -> list[tuple[str, Any, Any]]:
    """(section.key, old value, new value) for each preset key whose value changes."""
    rows = []
    for section, values in preset.items():
        before, after = to_dict(getattr(old, section)), to_dict(getattr(new, section))
        rows += [(f"{section}.{k}", before[k], after[k]) for k in values if before[k] != after[k]]
    return rows


def _round_trip():
    from ruamel.yaml import YAML

    rt = YAML(typ="rt")
    rt.preserve_quotes, rt.width = True, 4096  # never re-wrap long lines
    rt.representer.add_representer(float, _represent_float)
    return rt


def _represent_float(representer, value: float):
    """A float as YAML 1.1 reads it back as a float: 1e-09 (a string to PyYAML and DVC)
    becomes 1.0e-09."""
    text = repr(value)
    if "e" in text and "." not in text:
        text = text.replace("e", ".0e", 1)
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _set(section, key: str, value: Any) -> None:
    """Set one value in a ruamel mapping, keeping a list's flow style and a string's quotes."""
    from ruamel.yaml.comments import CommentedSeq
    from ruamel.yaml.scalarstring import ScalarString

    old = section.get(key)
    if isinstance(value, list):
        seq = CommentedSeq(value)
        seq.fa.set_flow_style()
        value = seq
    elif isinstance(value, str) and isinstance(old, ScalarString):
        value = type(old)(value)
    section[key] = value


def rewrite(text: str, preset: dict, rows: list[tuple[str, Any, Any]]) -> str:
    """params.yaml's text with the changed keys set to the preset's values."""
    from ruamel.yaml.comments import CommentedMap

    rt = _round_trip()
    doc = rt.load(text)
    for name, _, _ in rows:
        section, key = name.split(".", 1)
        if not isinstance(doc.get(section), dict):
            doc[section] = CommentedMap()
        _set(doc[section], key, preset[section][key])
    out = io.StringIO()
    rt.dump(doc, out)
    return out.getvalue()


def apply_preset(params_file: Path, preset_file: Path) -> list[tuple[str, Any, Any]]:
    """Write the preset's values into params_file; return what changed (nothing: no write)."""
    preset = read_preset(preset_file)
    current_raw = read_yaml(params_file)
    try:
        current = params_from_dict(current_raw)
    except ConfigError as err:
        raise ConfigError(f"{params_file}: {err}") from None
    new = merged_params(current_raw, preset, preset_file)
    rows = changes(current, new, preset)
    if not rows:
        return rows
    text = rewrite(Path(params_file).read_text(encoding="utf-8"), preset, rows)
    if params_from_dict(yaml.safe_load(text)) != new:  # the round trip must say what we meant
        raise ConfigError(f"{params_file}: rewriting it would not give the preset's values")
    with atomic_file(params_file) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return rows


def show(value: Any) -> str:
    """A value as it would read in YAML flow style (JSON is a subset)."""
    return json.dumps(value, ensure_ascii=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="nmtpipe preset",
        description="Write a preset's values into params.yaml (comments kept); "
        "then `dvc repro` runs it.",
    )
    parser.add_argument("name", nargs="?", help="preset name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    parser.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="default: params.yaml"
    )
    parser.add_argument(
        "--presets",
        type=Path,
        default=Path("pipeline/presets"),
        help="directory of NAME.yaml presets (default: pipeline/presets)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, line in available(args.presets).items():
            print(f"{name:<20} {line}")
        return
    if not args.name:
        parser.error("give a preset NAME or --list")
    rows = apply_preset(args.params, preset_path(args.presets, args.name))
    for key, old, new in rows:
        print(f"{key}: {show(old)} -> {show(new)}")
    print(
        f"{args.params}: preset {args.name!r} applied, {len(rows)} value(s) changed"
        + ("; run `dvc repro`" if rows else " (it already had the preset's values)")
    )
