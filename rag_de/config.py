"""Typed configuration: dataclasses with documented defaults, loaded from YAML and overridden by CLI flags.

The pattern follows TRL's `SFTConfig`/`ScriptArguments` and litgpt's configs: every knob is a dataclass
field whose `metadata["help"]` documents it; a YAML file may set any subset (nested dataclasses are nested
mappings); a CLI flag `--section.field VALUE` (or `--field VALUE` for top-level fields) overrides the YAML.
Unknown keys are an error that names the key, the file and the allowed keys, so a typo never silently
falls back to a default.

Values are converted by the field's declared type only, never guessed (YAML 1.1 would read `no` as
False, `0777` as 511 and `on` as True): a str field gets the text as typed, int/float a checked number,
bool only true/false/yes/no/1/0 (any case), an Optional field None for null/none/~ unless quoted, a list
`a,b` or `[a, b]`, a Literal the choice spelled like the text. YAML files and flags follow the same rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import yaml

from rag_de.errors import UserError

T = TypeVar("T")


class ConfigError(UserError):
    """A configuration file or flag is wrong; the message says where and how to fix it."""


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


class Quoted(str):
    """A YAML scalar the user quoted (or wrote as a block scalar): always a string, never null."""


class _TextLoader(yaml.BaseLoader):
    """YAML loader that keeps every scalar as the text the user wrote (no YAML 1.1 guessing).

    `yaml.safe_load` turns `no` into False, `0777` into 511 and `on` into True before the declared
    field type is known; here a scalar stays text and `_coerce` converts it by the field's type.
    Quoted scalars come back as `Quoted`, so `'null'` stays the string "null".
    """

    def construct_scalar(self, node):
        value = super().construct_scalar(node)
        return Quoted(value) if node.style in ("'", '"', "|", ">") else value


def parse_yaml_text(text: str) -> Any:
    """Parse YAML keeping scalars as text (see `_TextLoader`); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_TextLoader)


NULL_WORDS = ("", "null", "none", "~")
TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def _is_null(value: Any) -> bool:
    """None, or unquoted text that spells null (`null`, `none`, `~`, empty)."""
    if value is None:
        return True
    return isinstance(value, str) and not isinstance(value, Quoted) and value.strip().lower() in NULL_WORDS


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Turn a YAML/CLI value into the field's declared type, or raise a ConfigError naming `where`.

    Text (a CLI flag, an unquoted YAML scalar) is converted by the declared type only: a str field
    keeps it exactly, numbers are parsed and checked, bools accept true/false/yes/no/1/0.
    """
    tp, optional = _unwrap_optional(tp)
    if tp is Any:
        return None if _is_null(value) else _natural(value)
    if _is_null(value) and (optional or value is None):
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed here (expected {_type_name(tp)}); give a value")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, where=where)
    origin = get_origin(tp)
    if origin is typing.Literal:
        return _coerce_choice(value, get_args(tp), where)
    if origin in (list, tuple) or tp in (list, tuple):
        item_tp = (get_args(tp) or (Any,))[0]
        if isinstance(value, str):
            value = _split_list(value, where)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}; write a YAML list or A,B,...")
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple or tp is tuple else items
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = _parse_inline(value, where)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}; write {{key: value, ...}}")
        key_tp, value_tp = get_args(tp) or (Any, Any)
        return {_coerce(k, key_tp, f"{where} key"): _coerce(v, value_tp, f"{where}.{k}")
                for k, v in value.items()}
    if tp is bool:
        return _coerce_bool(value, where)
    if tp in (int, float):
        return _coerce_number(value, tp, where)
    if tp is str:
        if isinstance(value, str):
            return str(value)  # exactly the text (a Quoted becomes a plain str)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}; quote it")
    return value


def _coerce_choice(value: Any, choices: tuple, where: str) -> Any:
    """A Literal field: the choice spelled like the value (so `--x on` picks "on", never True)."""
    if not isinstance(value, str):
        for choice in choices:
            if type(choice) is type(value) and choice == value:
                return choice
    text = value.strip() if isinstance(value, str) else _yaml_text(value)
    for choice in choices:
        if text == (choice if isinstance(choice, str) else _yaml_text(choice)):
            return choice
    raise ConfigError(f"{where}: {value!r} is not one of {list(choices)}; use one of them")


def _coerce_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ConfigError(f"{where}: expected true/false, got {value!r}; use true, false, yes, no, 1 or 0")


def _coerce_number(value: Any, tp: type, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}: expected {'an integer' if tp is int else 'a number'}, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"{where}: expected {'an integer' if tp is int else 'a number'}, "
                                  f"got {text!r}; write digits, e.g. 3 or 0.5 or 2e-4") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if tp is float:
        return float(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ConfigError(f"{where}: expected an integer, got {value!r}; drop the fraction")
        return int(value)
    return value


def _split_list(text: str, where: str) -> list:
    """A list given as text: `a,b` (CLI), `[a, b]` (YAML flow), empty = []."""
    stripped = text.strip()
    if stripped.startswith("["):
        return _parse_inline(stripped, where)
    return [v.strip() for v in stripped.split(",") if v.strip()]


def _parse_inline(text: str, where: str) -> Any:
    try:
        return parse_yaml_text(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: cannot read {text!r} ({exc.__class__.__name__}); "
                          "write a YAML flow value such as [a, b] or {key: value}") from None


def _natural(value: Any) -> Any:
    """An untyped (Any) value: unquoted text read as YAML 1.2 core scalars would be (no `no` -> False)."""
    if isinstance(value, dict):
        return {k: _natural(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_natural(v) for v in value]
    if not isinstance(value, str) or isinstance(value, Quoted):
        return str(value) if isinstance(value, Quoted) else value
    word = value.strip().lower()
    if word in ("true", "false"):
        return word == "true"
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return str(value)


def _yaml_text(value: Any) -> str:
    """How a non-string value reads as YAML text (True -> 'true'), to match Literal choices."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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
        data = parse_yaml_text(text) or {}
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
        node[parts[-1]] = value  # the text as typed; `from_dict` converts it by the field's type
    return nested


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
