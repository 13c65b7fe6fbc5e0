"""Keep the README true: every `rag-de` command it shows parses with the real CLI, every script and
config file it names exists, and .ci/run calls the README's test command."""

from __future__ import annotations

import re
import shlex

import pytest

from helpers import REPO_ROOT
from rag_de.cli import build_parser

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def readme_commands(prefix: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        line = re.sub(r"\[[^\]]*\]", "", line).strip()   # optional flags shown as [--flag]
        if line.startswith(prefix):
            commands.append(line)
    return commands


@pytest.mark.parametrize("command", readme_commands("rag-de "))
def test_readme_rag_de_commands_parse(command):
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert callable(args.func)


def test_readme_names_files_that_exist():
    paths = set(re.findall(r"(?:scripts|training_space|dataset_builder|\.ci)/[\w./-]+\.(?:sh|yaml|md|py)", README))
    assert "scripts/quickstart.sh" in paths and "scripts/test.sh" in paths
    missing = sorted(p for p in paths if not (REPO_ROOT / p).exists())
    assert not missing, f"README names files that do not exist: {missing}"


def test_ci_runs_the_readme_test_command():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in README and re.search(r"^scripts/test\.sh\s*$", ci, flags=re.M)


def test_readme_accelerate_commands_name_shipped_configs():
    commands = readme_commands("accelerate launch")
    assert commands
    for command in commands:
        config = shlex.split(command)[shlex.split(command).index("--config_file") + 1]
        assert (REPO_ROOT / config).exists(), config
