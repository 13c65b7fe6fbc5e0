"""The typed config loader: YAML + flags -> dataclass, with unknown keys and bad types rejected."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from rag_de import config as cfg
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
    cfg.add_dataclass_arguments(parser, Outer)
    args = parser.parse_args(["--inner.r", "8", "--flag", "--inner.targets", "a,b"])
    conf = cfg.load(Outer, path, cfg.overrides_from_args(args))
    assert conf.lr == 0.001 and conf.inner.r == 8 and conf.flag is True
    assert conf.inner.targets == ["a", "b"] and conf.kind == "nf4" and conf.name is None


def test_unknown_key_names_file_key_and_allowed(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("inner:\n  rank: 4\n", encoding="utf-8")
    with pytest.raises(cfg.ConfigError) as err:
        cfg.load(Outer, path)
    message = str(err.value)
    assert str(path) in message and "rank" in message and "'r'" in message


@pytest.mark.parametrize("data, fragment", [
    ({"lr": "fast"}, "config.lr"),
    ({"kind": "int8"}, "not one of"),
    ({"inner": {"r": 1.5}}, "integer"),
    ({"flag": "maybe"}, "true/false"),
    ({"inner": 3}, "mapping"),
])
def test_bad_values_are_named(data, fragment):
    with pytest.raises(cfg.ConfigError, match=fragment):
        cfg.from_dict(Outer, data)


def test_yaml_errors_are_clear(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(cfg.ConfigError, match="top level must be a mapping"):
        cfg.read_yaml(tmp_path / "list.yaml")
    (tmp_path / "latin1.yaml").write_bytes("lr: 1\nname: M\xfcller\n".encode("latin-1"))
    with pytest.raises(cfg.ConfigError, match="not UTF-8"):
        cfg.read_yaml(tmp_path / "latin1.yaml")
    with pytest.raises(cfg.ConfigError, match="not found"):
        cfg.read_yaml(tmp_path / "missing.yaml")


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == '{\n  "ok": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
