"""Typed configuration: dataclasses with documented defaults, loaded from YAML and overridden by CLI flags.

The pattern follows TRL's `SFTConfig`/`ScriptArguments` and litgpt's configs: every knob is a dataclass
field whose `metadata["help"]` documents it; a YAML file may set any subset (nested dataclasses are nested
mappings); a CLI flag `--section.field VALUE` (or `--field VALUE` for top-level fields) overrides the YAML.
Unknown keys are an error that names the key, the file and the allowed keys, so a typo never silently
falls back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or flag is wrong; the message says where and how to fix it."""


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Turn YAML/CLI values into the field's declared type, or raise a ConfigError naming `where`."""
    tp, optional = _unwrap_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null", "~")):
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: null is not allowed here (expected {getattr(tp, '__name__', tp)})")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where=where)
    origin = get_origin(tp)
    if origin is typing.Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (list, tuple):
        (item_tp,) = get_args(tp)[:1] or (Any,)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value) if tp is float else int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict, where: str = "config") -> T:
    """Build dataclass `cls` from a (possibly nested) mapping, rejecting unknown keys."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; allowed keys: {sorted(fields)}"
        )
    kwargs = {name: _coerce(value, hints[name], f"{where}.{name}") for name, value in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict:
    """The config as plain YAML-able data (for saving next to a run and for model cards)."""
    return dataclasses.asdict(obj)


def merge(base: dict, update: dict) -> dict:
    """Deep-merge `update` into a copy of `base` (nested mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc}); save the file as UTF-8") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config keys, got {type(data).__name__}")
    return data


def _walk_fields(cls: type, prefix: str = ""):
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp, _ = _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(tp):
            yield from _walk_fields(tp, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, hints[f.name]


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, group_title: str | None = None) -> None:
    """Add one `--dotted.name` flag per leaf field (help from `metadata['help']`, default shown).

    Flags default to `argparse.SUPPRESS`, so only flags the user gives override the YAML file.
    """
    group = parser.add_argument_group(group_title or f"{cls.__name__} fields (override the YAML)")
    defaults = to_dict(cls())
    for dotted, f, tp in _walk_fields(cls):
        default: Any = defaults
        for part in dotted.split("."):
            default = default[part]
        help_text = f.metadata.get("help", "")
        flags = [f"--{dotted}"]
        dashed = f"--{dotted.replace('_', '-')}"
        if dashed != flags[0]:
            flags.append(dashed)
        extra = {"nargs": "?", "const": "true"} if _unwrap_optional(tp)[0] is bool else {}
        group.add_argument(
            *flags, dest=f"cfg:{dotted}", default=argparse.SUPPRESS, metavar=_metavar(tp),
            help=f"{help_text} (default: {default!r})".replace("%", "%%"), **extra,
        )


def _metavar(tp: Any) -> str:
    tp, _ = _unwrap_optional(tp)
    if get_origin(tp) is typing.Literal:
        return "{" + ",".join(str(a) for a in get_args(tp)) + "}"
    if get_origin(tp) in (list, tuple):
        return "A,B,..."
    return getattr(tp, "__name__", "VALUE").upper()


def overrides_from_args(args: argparse.Namespace) -> dict:
    """Collect the `--dotted.name` flags the user gave as a nested mapping."""
    nested: dict = {}
    for key, value in vars(args).items():
        if not key.startswith("cfg:"):
            continue
        parts = key[4:].split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_scalar(value)
    return nested


def _parse_scalar(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def load(cls: type[T], yaml_path: str | Path | None = None, overrides: dict | None = None,
         base: dict | None = None) -> T:
    """Defaults <- `base` (a preset) <- YAML file <- CLI overrides, validated into `cls`."""
    data: dict = dict(base or {})
    where = "config"
    if yaml_path is not None:
        data = merge(data, read_yaml(yaml_path))
        where = str(yaml_path)
    if overrides:
        data = merge(data, overrides)
    return from_dict(cls, data, where=where)
