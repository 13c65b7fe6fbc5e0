"""`rag-de`: every subcommand is wired and has a useful --help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rag_de.cli import build_parser

SUBCOMMANDS = [
    ["hub", "serve"], ["hub", "token", "create"], ["build"], ["publish"], ["train"], ["export-autotrain"],
    ["evaluate"], ["card"], ["demo"], ["deploy", "demo"], ["deploy", "training-space"], ["quickstart"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=lambda w: " ".join(w))
def test_subcommand_help(words, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([*words, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rag-de " + " ".join(words))
    # A useful help says more than the usage line: a description or documented options.
    assert len(out.splitlines()) > 4


def test_console_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "rag_de", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("hub", "build", "publish", "train", "evaluate", "card", "demo", "deploy", "quickstart"):
        assert name in result.stdout
