"""The typed config loader: YAML + flags -> dataclass, with unknown keys and bad types rejected."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from rag_de import config as config_lib
from rag_de.atomic import atomic_open, write_json


@dataclass
class Inner:
    r: int = field(default=12, metadata={"help": "rank"})
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class Outer:
    lr: float = field(default=2e-4, metadata={"help": "learning rate"})
    name: Optional[str] = None
    kind: Literal["nf4", "none"] = "nf4"
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_and_flags_layer_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.001\ninner:\n  r: 16\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    config_lib.add_dataclass_arguments(parser, Outer)
    args = parser.parse_args(["--inner.r", "8", "--flag", "--inner.targets", "a,b"])
    config = config_lib.load(Outer, path, config_lib.overrides_from_args(args))
    assert config.lr == 0.001 and config.inner.r == 8 and config.flag is True
    assert config.inner.targets == ["a", "b"] and config.kind == "nf4" and config.name is None


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  rank: 4\n", encoding="utf-8")
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.load(Outer, path)
    message = str(err.value)
    assert str(path) in message and "rank" in message and "'r'" in message


@pytest.mark.parametrize("data, fragment", [
    ({"lr": "fast"}, "config.lr"),
    ({"kind": "int8"}, "not one of"),
    ({"inner": {"r": 1.5}}, "integer"),
    ({"flag": "maybe"}, "true/false"),
    ({"flag": "on"}, "true, false, yes, no, 1 or 0"),   # YAML 1.1's on/off are not booleans here
    ({"lr": "nan"}, "finite"),
    ({"inner": {"r": "null"}}, "integer"),            # null only where the field is Optional
    ({"kind": True}, "not one of"),
    ({"inner": 3}, "mapping"),
])
def test_bad_values_are_named(data, fragment):
    with pytest.raises(config_lib.ConfigError, match=fragment):
        config_lib.from_dict(Outer, data)


def test_yaml_errors_are_clear(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(config_lib.ConfigError, match="top level must be a mapping"):
        config_lib.read_yaml(tmp_path / "list.yaml")
    (tmp_path / "latin1.yaml").write_bytes("lr: 1\nname: M\xfcller\n".encode("latin-1"))
    with pytest.raises(config_lib.ConfigError, match="not UTF-8"):
        config_lib.read_yaml(tmp_path / "latin1.yaml")
    with pytest.raises(config_lib.ConfigError, match="not found"):
        config_lib.read_yaml(tmp_path / "missing.yaml")


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "ok": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


@dataclass
class Typed:
    """One field per kind of type the loader converts."""

    run_name: Optional[str] = None
    revision: str = "main"
    dataset: str = ""
    steps: int = 0
    lr: float = 0.0
    flag: bool = False
    maybe: Optional[bool] = None
    targets: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    mode: Literal["auto", "on", "off"] = "auto"


def _from_flags(*argv: str) -> Typed:
    parser = argparse.ArgumentParser()
    config_lib.add_dataclass_arguments(parser, Typed)
    return config_lib.load(Typed, overrides=config_lib.overrides_from_args(parser.parse_args(list(argv))))


@pytest.mark.parametrize("argv, attr, expected", [
    # str fields get exactly the text typed (YAML 1.1 would give 'False', '511', 'True')
    (["--run_name", "no"], "run_name", "no"),
    (["--revision", "0777"], "revision", "0777"),
    (["--dataset", "on"], "dataset", "on"),
    (["--revision", "1e3"], "revision", "1e3"),
    (["--revision", "null"], "revision", "null"),          # not Optional: the text itself
    (["--run_name", "null"], "run_name", None),            # Optional: null/none/~ unset it
    (["--run_name", "None"], "run_name", None),
    # numbers are parsed and checked
    (["--steps", "0777"], "steps", 777),
    (["--steps", "1_000"], "steps", 1000),
    (["--steps", "20.0"], "steps", 20),
    (["--lr", "2e-4"], "lr", 2e-4),                          # YAML 1.1 reads 2e-4 as a string
    (["--lr", "3"], "lr", 3.0),
    # bools: true/false/yes/no/1/0, any case; a bare flag is true
    (["--flag"], "flag", True),
    (["--flag", "YES"], "flag", True),
    (["--flag", "0"], "flag", False),
    (["--flag", "False"], "flag", False),
    (["--maybe", "no"], "maybe", False),
    (["--maybe", "null"], "maybe", None),
    # lists: comma-separated or a YAML flow list, items converted by the item type
    (["--targets", "q_proj,v_proj"], "targets", ["q_proj", "v_proj"]),
    (["--targets", "[no, 'a b']"], "targets", ["no", "a b"]),
    (["--targets", ""], "targets", []),
    (["--sizes", "1, 2,3"], "sizes", [1, 2, 3]),
    # Literal: the choice spelled like the text ("on" stays "on")
    (["--mode", "on"], "mode", "on"),
    (["--mode", "off"], "mode", "off"),
])
def test_flags_convert_by_declared_type(argv, attr, expected):
    value = getattr(_from_flags(*argv), attr)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("argv, fragment", [
    (["--flag", "on"], "config.flag: expected true/false, got 'on'"),
    (["--flag", "2"], "config.flag: expected true/false"),
    (["--steps", "1.5"], "config.steps: expected an integer, got 1.5"),
    (["--steps", "ten"], "config.steps: expected an integer, got 'ten'"),
    (["--lr", "inf"], "config.lr: expected a finite number"),
    (["--sizes", "1,x"], r"config.sizes\[1\]: expected an integer"),
    (["--mode", "true"], r"config.mode: 'true' is not one of \['auto', 'on', 'off'\]"),
])
def test_bad_flags_name_field_value_and_fix(argv, fragment):
    with pytest.raises(config_lib.ConfigError, match=fragment):
        _from_flags(*argv)


def test_yaml_values_convert_by_declared_type_and_quotes_are_kept(tmp_path):
    path = tmp_path / "typed.yaml"
    path.write_text(
        "run_name: no\n"            # unquoted: a str field gets the text, not False
        "revision: 0777\n"          # not 511
        "dataset: on\n"             # not True
        "steps: 16\n"
        "lr: 1e-5\n"
        "flag: Yes\n"
        "maybe: ~\n"
        "targets: [on, off, '0777']\n"
        "sizes:\n  - 1\n  - 2\n"
        "mode: off\n", encoding="utf-8")
    config = config_lib.load(Typed, path)
    assert config == Typed(run_name="no", revision="0777", dataset="on", steps=16, lr=1e-5, flag=True,
                           maybe=None, targets=["on", "off", "0777"], sizes=[1, 2], mode="off")
    assert type(config.revision) is str and type(config.lr) is float

    path.write_text("run_name: 'null'\nrevision: \"007\"\n", encoding="utf-8")
    quoted = config_lib.load(Typed, path)
    assert quoted.run_name == "null" and quoted.revision == "007"   # a quoted value is kept as written

    path.write_text("flag: on\n", encoding="utf-8")
    with pytest.raises(config_lib.ConfigError, match=f"{path}.flag: expected true/false, got 'on'"):
        config_lib.load(Typed, path)


def test_flags_override_yaml_with_the_same_rules(tmp_path):
    path = tmp_path / "typed.yaml"
    path.write_text("run_name: first\nsteps: 5\n", encoding="utf-8")
    parser = argparse.ArgumentParser()
    config_lib.add_dataclass_arguments(parser, Typed)
    args = parser.parse_args(["--run_name", "no", "--steps", "7"])
    config = config_lib.load(Typed, path, config_lib.overrides_from_args(args))
    assert config.run_name == "no" and config.steps == 7


def test_python_values_keep_working():
    """Code (and saved train_config.yaml read with yaml.safe_load) passes native values."""
    config = config_lib.from_dict(Typed, {"steps": 3, "lr": 1, "flag": True, "maybe": False, "targets": ("a",),
                                   "revision": 7, "run_name": None})
    assert config.steps == 3 and config.lr == 1.0 and type(config.lr) is float and config.flag is True
    assert config.maybe is False and config.targets == ["a"] and config.revision == "7"
    with pytest.raises(config_lib.ConfigError, match="config.revision: expected a string, got True"):
        config_lib.from_dict(Typed, {"revision": True})


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from rag_de.atomic import atomic_dir

    target = tmp_path / "adapter"
    with atomic_dir(target) as tmp:
        (tmp / "a.bin").write_bytes(b"1")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "b.bin").write_bytes(b"half")
            raise RuntimeError("crash while saving")
    assert sorted(p.name for p in target.iterdir()) == ["a.bin"]      # the old folder, untouched
    with atomic_dir(target) as tmp:
        (tmp / "c.bin").write_bytes(b"2")
    assert sorted(p.name for p in target.iterdir()) == ["c.bin"]      # the new one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]        # no temp or old folders left
