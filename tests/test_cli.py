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


def test_train_help_documents_every_config_field(capsys):
    """Every TrainConfig leaf field has its `--section.field` flag, its help text and its default."""
    import dataclasses

    from training_space.config import TrainConfig

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    out = capsys.readouterr().out
    squeezed = "".join(out.split())   # argparse wraps lines (and breaks at hyphens): compare without spaces
    config = TrainConfig()
    for section in dataclasses.fields(TrainConfig):
        for leaf in dataclasses.fields(getattr(config, section.name)):
            flag = f"--{section.name}.{leaf.name}"
            assert f"{flag} " in out, f"{flag} missing from rag-de train --help"
            help_text = "".join(leaf.metadata["help"].split())
            assert help_text in squeezed, f"{flag}: help text missing"
    assert "(default:'paged_adamw_32bit')" in squeezed and "(default:0.0002)" in squeezed


@pytest.mark.parametrize("argv, command", [
    (["train", "--training.max_steps", "many"], "train"),
    (["export-autotrain", "--out", "{tmp}/a.yaml", "--lora.r", "1.5"], "export-autotrain"),
    (["evaluate", "--batch_size", "two"], "evaluate"),
    (["card", "dataset", "--data", "{tmp}", "--repo", "org/x"], "card dataset"),
    (["deploy", "demo", "--space", "org/d", "--top_k", "x"], "deploy demo"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_every_subcommand_reports_bad_input_in_one_format(argv, command, tmp_path, capsys):
    """`rag-de <command>: error: <what>, <where>, <fix>` (argparse's own shape), exit status 2, no traceback."""
    from rag_de.cli import main

    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rag-de {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_quickstart_says_which_writer_made_the_answers():
    """The build stage's writer line, from stats.json's `writer` section of each writer kind."""
    from rag_de.quickstart import _writer_line

    assert _writer_line({"name": "extractive", "fallbacks_total": 0}).startswith("answers written by: extractive")
    assert "--writer openai" in _writer_line({"name": "extractive"})
    line = _writer_line({"name": "transformers", "model": "org/m", "fallbacks_total": 3, "generated": 10})
    assert line == "answers written by: transformers (org/m); 3 fell back to the extracted sentence"
